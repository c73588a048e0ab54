"""The registry-driven op suite: every registered op, checked the same four ways.

For each op, hypothesis draws inputs from the op's own hints (``autobp.testing.samples``), then:
the forward matches numpy, the gradient matches finite differences (gradcheck), the second
derivative too (gradgradcheck), float32 stays float32 in value and gradient, and a taped
gradient (``autobp.tape``) equals the eager one bit for bit. Adding an op to the registry adds
it here; no test code is written per op.

``--array-library array_api_strict`` (or ``torch``, ``cupy``) runs the same checks with the
inputs in that library: results and gradients must stay in it, and are compared on the host.
``tests/test_ops_libraries.py`` holds each library's numbers to numpy's.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
from conftest import Library
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp.ops.registry import REGISTRY, OpDef
from autobp.testing.samples import Sample, samples_for


def _logsumexp(x: np.ndarray, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    peak = np.max(x, axis=axis, keepdims=True)
    summed = np.log(np.sum(np.exp(x - peak), axis=axis, keepdims=True)) + peak
    return summed if keepdims else np.squeeze(summed, axis=axis)


def _sum_to(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    # The defining property: the sum over the broadcast copies, computed the slow, obvious way.
    total = np.zeros(shape)
    for index in np.ndindex(x.shape):
        target = tuple(0 if n == 1 else i for i, n in zip(index[x.ndim - len(shape) :], shape, strict=True))
        total[target] += x[index]
    return total


def _scatter_add(values: np.ndarray, index: Any, shape: tuple[int, ...]) -> np.ndarray:
    # Element by element, so repeated positions add up without relying on np.add.at.
    total = np.zeros(shape)
    positions = np.arange(int(np.prod(shape))).reshape(shape)[index]
    for flat, v in zip(np.ravel(positions), np.ravel(np.broadcast_to(values, positions.shape)), strict=True):
        total[np.unravel_index(flat, shape)] += v
    return total


# -- convolution and pooling: the slow, obvious loops --------------------------------------------------
def _pairs(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _pad(x: np.ndarray, ph: int, pw: int, fill: float = 0.0) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill)


def conv2d_oracle(x: np.ndarray, w: np.ndarray, stride: Any = 1, padding: Any = 0) -> np.ndarray:
    (sh, sw), (ph, pw) = _pairs(stride), _pairs(padding)
    xp, (kh, kw) = _pad(x, ph, pw), w.shape[2:]
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo), dtype=np.result_type(x, w))
    for i in range(ho):
        for j in range(wo):
            window = xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", window, w)
    return out


def conv_transpose2d_oracle(
    x: np.ndarray, w: np.ndarray, stride: Any = 1, padding: Any = 0, output_padding: Any = 0
) -> np.ndarray:
    (sh, sw), (ph, pw), (oh, ow) = _pairs(stride), _pairs(padding), _pairs(output_padding)
    n, _, ho, wo = x.shape
    kh, kw = w.shape[2:]
    out = np.zeros((n, w.shape[1], (ho - 1) * sh + kh + oh, (wo - 1) * sw + kw + ow), dtype=np.result_type(x, w))
    for i in range(ho):
        for j in range(wo):
            out[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw] += np.einsum("no,ochw->nchw", x[:, :, i, j], w)
    return out[:, :, ph : out.shape[2] - ph, pw : out.shape[3] - pw]


def conv2d_weight_oracle(
    x: np.ndarray, grad: np.ndarray, kernel_size: Any, stride: Any = 1, padding: Any = 0
) -> np.ndarray:
    (kh, kw), (sh, sw), (ph, pw) = _pairs(kernel_size), _pairs(stride), _pairs(padding)
    xp = _pad(x, ph, pw)
    out = np.zeros((grad.shape[1], x.shape[1], kh, kw), dtype=np.result_type(x, grad))
    for i in range(grad.shape[2]):
        for j in range(grad.shape[3]):
            out += np.einsum("no,nchw->ochw", grad[:, :, i, j], xp[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw])
    return out


def _pool_windows(x: np.ndarray, kernel_size: Any, stride: Any, padding: int):  # type: ignore[no-untyped-def]
    (kh, kw) = _pairs(kernel_size)
    (sh, sw) = (kh, kw) if stride is None else _pairs(stride)
    xp = _pad(x, padding, padding, -np.inf)
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    for i in range(ho):
        for j in range(wo):
            rows, cols = slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw)
            window = xp[:, :, rows, cols].reshape(x.shape[0], x.shape[1], -1)
            yield i, j, rows, cols, window.argmax(axis=-1), (ho, wo), kw


def max_pool2d_oracle(x: np.ndarray, kernel_size: Any = 2, stride: Any = None, padding: int = 0) -> np.ndarray:
    out = None
    for i, j, rows, cols, index, size, _kw in _pool_windows(x, kernel_size, stride, padding):
        out = np.zeros((*x.shape[:2], *size), dtype=x.dtype) if out is None else out
        xp = _pad(x, padding, padding, -np.inf)[:, :, rows, cols].reshape(*x.shape[:2], -1)
        out[:, :, i, j] = np.take_along_axis(xp, index[..., None], -1)[..., 0]
    return out


def max_pool2d_scatter_oracle(
    grad: np.ndarray, x: np.ndarray, kernel_size: Any = 2, stride: Any = None, padding: int = 0
) -> np.ndarray:
    out = np.zeros((x.shape[0], x.shape[1], x.shape[2] + 2 * padding, x.shape[3] + 2 * padding), dtype=grad.dtype)
    for i, j, rows, cols, index, _, kw in _pool_windows(x, kernel_size, stride, padding):
        for a in range(x.shape[0]):
            for b in range(x.shape[1]):
                out[a, b, rows.start + index[a, b] // kw, cols.start + index[a, b] % kw] += grad[a, b, i, j]
    return out[:, :, padding : padding + x.shape[2], padding : padding + x.shape[3]]


def max_pool2d_gather_oracle(
    values: np.ndarray, x: np.ndarray, kernel_size: Any = 2, stride: Any = None, padding: int = 0
) -> np.ndarray:
    out = None
    vp = _pad(values, padding, padding)
    for i, j, rows, cols, index, size, _kw in _pool_windows(x, kernel_size, stride, padding):
        out = np.zeros((*x.shape[:2], *size), dtype=values.dtype) if out is None else out
        window = vp[:, :, rows, cols].reshape(*x.shape[:2], -1)
        out[:, :, i, j] = np.take_along_axis(window, index[..., None], -1)[..., 0]
    return out


NN_ORACLES = {
    "conv2d": conv2d_oracle,
    "conv_transpose2d": conv_transpose2d_oracle,
    "conv2d_weight": conv2d_weight_oracle,
    "max_pool2d": max_pool2d_oracle,
    "max_pool2d_scatter": max_pool2d_scatter_oracle,
    "max_pool2d_gather": max_pool2d_gather_oracle,
}


# numpy oracles for ops whose numpy spelling differs; others use getattr(np, op name).
ORACLES: dict[str, Any] = {
    "sub": np.subtract,
    "mul": np.multiply,
    "div": np.true_divide,
    "pow": np.power,
    "neg": np.negative,
    "copy": np.copy,
    "astype": lambda x, dtype: x.astype(dtype),
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
    "relu": lambda x: x * (x > 0),
    "sigmoid_backward": lambda grad, out: grad * out * (1 - out),
    "tanh_backward": lambda grad, out: grad * (1 - out**2),
    "matmul_nt": lambda x, y: x @ np.swapaxes(y, -1, -2),
    "matmul_tn": lambda x, y: np.swapaxes(x, -1, -2) @ y,
    "softplus": lambda x: np.log1p(np.exp(x)),
    "logsumexp": _logsumexp,
    "sum_to": _sum_to,
    "getitem": lambda x, index: x[index],
    "scatter_add": _scatter_add,
    "concatenate": lambda *xs, axis=0: np.concatenate(xs, axis=axis),
    "stack": lambda *xs, axis=0: np.stack(xs, axis=axis),
    "flatten": np.ravel,
    **NN_ORACLES,
    "einsum": lambda *operands, subscripts: np.einsum(subscripts, *operands),
    "clip": lambda x, a_min=None, a_max=None: x if a_min is None and a_max is None else np.clip(x, a_min, a_max),
}


def oracle(name: str) -> Any:
    found = ORACLES.get(name, getattr(np, name, None))
    assert found is not None, f"op {name!r} has no numpy oracle: add one to ORACLES"
    return found


DIFFERENTIABLE = sorted(name for name, opdef in REGISTRY.items() if opdef.differentiable)
ALL_OPS = sorted(REGISTRY)
SECOND_ORDER = sorted(name for name in DIFFERENTIABLE if REGISTRY[name].hints.second_order)


def call(opdef: OpDef, sample: Sample, library: Library, dtype: Any = np.float64, requires_grad: bool = False) -> Any:
    tensors = [
        library.tensor(
            a.astype(dtype) if a.dtype.kind == "f" else a, requires_grad=requires_grad and a.dtype.kind == "f"
        )
        for a in sample.arrays
    ]
    return tensors, opdef.public(*tensors, **library.kwargs(sample.kwargs))


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


@pytest.mark.parametrize("name", ALL_OPS)
@given(data=st.data())
def test_forward_matches_numpy(name: str, library: Library, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    _, result = call(opdef, sample, library)
    expected = oracle(name)(*sample.arrays, **sample.kwargs)
    for got, want in zip(as_list(result), as_list(expected), strict=True):
        assert isinstance(got, ab.Tensor)
        assert got.library == library.name
        assert tuple(got.shape) == np.shape(want)
        assert got.numpy().dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


def _select_differentiable(opdef: OpDef, sample: Sample, library: Library) -> tuple[list[ab.Tensor], Any]:
    tensors, _ = call(opdef, sample, library, requires_grad=True)
    kwargs = library.kwargs(sample.kwargs)

    def function(*inputs: ab.Tensor) -> Any:
        return opdef.public(*inputs, **kwargs)

    return tensors, function


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data())
def test_gradcheck(name: str, library: Library, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    tensors, function = _select_differentiable(opdef, sample, library)
    assert ab.gradcheck(function, tuple(tensors), atol=opdef.hints.fd_atol)


@pytest.mark.parametrize("name", SECOND_ORDER)
@given(data=st.data())
def test_gradgradcheck(name: str, library: Library, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    tensors, function = _select_differentiable(opdef, sample, library)
    assert ab.gradgradcheck(function, tuple(tensors), atol=opdef.hints.fd_atol)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data())
def test_float32_stays_float32(name: str, library: Library, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    if name == "astype":  # its very purpose is to change the dtype; its gradient still comes back as float32
        sample.kwargs["dtype"] = "float32"
    tensors, result = call(opdef, sample, library, dtype=np.float32, requires_grad=True)
    outputs = [r for r in as_list(result) if r.requires_grad]
    for out in as_list(result):
        assert library.dtype(out) == "float32", f"{name} returned {out.dtype} for float32 inputs"
        assert out.library == library.name, f"{name} returned a {out.library} array for {library.name} inputs"
    if not outputs:
        return
    leaves = [t for t in tensors if t.requires_grad]
    seeds = [library.tensor(np.ones(o.shape, np.float32)) for o in outputs]
    grads = ab.grad(outputs, leaves, grad_outputs=seeds, allow_unused=True)
    for leaf, g in zip(leaves, grads, strict=True):
        if g is not None:
            assert library.dtype(g) == "float32" and g.shape == leaf.shape
            assert (g.library, g.device) == (leaf.library, leaf.device)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data())
def test_tape_replays_the_eager_gradient(name: str, library: Library, data: st.DataObject) -> None:
    # A taped value_and_grad must give the eager numbers bit for bit: on the traced values, on the
    # first replay (which also checks itself against an eager run) and on new values of the same shapes.
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    kwargs = library.kwargs(sample.kwargs)

    def loss(*inputs: ab.Tensor) -> Any:
        outputs = [o for o in as_list(opdef.public(*inputs, **kwargs)) if library.xp.float_dtype(o.dtype)]
        return sum((o * o).sum() for o in outputs)

    # Differentiate the float inputs the output depends on (max_pool2d_gather's x only indexes).
    tensors = [library.tensor(a, requires_grad=a.dtype.kind == "f") for a in sample.arrays]
    positions = [i for i, t in enumerate(tensors) if t.requires_grad]
    used = ab.grad(loss(*tensors), [tensors[i] for i in positions], allow_unused=True)
    floats = tuple(i for i, g in zip(positions, used, strict=True) if g is not None)
    taped = ab.tape.value_and_grad(loss, floats)
    eager = ab.functional.value_and_grad(loss, floats)
    scaled = [a * 0.97 if a.dtype.kind == "f" else a for a in sample.arrays]
    for host in (sample.arrays, sample.arrays, scaled):
        arrays = [library.array(a) for a in host]
        (value, grads), (want, wanted) = taped(*arrays), eager(*[ab.tensor(a) for a in arrays])
        for got, expected in zip([value, *grads], [want, *wanted], strict=True):
            assert library.dtype(got) == library.dtype(expected) and got.shape == expected.shape
            assert (got.library, got.device) == (expected.library, expected.device)
            assert np.array_equal(got.numpy(), expected.numpy(), equal_nan=True), f"{name}: replay differs from eager"


# -- the registry is the API -----------------------------------------------------------------------------
NOT_OPS = {
    # Public callables that are not ops on tensors: creation, the engine, the testing kit, I/O.
    "tensor", "Tensor", "grad", "no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled",
    "gradcheck", "gradgradcheck", "GradcheckError", "arange", "eye", "full", "full_like", "linspace",
    "normal", "ones", "ones_like", "rand", "randn", "uniform", "zeros", "zeros_like", "save", "load",
    "detect_anomaly", "set_detect_anomaly", "is_anomaly_enabled",
}  # fmt: skip


def test_every_public_function_is_a_registered_op() -> None:
    unregistered = []
    for name in ab.__all__:
        value = getattr(ab, name)
        if name in NOT_OPS or inspect.ismodule(value) or inspect.isclass(value) or not callable(value):
            continue
        entry = getattr(value, "op", None)
        if not isinstance(entry, OpDef) or REGISTRY.get(entry.name) is not entry:
            unregistered.append(name)
    assert not unregistered, f"public functions without a registry entry: {unregistered}"


@pytest.mark.parametrize("name", ALL_OPS)
def test_every_op_is_complete(name: str) -> None:
    opdef = REGISTRY[name]
    samples_for(opdef)  # its hints name a sample kind that exists
    oracle(name)
    if opdef.differentiable and not opdef.composite:
        assert opdef.rules or opdef.variadic_rule, f"{name} is differentiable but has no vjp"
    assert opdef.declared.__doc__, f"{name} has no docstring"


def test_the_op_namespace_lists_every_public_op() -> None:
    # autobp.ops.__all__ is written out (so type checkers see every op); it must match the registry.
    import autobp.ops

    public = {
        name
        for name, value in vars(autobp.ops).items()
        if not name.startswith("_") and isinstance(getattr(value, "op", None), OpDef)
    }
    assert set(autobp.ops.__all__) == public
    # Every registry entry is public (ab.<name>) or internal (a speed-only adjoint op), not both.
    exported = {getattr(ab, n).op.name for n in public}
    assert set(REGISTRY) == exported | autobp.ops.INTERNAL and not exported & autobp.ops.INTERNAL
