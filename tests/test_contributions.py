"""A vjp that returns None gives a zero contribution, which the engine always counts.

Before, a None contribution was never counted: the input it was for never became ready, and every
gradient upstream of it was dropped without an error. gradgradcheck cannot see that (it only
differentiates the op itself), so the registry-driven tests here combine every op's first and
second derivative with an unrelated term that reaches the same leaves through another path.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp.ops.registry import REGISTRY, Hints, op
from autobp.testing.samples import samples_for
from tests.test_ops import DIFFERENTIABLE, SECOND_ORDER, as_list


def _numeric_grad(f: Any, arrays: list[np.ndarray], eps: float = 1e-6) -> list[np.ndarray]:
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            bumped = [b.copy() for b in arrays]
            bumped[k][index] += eps
            up = f(*bumped)
            bumped[k][index] -= 2 * eps
            g[index] = (up - f(*bumped)) / (2 * eps)
        grads.append(g)
    return grads


def test_second_order_through_max_pool2d_reaches_every_leaf() -> None:
    # The reported case: max_pool2d's second-order rules return None for the pooled input.
    rng = np.random.default_rng(0)
    x0, w0 = rng.standard_normal((1, 1, 4, 4)), rng.standard_normal((2, 1, 3, 3))

    def loss(x_array: np.ndarray, w_array: np.ndarray, create: bool = True) -> Any:
        x, w = ab.tensor(x_array, requires_grad=True), ab.tensor(w_array, requires_grad=True)
        (gx,) = ab.grad(ab.max_pool2d(ab.tanh(ab.conv2d(x, w, padding=1)), 2).sum(), [x], create_graph=create)
        return x, w, (gx**2).sum() + (w**2).sum()

    x, w, total = loss(x0, w0)
    total.backward()
    assert x.grad is not None and w.grad is not None
    want_x, want_w = _numeric_grad(lambda a, b: float(loss(a, b, create=False)[2].data), [x0, w0])
    np.testing.assert_allclose(x.grad.data, want_x, atol=1e-6)
    np.testing.assert_allclose(w.grad.data, want_w, atol=1e-6)


def test_hvp_through_max_pool2d_is_not_all_zero() -> None:
    rng = np.random.default_rng(1)
    x0, v0 = rng.standard_normal((1, 1, 4, 4)), rng.standard_normal((1, 1, 4, 4))

    def f(x: ab.Tensor) -> ab.Tensor:
        return (ab.max_pool2d(ab.tanh(x * 1.5), 2) ** 2).sum()

    _, hv = ab.functional.hvp(f, ab.tensor(x0), ab.tensor(v0))

    def grad_at(a: np.ndarray) -> np.ndarray:
        x = ab.tensor(a, requires_grad=True)
        return ab.grad(f(x), [x])[0].data

    eps = 1e-6
    want = (grad_at(x0 + eps * v0) - grad_at(x0 - eps * v0)) / (2 * eps)
    assert np.abs(want).max() > 1e-3
    np.testing.assert_allclose(hv.data, want, atol=1e-6)


@op("halve_first", arity=2, hints=Hints(shapes="broadcast"))
def _halve_first(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x / 2, y read but not differentiated (its rule returns None). Shapes: same -> same."""
    return x / 2 + 0 * y


_halve_first.defvjp(lambda grad, out, x, y: grad / 2, lambda grad, out, x, y: None)
del REGISTRY["halve_first"]  # a test-only op: keep the registry-driven suites to the library's ops


def test_a_custom_rule_returning_none_still_counts_its_input() -> None:
    p = ab.tensor([1.0, 2.0], requires_grad=True)
    shared = p * 3.0  # one node, two consumers: the custom op (None) and the product below
    loss = _halve_first(p, shared).sum() + (shared * shared).sum()
    loss.backward()
    # d/dp [p/2 + 9 p^2] = 1/2 + 18 p
    np.testing.assert_allclose(p.grad.data, 0.5 + 18 * p.data)


def test_a_leaf_reached_only_by_none_gets_zeros() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = ab.tensor([3.0, 4.0], requires_grad=True)
    out = _halve_first(x, y).sum()
    gx, gy = ab.grad(out, [x, y], retain_graph=True)
    np.testing.assert_array_equal(gx.data, [0.5, 0.5])
    np.testing.assert_array_equal(gy.data, [0.0, 0.0])  # used, with a zero gradient: not "unused"
    out.backward()
    np.testing.assert_array_equal(y.grad.data, [0.0, 0.0])
    assert y.grad.dtype == y.dtype


def test_a_node_reached_only_by_none_passes_zeros_on_under_create_graph() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x.exp()  # a node whose only consumer returns None for it
    out = _halve_first(x, y).sum()
    gx, gy = ab.grad(out, [x, y], create_graph=True)
    np.testing.assert_array_equal(gx.data, [0.5, 0.5])
    np.testing.assert_array_equal(gy.data, [0.0, 0.0])


# -- every registered op: its gradients combined with an unrelated term reach every leaf ----------------
def _leaves_and_function(name: str, data: st.DataObject) -> tuple[list[ab.Tensor], Any, list[np.ndarray]]:
    """Leaves p_i for the op's float inputs, each entering the op through a node X_i = p_i * 1."""
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    leaves = [ab.tensor(a, requires_grad=True) for a in sample.arrays if a.dtype.kind == "f"]
    weights = [np.random.default_rng(i).uniform(0.5, 1.5, p.shape) for i, p in enumerate(leaves)]

    def op_term(nodes: list[ab.Tensor]) -> Any:
        it = iter(nodes)
        inputs = [next(it) if a.dtype.kind == "f" else ab.tensor(a) for a in sample.arrays]
        outputs = [o for o in as_list(opdef.public(*inputs, **sample.kwargs)) if o.dtype.kind == "f"]
        return sum(((o * o) * 0.5).sum() for o in outputs)

    return leaves, op_term, weights


def _unrelated(nodes: list[ab.Tensor], weights: list[np.ndarray]) -> Any:
    return sum((x * ab.tensor(c)).sum() for x, c in zip(nodes, weights, strict=True))


def _plain(grads: tuple[Any, ...]) -> list[np.ndarray]:
    return [np.zeros(()) if g is None else g.data for g in grads]


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data())
def test_first_order_with_an_unrelated_term(name: str, data: st.DataObject) -> None:
    leaves, op_term, weights = _leaves_and_function(name, data)
    if not leaves:
        return
    alone = _plain(ab.grad(op_term([p * 1.0 for p in leaves]), leaves, allow_unused=True))
    nodes = [p * 1.0 for p in leaves]
    (op_term(nodes) + _unrelated(nodes, weights)).backward()
    for p, g, c in zip(leaves, alone, weights, strict=True):
        assert p.grad is not None, f"{name}: a leaf lost its gradient"
        np.testing.assert_allclose(p.grad.data, g + c, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", SECOND_ORDER)
@given(data=st.data())
def test_second_order_with_an_unrelated_term(name: str, data: st.DataObject) -> None:
    leaves, op_term, weights = _leaves_and_function(name, data)
    if not leaves:
        return
    directions = [np.random.default_rng(10 + i).standard_normal(p.shape) for i, p in enumerate(leaves)]

    def gradient_term(nodes: list[ab.Tensor]) -> Any:
        # <grad of the op term, v>: its gradient is the Hessian-vector product H v.
        grads = ab.grad(op_term(nodes), nodes, create_graph=True, allow_unused=True)
        terms = [(g * ab.tensor(v)).sum() for g, v in zip(grads, directions, strict=True) if g is not None]
        return sum(terms) if terms else None

    term = gradient_term([p * 1.0 for p in leaves])
    if term is None or not term.requires_grad:
        return  # the op is linear in every input: no second-order term to combine
    hv = _plain(ab.grad(term, leaves, allow_unused=True))
    nodes = [p * 1.0 for p in leaves]
    (gradient_term(nodes) + _unrelated(nodes, weights)).backward()
    for p, h, c in zip(leaves, hv, weights, strict=True):
        assert p.grad is not None, f"{name}: a leaf lost its second-order gradient"
        np.testing.assert_allclose(p.grad.data, h + c, rtol=1e-9, atol=1e-9)


def test_a_keyword_tensor_that_requires_grad_is_refused_not_dropped() -> None:
    # pad's fill value is a keyword: no rule differentiates it, so its gradient would be lost.
    x, value = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor(3.0, requires_grad=True)
    with pytest.raises(TypeError, match="pad: constant_values is a Tensor that requires grad"):
        ab.pad(x, (1, 1), constant_values=value)
    # The spelling the error suggests differentiates both; d/dv sum(pad(x, v)^2) = 2 v per padded cell.
    padded = ab.pad(x, (1, 1)) + ab.pad(ab.zeros_like(x), (1, 1), constant_values=1.0) * value
    (padded**2).sum().backward()
    assert value.grad.item() == 2 * 2 * 3.0 and x.grad.tolist() == [2.0, 4.0]
    with pytest.raises(TypeError, match="clip: a_min and a_max are numbers or arrays, not Tensors"):
        x.clip(value, None)  # (numpy's own message named no argument)
