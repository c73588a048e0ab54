"""numpy: the default library, and the standard's functions numpy already has (numpy >= 2.1).

What the array API standard lacks, numpy's way; plus ``FORWARDS``, the numpy-only fast forwards
(bare ufuncs, no Python frame) that the registry uses when every input is a numpy array. The test
suite holds each to the same results as the op's general forward (tests/test_backends.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

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


# -- elementwise / activations / reductions ---------------------------------------------------------
# Fast forwards of autobp/ops/elementwise.py, activations.py and reduction.py: the ufunc itself (no
# Python frame; benchmarks/instructions.py w2), quiet where domain edges give inf/nan, buffers
# written in place, np.add.reduce for totals (W1). Each gives its general forward's values bit for
# bit (tests/test_backend_elementwise.py). Ops with no entry run their general forward on numpy.


def _sigmoid(x: Any) -> Any:
    # Accurate in both tails (4.7e-20 at x = -44.5, where 0.5 * (1 + tanh(x / 2)) rounds to 0);
    # below x = -709, e^-x overflows to inf and the result is 0, the right limit.
    t = np.negative(x)
    if type(t) is not np.ndarray or t.dtype.kind != "f":  # a scalar, or ints that exp makes floats
        return 1.0 / (1.0 + np.exp(t))
    # The general forward's three steps written into one buffer: the same values, two allocations fewer.
    np.exp(t, out=t)
    np.add(1.0, t, out=t)
    return np.divide(1.0, t, out=t)


def _tanh_backward(grad: Any, out: Any) -> Any:
    factor = np.square(out)
    if type(factor) is not np.ndarray:  # 0-d inputs give numpy scalars, not weak Python floats
        return grad * (1 - out * out)
    # The same three steps written into one buffer: the same values, one allocation fewer.
    np.subtract(1, factor, out=factor)
    return np.multiply(grad, factor, out=factor) if factor.shape == np.shape(grad) else grad * factor


def _sigmoid_backward(grad: Any, out: Any) -> Any:
    product = np.multiply(grad, out)
    if type(product) is not np.ndarray:
        return product * (1 - out)
    return np.multiply(product, np.subtract(1, out), out=product)  # no third array for the product


def _sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    if axis is None:  # the usual loss total: x.sum() without its Python wrapper
        array: Any = x if type(x) is np.ndarray else np.asarray(x)
        return np.add.reduce(array, None, keepdims=keepdims)  # type: ignore[call-overload]
    from autobp.ops.reduction import sum  # the general forward checks the axes (ops import this module)

    return sum.op.forward(x, axis, keepdims)


FORWARDS.update(
    {
        "div": quiet(np.true_divide),
        "pow": quiet(np.power),
        "exp": quiet(np.exp),
        "log": quiet(np.log),
        "log1p": quiet(np.log1p),
        "expm1": quiet(np.expm1),
        "sqrt": quiet(np.sqrt),
        "square": np.square,
        "abs": np.abs,
        "sin": np.sin,
        "cos": np.cos,
        "tan": np.tan,
        "sign": np.sign,
        "maximum": np.maximum,
        "minimum": np.minimum,
        "where": np.where,
        "tanh": np.tanh,
        "sigmoid": quiet(_sigmoid),
        "tanh_backward": _tanh_backward,
        "sigmoid_backward": _sigmoid_backward,
        "sum": _sum,
        "equal": np.equal,
        "not_equal": np.not_equal,
        "less": np.less,
        "less_equal": np.less_equal,
        "greater": np.greater,
        "greater_equal": np.greater_equal,
        "logical_and": np.logical_and,
        "logical_or": np.logical_or,
        "logical_not": np.logical_not,
    }
)
