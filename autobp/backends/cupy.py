"""CuPy arrays on a CUDA GPU as autobp's arrays, through array-api-compat's cupy namespace."""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.backends.interface import EXTRAS
from autobp.backends.standard_extras import native_copy, written_in_the_standard

NAME = "cupy"
__all__ = list(EXTRAS)  # every extra (autobp/backends/interface.py)


def standard() -> Any:
    import array_api_compat.cupy

    return array_api_compat.cupy


def _cupy() -> Any:
    import cupy

    return cupy


def to_numpy(x: Any) -> np.ndarray:
    return _cupy().asnumpy(x)


def from_numpy(array: np.ndarray, device: Any = None) -> Any:
    cupy = _cupy()
    if device in (None, "cuda", "gpu"):
        return cupy.array(native_copy(array), copy=True)
    index = device.id if isinstance(device, cupy.cuda.Device) else int(str(device).rsplit(":", 1)[-1])
    with cupy.cuda.Device(index):
        return cupy.array(native_copy(array), copy=True)


def device(x: Any) -> Any:
    return x.device


def device_name(x: Any) -> str:
    return f"cuda:{x.device.id}"


def dtype_name(dtype: Any) -> str:
    return str(np.dtype(dtype))


def float_dtype(dtype: Any) -> bool:
    return np.dtype(dtype).kind == "f"


def is_view(x: Any) -> bool:
    return x.base is not None


def owns_memory(x: Any) -> bool:
    return False  # (autobp writes into no cupy array until that is tested on a GPU: docs/arrays.md)


def memory_owner(x: Any) -> Any:
    base = x.base  # (cupy chains bases as numpy does)
    while base is not None and type(base) is type(x):
        x, base = base, base.base
    return x


def strides(x: Any) -> Any:
    return x.strides


def scatter_add(target: Any, index: Any, values: Any) -> Any:
    """``target`` with ``values`` added at ``index``; repeated positions accumulate. Writes ``target``."""
    _cupy().add.at(target, index, values)  # (cupyx.scatter_add is deprecated in CuPy 14)
    return target


def quiet(function: Any) -> Any:
    return function


# -- convolution / pooling (ops/nn.py) ------------------------------------------------------------
def sliding_windows(x: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> Any:
    """Every ``kernel`` window of the last two axes, ``stride`` apart, as a strided view.

    Shapes: x (..., H, W) -> (..., Ho, Wo, kh, kw) with ``Ho = (H - kh) // sh + 1``.
    """
    from cupy.lib.stride_tricks import as_strided

    (kh, kw), (sh, sw) = kernel, stride
    rows, columns = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
    row_step, column_step = x.strides[-2], x.strides[-1]
    return as_strided(
        x,
        shape=(*x.shape[:-2], rows, columns, kh, kw),
        strides=(*x.strides[:-2], row_step * sh, column_step * sw, row_step, column_step),
    )


# -- shape / indexing / linalg ---------------------------------------------------------------------
sum_kept, matmul_nt, matmul_tn = written_in_the_standard(standard)


# Whether x[key] means numpy's for integer arrays anywhere in a key and for negative steps; where
# not, ops/indexing.py reads elements by flat position instead (ops/positions.py).
advanced_indexing = "anywhere"
negative_steps = True


def einsum(subscripts: str, *operands: Any) -> Any:
    """Einstein summation; ``subscripts`` explicit (``"ij,jk->ik"``), one letter per axis."""
    return _cupy().einsum(subscripts, *operands)


def pad(x: Any, widths: Any, mode: str, **keywords: Any) -> Any:
    """numpy's ``pad`` (CuPy has its own)."""
    return _cupy().pad(x, widths, mode, **keywords)
