"""CuPy arrays on a CUDA GPU as autobp's arrays, through array-api-compat's cupy namespace."""

from __future__ import annotations

from typing import Any

import numpy as np

NAME = "cupy"
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
]


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
        return cupy.array(array, copy=True)
    with cupy.cuda.Device(int(str(device).rsplit(":", 1)[-1])):
        return cupy.array(array, copy=True)


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


def scatter_add(target: Any, index: Any, values: Any) -> Any:
    """``target`` with ``values`` added at ``index``; repeated positions accumulate. Writes ``target``."""
    import cupyx

    cupyx.scatter_add(target, index, values)
    return target


def quiet(function: Any) -> Any:
    return function
