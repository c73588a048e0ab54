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

import math
import warnings
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
    if opdef.jvp_variadic_rule is None:  # (one rule for all inputs: div, and ops of any arity)
        assert opdef.arity is not None and len(opdef.jvp_rules) == opdef.arity


def test_non_differentiable_ops_have_no_jvp_rules() -> None:
    # An empty tuple, as documented, where an op has none.
    for opdef in REGISTRY.values():
        if not opdef.differentiable:
            assert opdef.jvp_rules == () and opdef.jvp_variadic_rule is None, opdef.name


# -- div's jvp at a zero or tiny denominator ---------------------------------------------------------
# d(x/y) = (dx - out dy) / y. As the sum of its parts dx / y - out dy / y it was nan where a part
# is: 0 / 0 for an explicit zero dx at y = 0 (the whole is -inf), inf - inf for x / x at a
# subnormal x (the whole is 0).
@pytest.mark.parametrize("create_graph", [False, True], ids=["arrays", "tensors"])
def test_div_jvp_is_one_quotient_not_a_sum_of_infinite_parts(create_graph: bool) -> None:
    def tangent(f: Callable[..., Any], inputs: tuple[ab.Tensor, ...], v: tuple[ab.Tensor, ...]) -> np.ndarray:
        with warnings.catch_warnings():  # quiet at domain edges, as the other paths are
            warnings.simplefilter("error")
            return ab.functional.jvp(f, inputs, v, create_graph=create_graph)[1].numpy()

    one, zero = ab.tensor([1.0]), ab.tensor([0.0])
    assert tangent(ab.div, (one, zero), (zero, one)).tolist() == [-np.inf]  # torch.func.jvp: -inf
    # (A zero dy times out = inf stays nan, as in torch.func: (dx - out dy) / y is PyTorch's formula.)
    assert np.isnan(tangent(ab.div, (one, zero), (one, zero))).all()
    for dtype, tiny in ((np.float64, 1e-310), (np.float32, 1e-39), (np.float16, 1e-6)):
        x = ab.tensor(np.array([tiny, 1.0, -tiny], dtype))
        np.testing.assert_array_equal(tangent(lambda t: t / t, (x,), (ab.ones_like(x),)), [0.0, 0.0, 0.0])
    # one input carrying a tangent: the vjp rules' own values, bit for bit
    x, y, v = ab.tensor([3.0, -2.0]), ab.tensor([0.7, 1.3]), ab.tensor([0.3, -1.1])
    assert tangent(lambda t: t / y, (x,), (v,)).tolist() == (v.numpy() / y.numpy()).tolist()
    assert tangent(lambda t: x / t, (y,), (v,)).tolist() == (-v.numpy() * (x / y).numpy() / y.numpy()).tolist()


def test_forward_mode_is_quiet_at_domain_edges_on_every_path() -> None:
    # The rules' ops on Tensors (create_graph, a dual level, a taped hvp) are not all quiet forwards:
    # `out * dy` is mul, and inf * 0 warned there, an error under -W error, where the rules on arrays
    # (jvp without create_graph) and the reverse walk gave inf and nan quietly.
    one, zero = ab.tensor([1.0]), ab.tensor([0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = [ab.functional.jvp(ab.div, (one, zero), (one, zero), create_graph=cg)[1] for cg in (False, True)]
        with ab.forward_ad.dual_level():
            dual = ab.div(ab.forward_ad.make_dual(one, one), ab.forward_ad.make_dual(zero, zero))
            found.append(ab.forward_ad.unpack_dual(dual).tangent)
        found.append(ab.tape.hvp(lambda x: (x[0] / x[1]).sum())(np.array([1.0, 0.0]), np.array([1.0, 0.0]))[1])
    for tangent in found:
        assert np.isnan(tangent.numpy()).all()  # (out = inf times dy = 0, as torch.func gives)


def test_div_jvp_matches_torch_func() -> None:
    torch = pytest.importorskip("torch")
    x0, y0 = np.array([1.0, 0.0, 2.0, 1e-310, 1.0, 0.0]), np.array([0.0, 1.0, -3.0, 1e-310, 0.0, 0.0])
    vx, vy = np.array([0.0, 1.0, 0.5, 1.0, 1.0, 1.0]), np.array([1.0, 0.0, -2.0, 1.0, 0.0, 1.0])
    with np.errstate(all="ignore"):
        _, found = ab.functional.jvp(ab.div, (ab.tensor(x0), ab.tensor(y0)), (ab.tensor(vx), ab.tensor(vy)))
    as_torch = [torch.tensor(a) for a in (x0, y0, vx, vy)]
    with warnings.catch_warnings():  # (torch.func's first call scripts a helper; torch deprecates that)
        warnings.filterwarnings("ignore", r".*torch\.jit\.script.* is deprecated", DeprecationWarning)
        _, want = torch.func.jvp(torch.div, tuple(as_torch[:2]), tuple(as_torch[2:]))
    np.testing.assert_array_equal(found.numpy(), want.numpy())  # (nan where torch's is)


def test_a_variadic_jvp_rule_with_plain_arrays_runs_on_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    # defjvp_variadic(..., plain_arrays=True) promises what defjvp's does: a plain level (jvp, no
    # create_graph) runs the rule on numpy arrays, with None for an input without a tangent.
    opdef = REGISTRY["div"]
    seen: list[tuple[type, ...]] = []
    rule = opdef.jvp_variadic_rule
    assert rule is not None and opdef.jvp_plain_arrays

    def spy(tangents: list[Any], out: Any, *inputs: Any) -> Any:
        seen.append(tuple(type(value) for value in (*tangents, out, *inputs)))
        return rule(tangents, out, *inputs)

    monkeypatch.setattr(opdef, "jvp_variadic_rule", spy)
    x, y = ab.tensor([1.0, 2.0]), ab.tensor([4.0, 8.0])
    _, found = ab.functional.jvp(lambda t: t / y, (x,), (ab.ones_like(x),))
    np.testing.assert_array_equal(found.numpy(), [0.25, 0.125])
    assert seen == [(np.ndarray, type(None), np.ndarray, np.ndarray, np.ndarray)]


@pytest.mark.parametrize("op_name", ["sign", "pow0"])
def test_a_zero_derivative_is_zero_for_infinite_and_nan_tangents_and_cotangents(op_name: str, library: Library) -> None:
    # sign and x ** 0 do not vary with x: their jvp and vjp are zeros, as in PyTorch, not grad * 0,
    # which was nan where the tangent or cotangent is inf or nan ((sign(x) * inf).sum() had the
    # gradient nan; PyTorch's is 0), on every path: rules on arrays, on Tensors, taped.
    f = ab.sign if op_name == "sign" else (lambda t: t**0.0)
    x0 = library.array(np.array([np.inf, 1.0, np.nan, 0.0, -2.0]))
    v = library.array(np.array([np.inf, -np.inf, np.nan, np.inf, 1.0]))
    zeros = np.zeros(5)
    for create_graph in (False, True):
        _, tangent = ab.functional.jvp(f, ab.tensor(x0), ab.tensor(v), create_graph=create_graph)
        np.testing.assert_array_equal(library.host(tangent), zeros)
        _, cotangent = ab.functional.vjp(f, ab.tensor(x0), ab.tensor(v), create_graph=create_graph)
        np.testing.assert_array_equal(library.host(cotangent), zeros)
    x = ab.tensor(library.array(np.array([1.0, 2.0])), requires_grad=True)
    (g,) = ab.grad((f(x) * math.inf).sum(), [x])
    np.testing.assert_array_equal(library.host(g), [0.0, 0.0])
