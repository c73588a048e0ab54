"""The registry-driven op suite: every registered op, checked the same four ways.

For each op, hypothesis draws inputs from the op's own hints (``autobp.testing.samples``), then:
the forward matches numpy, the gradient matches finite differences (gradcheck), the second
derivative too (gradgradcheck), and float32 stays float32 in value and gradient. Adding an op
to the registry adds it here; no test code is written per op.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
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
    "softplus": lambda x: np.log1p(np.exp(x)),
    "logsumexp": _logsumexp,
    "sum_to": _sum_to,
    "getitem": lambda x, index: x[index],
    "scatter_add": _scatter_add,
    "concatenate": lambda *xs, axis=0: np.concatenate(xs, axis=axis),
    "stack": lambda *xs, axis=0: np.stack(xs, axis=axis),
    "flatten": np.ravel,
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


def call(opdef: OpDef, sample: Sample, dtype: Any = np.float64, requires_grad: bool = False) -> Any:
    tensors = [
        ab.Tensor(a.astype(dtype) if a.dtype.kind == "f" else a, requires_grad=requires_grad and a.dtype.kind == "f")
        for a in sample.arrays
    ]
    return tensors, opdef.public(*tensors, **sample.kwargs)


def as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


@pytest.mark.parametrize("name", ALL_OPS)
@given(data=st.data())
def test_forward_matches_numpy(name: str, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    _, result = call(opdef, sample)
    expected = oracle(name)(*sample.arrays, **sample.kwargs)
    for got, want in zip(as_list(result), as_list(expected), strict=True):
        assert isinstance(got, ab.Tensor)
        assert got.shape == np.shape(want)
        assert got.dtype == np.asarray(want).dtype
        np.testing.assert_allclose(got.data, want, rtol=1e-12, atol=1e-12)


def _select_differentiable(opdef: OpDef, sample: Sample) -> tuple[list[ab.Tensor], Any]:
    tensors, _ = call(opdef, sample, requires_grad=True)

    def function(*inputs: ab.Tensor) -> Any:
        return opdef.public(*inputs, **sample.kwargs)

    return tensors, function


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data())
def test_gradcheck(name: str, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    tensors, function = _select_differentiable(opdef, sample)
    assert ab.gradcheck(function, tuple(tensors), atol=opdef.hints.fd_atol)


@pytest.mark.parametrize("name", SECOND_ORDER)
@given(data=st.data())
def test_gradgradcheck(name: str, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    tensors, function = _select_differentiable(opdef, sample)
    assert ab.gradgradcheck(function, tuple(tensors), atol=opdef.hints.fd_atol)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data())
def test_float32_stays_float32(name: str, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    if name == "astype":  # its very purpose is to change the dtype; its gradient still comes back as float32
        sample.kwargs["dtype"] = "float32"
    tensors, result = call(opdef, sample, dtype=np.float32, requires_grad=True)
    outputs = [r for r in as_list(result) if r.requires_grad]
    for out in as_list(result):
        assert out.dtype == np.float32, f"{name} returned {out.dtype} for float32 inputs"
    if not outputs:
        return
    leaves = [t for t in tensors if t.requires_grad]
    grads = ab.grad(outputs, leaves, grad_outputs=[ab.ones_like(o) for o in outputs], allow_unused=True)
    for leaf, g in zip(leaves, grads, strict=True):
        if g is not None:
            assert g.dtype == np.float32 and g.shape == leaf.shape


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
    assert opdef.forward.__doc__, f"{name} has no docstring"
