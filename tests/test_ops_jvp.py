"""Forward mode over the registry: every differentiable op's jvp, checked three ways.

For each op, hypothesis draws inputs from the op's hints (as ``tests/test_ops.py`` does), a
random tangent ``v`` per float input and a random cotangent ``u`` per float output, then:
the jvp and the vjp describe one Jacobian (``<u, J v> == <J^T u, v>``), the jvp matches central
finite differences, and forward-over-reverse (the jvp of the gradient of ``<u, f>``) matches
reverse-over-reverse, as reverse-over-forward does. Adding an op to the registry adds it here;
no test code is written per op. ``--array-library torch`` (or ``array_api_strict``, ``cupy``)
runs the same checks with every input in that library; numbers are compared on the host.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import Library
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp.ops.registry import REGISTRY, OpDef
from autobp.testing.samples import Sample, samples_for

DIFFERENTIABLE = sorted(name for name, opdef in REGISTRY.items() if opdef.differentiable)
SECOND_ORDER = sorted(name for name in DIFFERENTIABLE if REGISTRY[name].hints.second_order)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _setup(
    opdef: OpDef, sample: Sample, seed: int, library: Library
) -> tuple[Callable[..., Any], list[ab.Tensor], list[ab.Tensor]]:
    """The op as a function of its float inputs (the others fixed), those inputs, and a tangent each,
    all in ``library``."""
    positions = [i for i, a in enumerate(sample.arrays) if a.dtype.kind == "f"]
    fixed = [library.array(a) for a in sample.arrays]
    kwargs = library.kwargs(sample.kwargs)

    def function(*floats: ab.Tensor) -> tuple[ab.Tensor, ...]:
        arrays: list[Any] = list(fixed)
        for i, value in zip(positions, floats, strict=True):
            arrays[i] = value
        outputs = _as_list(opdef.public(*arrays, **kwargs))
        return tuple(o for o in outputs if library.xp.float_dtype(o.dtype))

    rng = np.random.default_rng(seed)
    inputs = [library.tensor(sample.arrays[i]) for i in positions]
    tangents = [library.tensor(rng.standard_normal(x.shape)) for x in inputs]
    return function, inputs, tangents


def _inner(xs: list[ab.Tensor], ys: list[ab.Tensor]) -> float:
    """The sum of the elementwise products, in float64 on the host."""
    return float(sum(np.sum(np.asarray(x.numpy(), dtype=np.float64) * y.numpy()) for x, y in zip(xs, ys, strict=True)))


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_jvp_is_the_transpose_of_the_vjp(name: str, library: Library, data: st.DataObject, seed: int) -> None:
    opdef = REGISTRY[name]
    function, inputs, tangents = _setup(opdef, data.draw(samples_for(opdef), label="sample"), seed, library)
    outputs, jv = ab.functional.jvp(function, tuple(inputs), tuple(tangents))
    rng = np.random.default_rng(seed + 1)
    cotangents = tuple(library.tensor(rng.standard_normal(o.shape)) for o in outputs)
    _, jtu = ab.functional.vjp(function, tuple(inputs), cotangents)
    for derivative in (*jv, *jtu):
        assert (derivative.library, derivative.device) == (inputs[0].library, inputs[0].device), name
    forward = _inner(list(cotangents), list(jv))
    reverse = _inner(list(jtu), tangents)
    scale = 1.0 + _inner(list(cotangents), list(cotangents)) ** 0.5
    assert forward == pytest.approx(reverse, rel=1e-9, abs=1e-9 * scale), f"{name}: <u, J v> != <J^T u, v>"
    # The general path (rules on Tensors, recorded) gives the numbers the array path gave.
    _, general = ab.functional.jvp(function, tuple(inputs), tuple(tangents), create_graph=True)
    for fast, slow in zip(jv, general, strict=True):
        np.testing.assert_allclose(fast.numpy(), slow.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_jvp_matches_central_differences(name: str, library: Library, data: st.DataObject, seed: int) -> None:
    opdef = REGISTRY[name]
    function, inputs, tangents = _setup(opdef, data.draw(samples_for(opdef), label="sample"), seed, library)
    _, jv = ab.functional.jvp(function, tuple(inputs), tuple(tangents))
    step = 1e-6
    # The trial points on the host in float64, then moved to the library (as gradcheck does).
    ahead = function(*[library.tensor(x.numpy() + step * t.numpy()) for x, t in zip(inputs, tangents, strict=True)])
    behind = function(*[library.tensor(x.numpy() - step * t.numpy()) for x, t in zip(inputs, tangents, strict=True)])
    for got, plus, minus in zip(jv, ahead, behind, strict=True):
        expected = (plus.numpy() - minus.numpy()) / (2 * step)
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-4, atol=max(opdef.hints.fd_atol, 1e-5) * 10)


@pytest.mark.parametrize("name", SECOND_ORDER)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_jvp_of_the_vjp_matches_reverse_over_reverse(
    name: str, library: Library, data: st.DataObject, seed: int
) -> None:
    # h(x) = <u, f(x)>; its Hessian times v by forward-over-reverse (functional.hvp) and by two
    # reverse passes (the gradient of <grad h, v>).
    opdef = REGISTRY[name]
    function, inputs, tangents = _setup(opdef, data.draw(samples_for(opdef), label="sample"), seed, library)
    outputs = function(*inputs)
    rng = np.random.default_rng(seed + 1)
    cotangents = [library.tensor(rng.standard_normal(o.shape)) for o in outputs]

    def h(*xs: ab.Tensor) -> ab.Tensor:
        total = library.tensor(np.zeros(()))
        for out, u in zip(function(*xs), cotangents, strict=True):
            total = total + (out * u).sum()
        return total

    _, forward = ab.functional.hvp(h, tuple(inputs), tuple(tangents))
    # Without create_graph the gradient's rules record nothing (engine.grad_carrying_tangents);
    # with it they record, and their tangents carry the same numbers.
    _, recorded = ab.functional.hvp(h, tuple(inputs), tuple(tangents), create_graph=True)
    for got, other in zip(forward, recorded, strict=True):
        np.testing.assert_allclose(got.numpy(), other.detach().numpy(), rtol=1e-12, atol=1e-12)
    leaves = [ab.tensor(x.data, requires_grad=True) for x in inputs]
    grads = ab.grad(h(*leaves), leaves, create_graph=True, allow_unused=True)
    paired = [(g, t) for g, t in zip(grads, tangents, strict=True) if g is not None and g.requires_grad]
    if paired:
        total = sum(((g * t).sum() for g, t in paired), library.tensor(np.zeros(())))
        reverse = ab.grad(total, leaves, allow_unused=True)
    else:  # h is linear in x: its Hessian is zero
        reverse = (None,) * len(leaves)
    _, reverse_of_forward = ab.functional.hvp(h, tuple(inputs), tuple(tangents), strategy="reverse-over-forward")
    for got, other, want, x in zip(forward, reverse_of_forward, reverse, inputs, strict=True):
        expected = np.zeros(x.shape) if want is None else want.numpy()
        np.testing.assert_allclose(got.numpy(), expected, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(other.numpy(), expected, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_every_differentiable_op_has_jvp_rules(name: str) -> None:
    opdef = REGISTRY[name]
    if opdef.composite:  # built from other ops: forward mode goes through its parts
        return
    assert opdef.jvp_rules or opdef.jvp_variadic_rule, f"{name} is differentiable but has no jvp rule"
    if opdef.arity is not None:
        assert len(opdef.jvp_rules) == opdef.arity


def test_non_differentiable_ops_have_no_jvp_rules() -> None:
    # An empty tuple, as documented, where an op has none.
    for opdef in REGISTRY.values():
        if not opdef.differentiable:
            assert opdef.jvp_rules == () and opdef.jvp_variadic_rule is None, opdef.name
