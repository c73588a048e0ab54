"""array-api-strict: the array API standard and nothing more.

The test suite runs the whole op registry on it (``--backend array_api_strict``), so a numpy-only
call in an op fails there instead of on a user's GPU. Its extras are the standard's own, slow
spellings of what numpy does in one call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

NAME = "array_api_strict"
__all__ = [
    "to_numpy",
    "from_numpy",
    "device",
    "device_name",
    "dtype_name",
    "is_view",
    "scatter_add",
    "quiet",
    "float_dtype",
    "sliding_windows",
]


def standard() -> Any:
    import array_api_strict

    return array_api_strict


def to_numpy(x: Any) -> np.ndarray:
    # The standard's own way out: DLPack (a copy keeps the host array independent).
    return np.array(np.from_dlpack(x), copy=True)


def from_numpy(array: np.ndarray, device: Any = None) -> Any:
    xp = standard()
    return xp.asarray(np.array(array, copy=True), device=None if device in (None, "cpu") else device)


def device(x: Any) -> Any:
    return x.device


def device_name(x: Any) -> str:
    return "cpu" if x.device == standard().Device("CPU_DEVICE") else str(x.device)


def dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("array_api_strict.")


def float_dtype(dtype: Any) -> bool:
    return bool(standard().isdtype(dtype, "real floating"))


def is_view(x: Any) -> bool:
    return False  # the standard has no views to ask about; in-place writes are refused instead


def scatter_add(target: Any, index: Any, values: Any) -> Any:
    """``target`` with ``values`` added at ``index``; repeated positions accumulate (a new array)."""
    host = to_numpy(target)
    np.add.at(
        host,
        tuple(to_numpy(i) if hasattr(i, "__array_namespace__") else i for i in _as_tuple(index)),
        to_numpy(values) if hasattr(values, "__array_namespace__") else values,
    )
    return from_numpy(host.astype(host.dtype), device(target))


def _as_tuple(index: Any) -> tuple[Any, ...]:
    return index if isinstance(index, tuple) else (index,)


def quiet(function: Any) -> Any:
    return function


# -- convolution / pooling (ops/nn.py) ------------------------------------------------------------
def sliding_windows(x: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> Any:
    """Every ``kernel`` window of the last two axes, ``stride`` apart (a copy: the standard has no views).

    Shapes: x (..., H, W) -> (..., Ho, Wo, kh, kw) with ``Ho = (H - kh) // sh + 1``.
    """
    xp = standard()
    (kh, kw), (sh, sw) = kernel, stride
    rows, columns = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
    # One strided slice per kernel offset (i, j), stacked last in (i, j) order: then (kh, kw).
    parts = [
        x[..., i : i + sh * (rows - 1) + 1 : sh, j : j + sw * (columns - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    return xp.reshape(xp.stack(parts, axis=-1), (*x.shape[:-2], rows, columns, kh, kw))
