"""Variadic vjp rules are told which inputs need a gradient (``needs``), on every path.

The engine passes ``needs`` (one bool per input) to a rule set by ``defvjp_variadic``, so the
rule computes nothing for constants and reads no ``.requires_grad``: it then runs on plain
arrays too, and concatenate, stack and einsum take the first-order fast path. A rule written
before ``needs`` existed keeps working; one that takes ``needs`` positionally is refused by name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops import linalg
from autobp.ops.registry import REGISTRY, op
from autobp.ops.shape import joining
from tests.test_engine_paths import _general_path_only, _walk_both_ways


def _scratch_op(name: str, forward: Any) -> Any:
    """A variadic test op kept out of the registry-driven suite."""
    public = op(name, arity=None)(forward)
    del REGISTRY[name]
    return public


def _total(*xs: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """scale times the sum of the inputs (broadcast)."""
    return scale * sum(np.asarray(x) for x in xs)


# The three ways a first-order or second-order walk runs a node's rules.
PATHS = ["fast", "general", "create_graph"]


def _grads(loss: ab.Tensor, leaves: list[ab.Tensor], path: str) -> list[np.ndarray]:
    with _general_path_only() if path == "general" else contextlib.nullcontext():
        found = ab.grad(loss, leaves, create_graph=path == "create_graph")
    return [g.data for g in found]


@pytest.mark.parametrize("path", PATHS)
def test_a_variadic_rule_is_told_which_inputs_need_a_gradient(path: str) -> None:
    seen: list[tuple[tuple[bool, ...], list[bool]]] = []

    def rule(grad: Any, out: Any, *xs: Any, needs: tuple[bool, ...], scale: float = 1.0) -> list[Any]:
        seen.append((needs, [isinstance(x, ab.Tensor) for x in xs]))
        # d(scale sum x_i)/dx_i = scale; a constant gets a poisoned value, which the engine must not use.
        return [grad * scale if needed else np.full(np.shape(out), np.nan) for needed in needs]

    total = _scratch_op(f"total_told_needs_{path}", _total)
    total.defvjp_variadic(rule, plain_arrays=True)
    a = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = ab.tensor([[0.5], [1.5]], requires_grad=True)
    no_grad = ab.tensor([4.0, 5.0, 6.0])  # a Tensor that needs no gradient
    # Inputs: needs one, a numpy constant, a Tensor without grad, needs one (broadcast), a Python number.
    loss = (total(a, np.ones(3), no_grad, c, 2.0, scale=3.0) * np.arange(6.0).reshape(2, 3)).sum()
    grads = _grads(loss, [a, c], path)
    assert seen == [((True, False, False, True, False), [path != "fast"] * 5)]
    weights = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(grads[0], 3.0 * weights.sum(axis=0))
    np.testing.assert_array_equal(grads[1], 3.0 * weights.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("plain_arrays", [True, False])
@pytest.mark.parametrize("path", PATHS)
def test_a_rule_written_without_needs_keeps_working(path: str, plain_arrays: bool) -> None:
    seen: list[dict[str, Any]] = []

    def rule(grad: Any, out: Any, *xs: Any, **kwargs: Any) -> list[Any]:
        seen.append(dict(kwargs))  # the op's own keywords only: no `needs` slips into **kwargs
        return [grad * kwargs["scale"] for _ in xs]  # every input's gradient: the engine drops the constant's

    total = _scratch_op(f"total_without_needs_{path}_{plain_arrays}", _total)
    total.defvjp_variadic(rule, plain_arrays=plain_arrays)
    assert total.op.variadic_rule.__name__ == "rule"  # the wrapper that drops `needs` keeps the name
    x = ab.tensor([1.0, -2.0], requires_grad=True)
    loss = (total(x, np.ones(2), x * x, scale=2.0) * np.array([1.0, 3.0])).sum()
    (grad,) = _grads(loss, [x], path)
    assert seen == [{"scale": 2.0}]
    np.testing.assert_array_equal(grad, 2.0 * np.array([1.0, 3.0]) * (1.0 + 2.0 * x.data))


def test_a_rule_that_takes_needs_positionally_is_refused_by_name() -> None:
    total = _scratch_op("total_positional_needs", _total)

    def rule(grad: Any, out: Any, needs: Any, *xs: Any) -> list[Any]:
        return [grad for _ in xs]

    with pytest.raises(TypeError, match=r"total_positional_needs: .*'needs'.*keyword-only"):
        total.defvjp_variadic(rule)
    assert total.op.variadic_rule is None


def test_an_op_with_its_own_needs_argument_is_refused_by_name() -> None:
    def forward(*xs: np.ndarray, needs: float = 1.0) -> np.ndarray:
        """needs times the sum of the inputs."""
        return needs * sum(xs)

    clashing = _scratch_op("total_with_a_needs_keyword", forward)
    with pytest.raises(TypeError, match=r"total_with_a_needs_keyword: .*argument named 'needs'.*rename"):
        clashing.defvjp_variadic(lambda grad, out, *xs, needs: [grad for _ in xs])


@contextlib.contextmanager
def _counting(module: Any, name: str) -> Iterator[list[int]]:
    """How often the rules call ``module.name`` (an op) while active."""
    calls: list[int] = []
    original = getattr(module, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    setattr(module, name, spy)
    try:
        yield calls
    finally:
        setattr(module, name, original)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("join", ["concatenate", "concatenate_flat", "stack"])
def test_concatenate_and_stack_compute_nothing_for_constants(join: str, path: str) -> None:
    rng = np.random.default_rng(0)
    x = ab.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    parts = [ab.tensor(rng.standard_normal((2, 3))), x, rng.standard_normal((2, 3))]  # constants around x
    joined = {
        "concatenate": lambda: ab.concatenate(parts, axis=1),
        "concatenate_flat": lambda: ab.concatenate(parts, axis=None),
        "stack": lambda: ab.stack(parts, axis=-1),
    }[join]()
    weights = rng.standard_normal(joined.shape)
    loss = (joined * weights).sum()
    with _counting(joining, "getitem") as calls:
        (grad,) = _grads(loss, [x], path)
    assert len(calls) == 1  # the slice for x only
    expected = {
        "concatenate": lambda: weights[:, 3:6],
        "concatenate_flat": lambda: weights[6:12].reshape(2, 3),
        "stack": lambda: weights[..., 1],
    }[join]()
    np.testing.assert_array_equal(grad, expected)


@pytest.mark.parametrize("path", PATHS)
def test_einsum_computes_nothing_for_a_constant_operand(path: str) -> None:
    rng = np.random.default_rng(1)
    x = ab.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    constant = rng.standard_normal((3, 3))
    weights = rng.standard_normal((2, 3))
    loss = (ab.einsum("ij,jk->ik", x, constant) * weights).sum()
    with _counting(linalg, "einsum") as calls:
        (grad,) = _grads(loss, [x], path)
    assert len(calls) == 1  # the contraction for x only, none for the constant
    np.testing.assert_allclose(grad, weights @ constant.T, rtol=1e-12)


def test_einsum_with_a_repeated_label_on_arrays_matches_numpy() -> None:
    # The identity that ties a repeated label is a plain array on the fast path, a Tensor elsewhere.
    x = ab.tensor(np.arange(9.0).reshape(3, 3) / 4, requires_grad=True)
    grads, fast_nodes = _walk_both_ways(ab.einsum("ii,ij->j", x, x).sum(), [x])
    assert "einsum" in fast_nodes
    # d/dX of sum_ij X_ii X_ij: row i gets X_ii in every column, and the diagonal also sum_j X_ij.
    expected = np.repeat(np.diag(x.data)[:, None], 3, axis=1) + np.diag(x.data.sum(axis=1))
    np.testing.assert_allclose(grads[0], expected, rtol=1e-12)


_Y = np.array([[2.0, 1.0, 0.0], [1.0, 1.0, 2.5]])  # no gradient: the variadic rules get needs=(.., False)
_FORMER_TENSOR_ONLY = {
    "concatenate": lambda x, y: ab.concatenate([x, y], axis=0),
    "stack": lambda x, y: ab.stack([y, x]),
    "einsum": lambda x, y: ab.einsum("ij,kj->ik", x, y),
    "std": lambda x, y: ab.std(x, axis=1, ddof=1),
    "prod": lambda x, y: ab.prod(x, axis=0),
    "max": lambda x, y: ab.max(x, axis=1),
    "min": lambda x, y: ab.min(x),
}


@pytest.mark.parametrize("name", list(_FORMER_TENSOR_ONLY))
def test_former_tensor_only_rules_take_the_fast_path(name: str) -> None:
    x = ab.tensor([[1.0, 3.0, 2.0], [0.5, -1.0, 4.0]], requires_grad=True)
    y = ab.tensor(_Y)
    out = _FORMER_TENSOR_ONLY[name](x, y)
    grads, fast_nodes = _walk_both_ways((out * out).sum(), [x])
    assert name in fast_nodes
    # The gradient by central differences (every op here is smooth at these distinct values).
    flat, eps, numeric = x.data.ravel(), 1e-6, np.zeros(6)
    for i in range(6):
        for sign in (1, -1):
            shifted = flat.copy()
            shifted[i] += sign * eps
            with ab.no_grad():
                value = _FORMER_TENSOR_ONLY[name](ab.tensor(shifted.reshape(2, 3)), y)
            numeric[i] += sign * float((value * value).sum().item()) / (2 * eps)
    np.testing.assert_allclose(grads[0].ravel(), numeric, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("join", ["concatenate", "stack", "einsum"])
def test_second_order_through_a_join_with_a_constant(join: str) -> None:
    constant = np.array([[0.5, -1.0], [2.0, 0.25]])

    def f(x: ab.Tensor) -> ab.Tensor:
        joined = {
            "concatenate": lambda: ab.concatenate([x * x, constant, ab.tensor(constant)], axis=0),
            "stack": lambda: ab.stack([ab.tensor(constant), ab.sin(x), constant]),
            "einsum": lambda: ab.einsum("ij,jk,kl->il", x, constant, x),
        }[join]()
        return joined * joined

    x = ab.tensor([[0.3, -0.7], [1.1, 0.4]], requires_grad=True)
    assert ab.gradcheck(f, x)
    assert ab.gradgradcheck(f, x)


def test_explain_runs_variadic_rules_without_needs() -> None:
    # The explainer calls the registry's rules itself, without `needs`: every input's gradient.
    x = ab.tensor([[0.3, -0.2], [1.0, 0.4]], requires_grad=True)
    constant = ab.tensor([[2.0, 1.0]])
    loss = (ab.einsum("ij,jk->ik", ab.concatenate([x, constant]), x) ** 2).sum()
    explanation = ab.viz.explain(loss, names={"x": x})
    assert explanation.engine_max_diff == 0.0
    (expected,) = ab.grad(loss, [x])
    np.testing.assert_array_equal(dict(explanation.leaves)["x"], expected.numpy())
