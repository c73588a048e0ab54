"""numpy: the default library, and the standard's functions numpy already has (numpy >= 2.1).

What the array API standard lacks, numpy's way; plus ``FORWARDS``, the numpy-only fast forwards
(bare ufuncs, no Python frame) that the registry uses when every input is a numpy array. The test
suite holds each to the same results as the op's general forward (tests/test_backends.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.backends import namespace, numpy_nn
from autobp.backends.interface import EXTRAS
from autobp.backends.numpy_errors import quiet as quiet  # (the ops import it from here)
from autobp.backends.shapes import summed_axes

NAME = "numpy"
__all__ = list(EXTRAS)  # every extra (autobp/backends/interface.py)


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


def owns_memory(x: Any) -> bool:
    """Whether ``x`` is a writeable array of memory of its own (no view): one that autobp may
    write into where it made it (backward's sum into ``.grad``, ``zero_grad``)."""
    return x.base is None and x.flags.writeable


def memory_owner(x: Any) -> Any:
    """The array that owns ``x``'s memory (``x`` itself unless it is a view): views of one
    owner share a version counter (``autobp.storage.share_storage``)."""
    base = x.base
    while isinstance(base, np.ndarray):
        x, base = base, base.base
    return x


def strides(x: Any) -> Any:
    """``x``'s layout: the order a sum or product over it adds in follows it (a tape keys on it)."""
    return x.strides


def scatter_add(target: np.ndarray, index: Any, values: Any) -> np.ndarray:
    """``target`` with ``values`` added at ``index``; repeated positions accumulate. Writes ``target``."""
    np.add.at(target, index, values)
    return target


# -- shape / indexing / linalg ---------------------------------------------------------------------
# numpy's indexing is the reference: integer arrays anywhere, negative steps (ops/indexing.py).
advanced_indexing = "anywhere"
negative_steps = True


def sum_kept(x: Any, axes: tuple[int, ...]) -> Any:
    """``x`` summed over ``axes``, kept with size 1 (the ufunc's reduce: np.sum without its wrapper,
    which the engine's sum_to feels every backward: benchmarks/instructions.py)."""
    if x.dtype.char == "e":
        # float16: numpy adds along an outer axis one row at a time in float16, which stalls (a
        # bias gradient of 20000 rows of 0.01 came to 32); in float32, as PyTorch accumulates.
        return np.add.reduce(x, axes, keepdims=True, dtype=np.float32).astype(np.float16)
    return np.add.reduce(x, axes, keepdims=True)


# The products with a transposed operand are extras, not fast forwards: a backward calls them
# with no check of its arguments' library in between (benchmarks/instructions.py, W1).
def matmul_nt(x: Any, y: Any) -> Any:
    """``x @ y^T`` over the last two axes (a view swaps them: no copy)."""
    if x.shape[-1] == 1 and is_outer(x, y, -1):  # (the usual product fails the first test, with no call)
        return _outer(x, y.swapaxes(-1, -2))
    return np.matmul(x, y.swapaxes(-1, -2))


def matmul_tn(x: Any, y: Any) -> Any:
    """``x^T @ y`` over the last two axes."""
    if x.shape[-2] == 1 and is_outer(x, y, -2):
        return _outer(x.swapaxes(-1, -2), y)
    return np.matmul(x.swapaxes(-1, -2), y)


# A product summing one term (k = 1: the gradient of a layer with one output unit, or of a batch
# of one) is an outer product. numpy hands it to BLAS's gemm all the same, which takes 2.4x as
# long as a broadcast multiply for (128, 1) times (1, 64) (W5's output layer: three per step).
# Every element is then one product, rounded once, either way; only the sign of a zero product
# differs: gemm adds it to +0.0, the multiply keeps the product's (-0.0 for -1 * 0). Real float32
# and float64 only: a complex product or a float16 one may round differently in BLAS's kernels.
def is_outer(x: Any, y: Any, axis: int) -> bool:
    """Whether ``x`` and ``y`` (arrays, two dimensions or more) have one term along the summed
    ``axis`` (-1 for ``matmul_nt``, -2 for ``matmul_tn``) and a real float32 or float64 dtype."""
    return (
        x.ndim >= 2
        and y.ndim >= 2
        and x.shape[axis] == 1
        and y.shape[axis] == 1
        and x.dtype.char in _BLAS_REAL
        and y.dtype.char in _BLAS_REAL
    )


_BLAS_REAL = ("f", "d")
# (quiet as matmul is: an overflowing product is inf without a warning)
_outer = quiet(np.multiply)


def _transposed_product(name: str, x: Any, y: Any) -> Any:
    # The backward's matrix products (two or three per W1 step): numpy's call straight away, the
    # general forward (which checks and explains the operands) for anything but two matrices.
    if type(x) is np.ndarray and type(y) is np.ndarray and x.ndim >= 2 and y.ndim >= 2:
        return matmul_nt(x, y) if name == "matmul_nt" else matmul_tn(x, y)
    from autobp.ops.registry import REGISTRY  # (the ops import this module)

    return REGISTRY[name].forward(x, y)


def einsum(subscripts: str, *operands: Any) -> Any:
    """Einstein summation; ``subscripts`` explicit (``"ij,jk->ik"``), one letter per axis."""
    # optimize picks a contraction order and BLAS for two or more operands.
    return np.asarray(np.einsum(subscripts, *operands, optimize=len(operands) > 1))


def _sum_to(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    shape = shape if type(shape) is tuple else tuple(shape)
    axes = summed_axes(x.shape, shape)
    if not axes:
        summed = x
    elif x.dtype.char != "e":
        summed = np.add.reduce(x, axes, keepdims=True)  # x.sum(...) without its wrapper
    else:
        summed = sum_kept(x, axes)  # float16, in float32
    return summed if summed.shape == shape else summed.reshape(shape)


def _broadcast_to(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(x)
    shape = tuple(shape)
    if x.ndim == 0 and x.flags.c_contiguous:
        # The view np.broadcast_to makes of a 0-d array (all strides 0), at a fifth of its cost:
        # this runs in the backward of every full sum and mean.
        view = np.ndarray(shape, x.dtype, x, 0, (0,) * len(shape))
        view.setflags(False)  # (write=, positionally: half the call's cost)
        return view
    return np.broadcast_to(x, shape)


def _swapaxes(x: Any, axis1: int, axis2: int) -> np.ndarray:
    return x.swapaxes(axis1, axis2) if type(x) is np.ndarray else np.swapaxes(x, axis1, axis2)


_HOST = np.empty(0)


def _host_index(index: Any) -> Any:
    """An index with Tensor and list components as numpy arrays, as numpy's indexing takes it."""
    parts = index if isinstance(index, tuple) else (index,)
    key = []
    for part in parts:
        if type(part).__name__ == "Tensor":
            part = part.data
        if isinstance(part, list):
            part = np.asarray(part)
            part = part.astype(np.intp) if part.size == 0 else part  # [] selects nothing, as integers
        elif type(part) is not np.ndarray and hasattr(part, "shape") and not isinstance(part, np.generic):
            namespace(_HOST, part)  # another library's array as an index: refused, never copied here
        key.append(part)
    return tuple(key) if isinstance(index, tuple) else key[0]


def _index_error(name: str, shape: tuple[int, ...], index: Any, error: Exception) -> Exception:
    from autobp.ops.indexing import index_error  # the error path only: the ops import this module

    return index_error(name, shape, index, error)


def _getitem(x: Any, index: Any) -> np.ndarray:
    x = np.asarray(x)
    try:
        return np.asarray(x[_host_index(index)])
    except (IndexError, ValueError, TypeError) as error:
        raise _index_error("getitem", x.shape, index, error) from error


def _scatter_add(values: Any, index: Any, shape: tuple[int, ...]) -> np.ndarray:
    values = np.asarray(values)
    shape = tuple(shape)
    result = np.zeros(shape, dtype=values.dtype)
    key = _host_index(index)
    try:
        parts = key if isinstance(key, tuple) else (key,)
        if any(isinstance(p, np.ndarray) and p.ndim > 0 and p.dtype.kind in "iu" for p in parts):
            np.add.at(result, key, values)  # an integer array may repeat a position: accumulate
        else:
            result[key] = values  # each element at most once: a plain write, much faster
    except (IndexError, ValueError, TypeError) as error:
        raise _index_error("scatter_add", shape, index, error) from error
    return result


def _ufuncs_give_arrays() -> bool:
    """Whether a ufunc called with ``out=...`` returns a 0-d result as an array (numpy >= 2.3),
    where it would give a numpy scalar."""
    try:
        return type(np.add(np.zeros(()), 1.0, out=...)) is np.ndarray
    except TypeError:
        return False


ARRAY_OUT = _ufuncs_give_arrays()


# The numpy-only fast forwards by op name (see the module docstring); the op files' general
# forwards are the reference.
FORWARDS: dict[str, Any] = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "neg": np.negative,
    # shape / indexing / linalg
    "sum_to": _sum_to,
    "broadcast_to": _broadcast_to,
    "reshape": np.reshape,
    "transpose": np.transpose,
    "swapaxes": _swapaxes,
    "getitem": _getitem,
    "scatter_add": _scatter_add,
    "matmul": np.matmul,
    "matmul_nt": lambda x, y: _transposed_product("matmul_nt", x, y),
    "matmul_tn": lambda x, y: _transposed_product("matmul_tn", x, y),
}


# -- convolution / pooling (ops/nn.py) ------------------------------------------------------------
def pad(x: Any, widths: Any, mode: str, **keywords: Any) -> Any:
    """numpy's own ``pad`` (the standard has none)."""
    return np.pad(x, widths, mode, **keywords)  # type: ignore[call-overload]


def sliding_windows(x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """Every ``kernel`` window of the last two axes, ``stride`` apart, as a read-only view.

    Shapes: x (..., H, W) -> (..., Ho, Wo, kh, kw) with ``Ho = (H - kh) // sh + 1``.
    """
    found = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(-2, -1))
    return found[..., :: stride[0], :: stride[1], :, :]


# The convolution and pooling ops' fast forwards: strided slices per kernel offset, out= buffers.
FORWARDS.update(numpy_nn.FORWARDS)


# -- elementwise / activations / reductions ---------------------------------------------------------
# Fast forwards of autobp/ops/elementwise/, activations.py and reduction.py: the ufunc itself (no
# Python frame; benchmarks/instructions.py w2), quiet where domain edges give inf/nan, buffers
# written in place, np.add.reduce for totals (W1). Each gives its general forward's values bit for
# bit (tests/test_backend_elementwise.py). Ops with no entry run their general forward on numpy.


def _sigmoid(x: Any) -> Any:
    # Accurate in both tails (4.7e-20 at x = -44.5, where 0.5 * (1 + tanh(x / 2)) rounds to 0);
    # below x = -709, e^-x overflows to inf and the result is 0, the right limit.
    if type(x) is np.ndarray and x.dtype.char in "fdg":  # float32, float64 and long double arrays
        t = np.negative(x)
        if type(t) is not np.ndarray:  # (a 0-d array's negation is a numpy scalar)
            return 1.0 / (1.0 + np.exp(t))
        # The general forward's three steps written into one buffer: the same values, two allocations
        # fewer. (`out` positionally: a keyword costs numpy a slower argument parsing.)
        np.exp(t, t)
        np.add(1.0, t, t)
        return np.divide(1.0, t, t)
    # A scalar, integers, converted first to the float exp makes of them (-x wraps around in
    # uint8: the sigmoid of 3 was 0), or float16, whose e^-x overflows below x = -11.1 where the
    # sigmoid is still a float16 subnormal (6e-6 at -12): float32, rounded once.
    x = np.asarray(x)
    if x.dtype.kind not in "fc":
        x = x.astype(np.exp(np.zeros((), x.dtype)).dtype)
    t = np.negative(x)
    if np.result_type(t) == np.float16:
        return (1.0 / (1.0 + np.exp(t.astype(np.float32)))).astype(np.float16)
    return 1.0 / (1.0 + np.exp(t))


_FLOAT64, _ONE_FLOAT64 = np.dtype(np.float64), np.ones((), np.float64)
_ONE_FLOAT64.setflags(write=False)  # (shared by every call: never written)


def _tanh_backward(grad: Any, out: Any) -> Any:
    factor = out * out
    if type(factor) is not np.ndarray or factor.dtype.kind != "f":  # (0-d inputs give numpy scalars)
        return grad * (1 - factor)
    # The same three steps written into one buffer, where grad's dtype and shape fit it: the same
    # values, one allocation fewer. Positional `out`: numpy parses no keyword. The 1 is a float64
    # 0-d array for float64 (numpy converts no Python number then: 130 ns, W2 1%), else `1.0`
    # (converted faster than an int, to the same value in a float array).
    np.subtract(_ONE_FLOAT64 if factor.dtype is _FLOAT64 else 1.0, factor, factor)
    if type(grad) is np.ndarray and grad.dtype is factor.dtype:
        try:  # (a grad broadcasting to factor's shape fits it; a larger one numpy refuses: no shapes compared)
            return np.multiply(grad, factor, factor)
        except ValueError:
            pass
    return grad * factor  # (float64 grad with float32 out: float64, as the general forward gives)


def _sigmoid_backward(grad: Any, out: Any) -> Any:
    product = np.multiply(grad, out)
    if type(product) is not np.ndarray:
        return product * (1 - out)
    return np.multiply(product, np.subtract(1, out), product)  # (into product: no third array)


def _sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    if axis is None:  # the usual loss total: x.sum() without its Python wrapper
        array: Any = x if type(x) is np.ndarray else np.asarray(x)
        if array.dtype.char != "e":  # (float16 accumulates in float32: the general forward)
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
