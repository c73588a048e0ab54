"""The engine's two ways of running a node's rules, held to the same results on the same graphs.

The first-order fast path (``engine._on_arrays``, its commonest nodes inline in the walk) runs
rules declared ``plain_arrays=True`` on the node's arrays; the general path
(``engine._on_tensors``) runs every rule on Tensors. Turning the
fast path off (``engine._fast_path``) makes a first-order walk take the general path for every
node, so each test here walks one graph both ways and compares the gradients bit for bit, dtype
included; ``create_graph=True`` (the general path, recording) must agree as well.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp import engine
from autobp.ops.registry import REGISTRY, op
from autobp.testing.samples import samples_for
from tests.test_ops import DIFFERENTIABLE, as_list


@contextlib.contextmanager
def _general_path_only() -> Iterator[None]:
    engine._fast_path = False
    try:
        yield
    finally:
        engine._fast_path = True


def _nodes(output: ab.Tensor) -> list[ab.Tensor]:
    """Every recorded node ``output`` was computed from (itself included)."""
    found: dict[int, ab.Tensor] = {}
    stack = [output]
    while stack:
        t = stack.pop()
        if isinstance(t, ab.Tensor) and t.op is not None and id(t) not in found:
            found[id(t)] = t
            stack.extend(t._inputs or ())
    return list(found.values())


@contextlib.contextmanager
def _counting_fast_nodes(output: ab.Tensor) -> Iterator[list[str]]:
    """The names of the nodes of ``output``'s graph whose rules the walk inside runs on the fast
    path: given plain arrays (the general path hands them Tensors). The fast path's commonest
    nodes run inline in the walk, with no function of their own to watch, so the rules are."""
    seen: list[str] = []
    ops = {id(node.op): node.op for node in _nodes(output)}
    saved = {key: (opdef.rules, opdef.variadic_rule) for key, opdef in ops.items()}

    def watched(rule: Any, name: str) -> Any:
        def run(grad: Any, *args: Any, **kwargs: Any) -> Any:
            if not isinstance(grad, ab.Tensor):
                seen.append(name)
            return rule(grad, *args, **kwargs)

        return run

    for opdef in ops.values():
        opdef.rules = tuple(watched(rule, opdef.name) for rule in opdef.rules)
        if opdef.variadic_rule is not None:
            opdef.variadic_rule = watched(opdef.variadic_rule, opdef.name)
    try:
        yield seen
    finally:
        for key, opdef in ops.items():
            opdef.rules, opdef.variadic_rule = saved[key]


def _plain(grads: Sequence[ab.Tensor | None]) -> list[np.ndarray | None]:
    return [None if g is None else g.data for g in grads]


def _assert_same(first: Sequence[Any], second: Sequence[Any], exact: bool = True) -> None:
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.dtype == b.dtype and a.shape == b.shape
            if exact:
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def _walk_both_ways(loss: ab.Tensor, leaves: list[ab.Tensor]) -> tuple[list[Any], list[str]]:
    """The gradients by the fast path, after checking the general path and create_graph give the
    same; and the names of the nodes the fast path ran."""
    with _counting_fast_nodes(loss) as fast_nodes:
        fast = _plain(ab.grad(loss, leaves, allow_unused=True, retain_graph=True))
    with _general_path_only(), _counting_fast_nodes(loss) as none:
        general = _plain(ab.grad(loss, leaves, allow_unused=True, retain_graph=True))
    assert none == []
    _assert_same(fast, general)
    # create_graph runs the same rules on Tensors; a WeakScalar computes as the number itself.
    recorded = _plain(ab.grad(loss, leaves, allow_unused=True, create_graph=True))
    _assert_same(fast, recorded, exact=False)
    return fast, fast_nodes


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", DIFFERENTIABLE)
@given(data=st.data())
def test_both_paths_agree_on_every_op(name: str, dtype: Any, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    rng = np.random.default_rng(0)
    inputs = [ab.tensor(a.astype(dtype), requires_grad=True) if a.dtype.kind == "f" else a for a in sample.arrays]
    leaves = [x for x in inputs if isinstance(x, ab.Tensor)]
    # Each input also reaches the loss through a product with a constant, a second path to sum.
    outputs = [o for o in as_list(opdef.public(*inputs, **sample.kwargs)) if o.dtype.kind == "f"]
    terms = [(o * rng.uniform(0.5, 1.5, o.shape).astype(dtype)).sum() for o in outputs]
    loss = ab.stack([*terms, *[(x * 0.5).sum() for x in leaves]]).sum()
    grads, fast_nodes = _walk_both_ways(loss, leaves)
    assert "mul" in fast_nodes  # the products took the fast path
    if opdef.plain_arrays and outputs and outputs[0].requires_grad:
        assert name in fast_nodes
    for g, x in zip(grads, leaves, strict=True):
        assert g is not None and g.dtype == dtype and g.shape == x.shape


@pytest.mark.parametrize("library", ["numpy", "array_api_strict"])
def test_a_first_order_walk_after_a_create_graph_walk_sees_the_numbers_as_they_came(library: str) -> None:
    # create_graph hands the rules a node's Python numbers as WeakScalars (Node.inputs). A later
    # first-order walk of the same graph must hand them the numbers still: a WeakScalar's 0-d
    # array computes differently (numpy: float32 * int64[] is float64, then cast back, other bits;
    # array-api-strict refuses float64 / int64[]).
    dtype = "float32" if library == "numpy" else "float64"
    values = np.random.default_rng(3).standard_normal(50).astype(dtype)
    x = ab.tensor(ab.backends.library(library).from_numpy(values), requires_grad=True)
    loss = ((x * 0.1).sin() / 4 * 0.7 + 3).sum()
    before = ab.grad(loss, [x], retain_graph=True)[0].numpy()
    ab.grad(loss, [x], create_graph=True)
    after = ab.grad(loss, [x])[0].numpy()
    assert after.dtype == dtype
    np.testing.assert_array_equal(after, before)


def _scratch_op(name: str, arity: int | None, forward: Callable[..., Any]) -> Any:
    """A test op kept out of the registry-driven suite."""
    public = op(name, arity=arity)(forward)
    del REGISTRY[name]
    return public


def _three(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """x y + z."""
    return x * y + z


def _total(*xs: np.ndarray) -> np.ndarray:
    """The sum of the inputs."""
    return sum(xs[1:], xs[0])


three = _scratch_op("three_inputs_for_test", 3, _three)
# None for y: its only consumer here gives it no gradient, but its upstream must still be counted.
three.defvjp(
    lambda grad, out, x, y, z: grad * y,
    lambda grad, out, x, y, z: None,
    lambda grad, out, x, y, z: grad,
    plain_arrays=True,
)
total = _scratch_op("total_of_any_inputs_for_test", None, _total)
# A variadic rule on arrays: every input gets the gradient, the second one None.
total.defvjp_variadic(lambda grad, out, *xs: [None if i == 1 else grad for i in range(len(xs))], plain_arrays=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_both_paths_agree_with_three_inputs_variadic_rules_and_none_contributions(dtype: Any) -> None:
    rng = np.random.default_rng(1)
    a, b, c = (ab.tensor(rng.standard_normal(s).astype(dtype), requires_grad=True) for s in [(2, 3), (3,), (1, 3)])
    hidden = ab.exp(b)  # reached only through None contributions: its gradient is zero, not missing
    mixed = three(a, hidden * 2.0, c) + total(a, hidden, c * np.float64(3.0), 2.0)
    loss = (mixed * np.linspace(0.5, 1.0, 3)).sum()  # a float64 constant: the engine casts back to dtype
    grads, fast_nodes = _walk_both_ways(loss, [a, b, c, hidden])
    assert {"three_inputs_for_test", "total_of_any_inputs_for_test"} <= set(fast_nodes)
    weights = np.broadcast_to(np.linspace(0.5, 1.0, 3), (2, 3))
    # d/da: y + 1 from three, 1 from total; b and hidden: zeros; c: 1 from three, 3 from total.
    np.testing.assert_allclose(grads[0], (weights * (hidden.data * 2.0 + 1)).astype(dtype), rtol=1e-6)
    np.testing.assert_array_equal(grads[1], np.zeros(3, dtype))
    np.testing.assert_array_equal(grads[3], np.zeros(3, dtype))
    np.testing.assert_allclose(grads[2], (4 * weights.sum(axis=0, keepdims=True)).astype(dtype), rtol=1e-6)


def test_both_paths_agree_with_hooks_and_a_rule_that_returns_a_tensor() -> None:
    x = ab.tensor([1.0, -2.0, 3.0], requires_grad=True)
    h = ab.sin(x) * x
    h.register_hook(lambda grad: grad * 2.0)  # a node with hooks: the fast path's full version check
    constant_slope = _scratch_op("constant_slope_for_engine_test", 1, lambda x: 3 * x)
    constant_slope.defvjp(lambda grad, out, x: grad * ab.full(x.shape, 3.0), plain_arrays=True)
    grads, fast_nodes = _walk_both_ways((constant_slope(h) ** 2).sum(), [x])
    assert "constant_slope_for_engine_test" in fast_nodes and "mul" in fast_nodes
    h_value = np.sin(x.data) * x.data
    want = 2 * (3 * 3 * 2 * h_value) * (np.cos(x.data) * x.data + np.sin(x.data))
    np.testing.assert_allclose(grads[0], want, rtol=1e-12)


@pytest.mark.parametrize("written", ["x", "y", "z", "none"])
@pytest.mark.parametrize("before", [0, 2])  # writes before the op: versions saved, or not
def test_both_paths_refuse_the_same_stale_inputs(written: str, before: int) -> None:
    x, y, z = (ab.tensor(np.full(2, v), requires_grad=True) for v in (1.0, 2.0, 3.0))
    tensors = {"x": x, "y": y, "z": z}
    for t in tensors.values():
        t._version += before  # what in-place writes before the op do: the node saves versions
    out = (three(x, y, z) + total(x, y, z)).sum()
    if written != "none":
        tensors[written]._version += 1  # what an in-place write does
    messages = []
    for force_general in (False, True):
        with _general_path_only() if force_general else contextlib.nullcontext():
            try:
                ab.grad(out, [x, y, z], retain_graph=True)
                messages.append("")
            except RuntimeError as error:
                messages.append(str(error))
    assert messages[0] == messages[1]
    assert ("modified in place" in messages[0]) == (written != "none")


def test_ops_decide_by_their_arguments_inside_a_rule_and_return_tensors_elsewhere() -> None:
    seen: dict[str, Any] = {}

    def rule(grad: Any, out: Any, x: Any) -> Any:
        seen["on arrays"] = ab.mul(grad, x)  # no Tensor among the arguments: a plain array
        seen["with a tensor"] = ab.mul(grad, ab.ones(x.shape))  # a Tensor: the op acts as anywhere
        return seen["on arrays"] * 2.0

    doubled = _scratch_op("typed_by_arguments_for_test", 1, lambda x: 2 * x)
    doubled.defvjp(rule, plain_arrays=True)
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    seen_in_hook: list[Any] = []
    x.register_hook(lambda grad: seen_in_hook.append(ab.mul(np.ones(2), 2.0)))  # a user's call, in a hook
    doubled(x).sum().backward()
    assert type(seen["on arrays"]) is np.ndarray
    with_tensor = seen["with a tensor"]
    assert isinstance(with_tensor, ab.Tensor) and not with_tensor.requires_grad
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])  # type: ignore[union-attr]
    # Outside a rule (and in hooks, which always see Tensors) an op on numpy arrays gives a Tensor.
    assert isinstance(ab.mul(np.ones(2), 2.0), ab.Tensor)
    assert isinstance(seen_in_hook[0], ab.Tensor)


def test_an_op_given_a_tensor_inside_a_rule_names_itself_when_it_fails() -> None:
    broken = _scratch_op("broken_rule_for_engine_test", 1, lambda x: 2 * x)
    broken.defvjp(lambda grad, out, x: ab.add(grad, ab.ones(5)), plain_arrays=True)
    for force_general in (False, True):
        general = _general_path_only() if force_general else contextlib.nullcontext()
        with general, pytest.raises(ValueError, match="add: operands could not be broadcast"):
            broken(ab.tensor([1.0, 2.0], requires_grad=True)).sum().backward()


def test_forward_mode_rules_on_arrays_that_build_a_tensor_keep_working() -> None:
    # Forward mode runs plain-array jvp rules in the same array mode: a Tensor a rule builds makes
    # the op return a Tensor there too, which forward mode reads as an array.
    tripled = _scratch_op("tripled_for_engine_test", 1, lambda x: 3 * x)
    tripled.defvjp(lambda grad, out, x: grad * ab.full(x.shape, 3.0), plain_arrays=True)
    tripled.defjvp(lambda tangent, out, x: tangent * ab.full(x.shape, 3.0), plain_arrays=True)
    x, t = ab.tensor([1.0, 2.0]), ab.tensor([1.0, -1.0])
    value, tangent = ab.functional.jvp(lambda v: tripled(v) * 2.0, (x,), (t,))
    np.testing.assert_array_equal(value.data, [6.0, 12.0])
    np.testing.assert_array_equal(tangent.data, [6.0, -6.0])
