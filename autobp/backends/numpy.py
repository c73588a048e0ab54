"""numpy: the default library, and the standard's functions numpy already has (numpy >= 2.1).

What the array API standard lacks, numpy's way; plus ``FORWARDS``, the numpy-only fast forwards
(bare ufuncs, no Python frame) that the registry uses when every input is a numpy array. The test
suite holds each to the same results as the op's general forward (tests/test_backends.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.backends import numpy_nn

NAME = "numpy"
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
    return np


def to_numpy(x: Any) -> np.ndarray:
    """The array on the host as a numpy array (no copy for numpy)."""
    return np.asarray(x)


def from_numpy(array: np.ndarray, device: Any = None) -> np.ndarray:
    """A copy of a numpy array in this library, on ``device``."""
    if device not in (None, "cpu"):
        raise ValueError(f"numpy arrays live on the cpu, not on {device!r}")
    return np.array(array, copy=True)


def device(x: Any) -> str:
    return "cpu"


def device_name(x: Any) -> str:
    return "cpu"


def dtype_name(dtype: Any) -> str:
    return str(np.dtype(dtype))


def float_dtype(dtype: Any) -> bool:
    """Whether ``dtype`` is a real floating-point type (the only kind that takes gradients)."""
    return np.dtype(dtype).kind == "f"


def is_view(x: Any) -> bool:
    """Whether ``x`` looks into another array's memory."""
    return x.base is not None


def scatter_add(target: np.ndarray, index: Any, values: Any) -> np.ndarray:
    """``target`` with ``values`` added at ``index``; repeated positions accumulate. Writes ``target``."""
    np.add.at(target, index, values)
    return target


def quiet(function: Any) -> Any:
    """``function`` run with numpy's floating-point warnings off (domain edges give inf and nan).

    Its ``quiet_body`` is the undecorated function: a tape's replay, quiet throughout, calls that.
    """
    # errstate as a decorator costs half of a ``with`` block per call (no context object per call).
    run = np.errstate(all="ignore")(function)
    run.quiet_body = function  # type: ignore[attr-defined]
    return run


# The numpy-only fast forwards by op name (see the module docstring); the op files' general
# forwards are the reference.
FORWARDS: dict[str, Any] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "neg": np.negative,
}


# -- convolution / pooling (ops/nn.py) ------------------------------------------------------------
def sliding_windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Every ``kernel`` window of the last two axes, ``stride`` apart, as a read-only view.

    Shapes: x (..., H, W) -> (..., Ho, Wo, kh, kw) with ``Ho = (H - kh) // sh + 1``.
    """
    found = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(-2, -1))
    return found[..., :: stride[0], :: stride[1], :, :]


# The convolution and pooling ops' fast forwards: strided slices per kernel offset, out= buffers.
FORWARDS.update(numpy_nn.FORWARDS)
