"""The reverse walk's rarer branches (autobp/engine): errors that name their op, roots given twice or
on no graph, symbolic zeros reaching a wanted tensor, seeds of another dtype, keyword Tensors
written after the op read them, and gradients kept with their graph."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import autobp as ab
from autobp.ops.registry import op


# -- errors ---------------------------------------------------------------------------------------------
def test_a_second_backward_through_a_freed_graph_names_the_op() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    h = ab.sin(x)
    y = (h * 3.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"backward through op '\w+' a second time.*retain_graph=True"):
        y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * np.cos([1.0, 2.0]))  # the first backward's, unchanged


def test_a_rule_whose_gradient_has_no_way_back_to_its_input_shape_is_named(scratch_ops: list[str]) -> None:
    @op("edges_wrong_shape", arity=2)
    def wrong(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x * y

    scratch_ops.append("edges_wrong_shape")
    wrong.defvjp(lambda grad, out, x, y: ab.ones((5,)), lambda grad, out, x, y: grad * x)
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = ab.tensor([4.0, 5.0, 6.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"edges_wrong_shape: the vjp rule for input 0 returned .* \(5,\).*\(3,\)"):
        wrong(x, y).sum().backward()
    assert x.grad is None and y.grad is None


@pytest.mark.parametrize("plain_arrays", [True, False])
@pytest.mark.parametrize("returned", [2.0, [2.0, 2.0]], ids=["float", "list"])
def test_a_rule_that_returns_no_array_is_named(scratch_ops: list[str], plain_arrays: bool, returned: object) -> None:
    # The walk reads a gradient's shape: a Python float (or a list) from a custom rule ended in
    # "AttributeError: 'float' object has no attribute 'shape'", naming neither op nor rule.
    @op("edges_float_rule", arity=1)
    def doubled(x: np.ndarray) -> np.ndarray:
        return x * 2.0

    scratch_ops.append("edges_float_rule")
    doubled.defvjp(lambda grad, out, x: returned, plain_arrays=plain_arrays)
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"edges_float_rule: its vjp rule for input 0 returned (float|list)"):
        doubled(x).sum().backward()
    assert x.grad is None


@pytest.mark.parametrize("plain_arrays", [True, False])
def test_a_rules_own_attribute_error_reaches_the_caller_as_it_is(scratch_ops: list[str], plain_arrays: bool) -> None:
    # The walk names a rule that returned no array; an AttributeError of another kind (the rule's
    # own) is not taken for one: it reaches the caller unchanged.
    @op("edges_attribute_rule", arity=1)
    def doubled(x: np.ndarray) -> np.ndarray:
        return x * 2.0

    def rule(grad: object, out: object, x: object) -> object:
        raise AttributeError("the rule's own")

    scratch_ops.append("edges_attribute_rule")
    doubled.defvjp(rule, plain_arrays=plain_arrays)
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(AttributeError, match="the rule's own"):
        (doubled(x) * 3.0).sum().backward()
    assert x.grad is None


def test_a_node_input_set_by_hand_out_of_order_is_refused() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    a = x * 2.0
    c = a * 3.0  # consumes a
    later = x + 1.0  # recorded after c
    c._inputs = (later, 3.0)  # (a recorded op's output is its node: its inputs, set by hand)
    with pytest.raises(RuntimeError, match="feeds op 'mul' but was recorded after it"):
        c.sum().backward()


def test_a_rule_error_on_the_tensor_path_propagates(scratch_ops: list[str]) -> None:
    @op("edges_failing", arity=1)
    def failing(x: np.ndarray) -> np.ndarray:
        return x * 2.0

    scratch_ops.append("edges_failing")

    def broken(grad: ab.Tensor, out: ab.Tensor, x: ab.Tensor) -> ab.Tensor:
        raise ArithmeticError("edges: broken rule")

    failing.defvjp(broken)  # not plain_arrays: the rule runs on Tensors
    x = ab.tensor([1.0], requires_grad=True)
    with pytest.raises(ArithmeticError, match="edges: broken rule"):
        failing(x).sum().backward()


# -- roots --------------------------------------------------------------------------------------------------
def test_a_root_given_twice_gets_the_sum_of_its_seeds() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    (g,) = ab.grad([y, y], [x], grad_outputs=[ab.tensor([1.0, 1.0]), ab.tensor([2.0, 0.5])])
    np.testing.assert_allclose(g.numpy(), [3.0 * 2.0, 1.5 * 4.0])


def test_a_leaf_root_gets_its_seed() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    (g,) = ab.grad([x], [x], grad_outputs=[ab.tensor([7.0, 8.0])])
    np.testing.assert_allclose(g.numpy(), [7.0, 8.0])


def test_allow_unused_with_outputs_on_no_graph() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    constant = ab.tensor([3.0, 4.0])
    assert ab.grad(constant, [x], allow_unused=True) == (None,)
    assert ab.grad([constant], [x], grad_outputs=[ab.ones((2,))], allow_unused=True) == (None,)
    # a constant beside an output on the graph: only the latter's seed counts
    (g,) = ab.grad(
        [constant, x * x], [x], grad_outputs=[ab.tensor([9.0, 9.0]), ab.tensor([1.0, 2.0])], allow_unused=True
    )
    np.testing.assert_allclose(g.numpy(), [2.0, 8.0])
    # the constant's seed is still checked against it
    with pytest.raises(ValueError, match="gradient shape"):
        ab.grad([constant, x * x], [x], grad_outputs=[ab.ones((3,)), ab.ones((2,))], allow_unused=True)
    # the inputs are still checked
    with pytest.raises(ValueError, match="every input must be a Tensor that requires grad"):
        ab.grad(constant, [constant], allow_unused=True)


def test_a_wanted_tensor_whose_contributions_are_all_zero_gets_zeros(scratch_ops: list[str]) -> None:
    @op("edges_no_gradient", arity=1)
    def stepped(x: np.ndarray) -> np.ndarray:
        return np.floor(x)

    scratch_ops.append("edges_no_gradient")
    stepped.defvjp(lambda grad, out, x: None)  # piecewise constant: a symbolic zero
    x = ab.tensor([1.5, 2.5], requires_grad=True)
    h = x * 2.0
    y = stepped(h)
    gh, gx = ab.grad(y.sum(), [h, x])
    assert gh.shape == (2,) and gx.shape == (2,)
    np.testing.assert_array_equal(gh.numpy(), [0.0, 0.0])
    np.testing.assert_array_equal(gx.numpy(), [0.0, 0.0])
    # a wanted intermediate alone: zeros, not None (the walk stops at k, its last wanted vertex)
    k = ab.sin(x * 2.0)
    (gk,) = ab.grad(stepped(k).sum(), [k])
    np.testing.assert_array_equal(gk.numpy(), [0.0, 0.0])
    # a symbolic zero that must pass through a freed node to reach a leaf: the freed graph's error
    freed = x * 2.0
    freed.sum().backward()
    with pytest.raises(RuntimeError, match=r"^backward through op 'mul' a second time"):
        stepped(freed).sum().backward()


def test_a_rule_on_tensors_may_return_a_plain_array(scratch_ops: list[str]) -> None:
    @op("edges_array_rule", arity=1)
    def twice(x: np.ndarray) -> np.ndarray:
        return 2.0 * x

    scratch_ops.append("edges_array_rule")
    twice.defvjp(lambda grad, out, x: 2.0 * np.asarray(grad.numpy()))
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    (g,) = ab.grad((twice(x) * x).sum(), [x], create_graph=True)
    np.testing.assert_allclose(g.numpy(), [2.0 * 1.0 + 2.0 * 1.0, 2.0 * 2.0 + 2.0 * 2.0])


# -- seeds ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed_dtype", [np.float32, np.bool_, np.int64])
def test_a_seed_of_another_dtype_is_cast_to_the_output_s(seed_dtype: type) -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.0
    seed = ab.tensor(np.array([1, 1], dtype=seed_dtype))
    y.backward(seed)
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 3.0])
    (g,) = ab.grad(x * x, [x], grad_outputs=[seed])
    assert g.dtype == np.float64
    np.testing.assert_allclose(g.numpy(), [2.0, 4.0])


# -- versions -------------------------------------------------------------------------------------------
def test_an_index_tensor_written_after_getitem_read_it_is_refused() -> None:
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    index = ab.tensor([0, 2])
    y = x[index]
    index[0] = 1  # now [1, 2]: the gradient would go to the wrong element
    with pytest.raises(RuntimeError, match="getitem: a tensor it read from its keywords"):
        y.sum().backward()


def test_an_input_written_after_the_op_on_the_tensor_path_is_refused() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    c = ab.tensor([3.0, 4.0])
    y = ab.multiply(x, c)  # c saved at version 0
    c.add_(1.0)
    with pytest.raises(RuntimeError, match=r"mul: an input it saved for backward .* modified in place"):
        ab.grad(y.sum(), [x], create_graph=True)


def test_saved_versions_beside_a_constant_input_give_the_right_gradient() -> None:
    x = ab.tensor([1.0, -2.0, 3.0], requires_grad=True)
    keep = ab.tensor([True, False, False])
    keep[1] = True  # version 1 when where saves it: the node saves versions
    for create_graph in (True, False):
        y = ab.where(keep, x * x, 0.0)  # a constant third input
        (g,) = ab.grad(y.sum(), [x], create_graph=create_graph)
        np.testing.assert_allclose(g.numpy(), [2.0, -4.0, 0.0])


# -- .grad kept with its graph ---------------------------------------------------------------------------
def test_a_first_order_backward_keeps_a_differentiable_grad_s_graph() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(UserWarning, match="reference cycle"):
        (x**3).sum().backward(create_graph=True)
    assert x.grad.requires_grad
    (x * 5.0).sum().backward()  # first order: recording is off in its walk
    np.testing.assert_allclose(x.grad.numpy(), 3.0 * np.array([1.0, 4.0]) + 5.0)
    assert x.grad.requires_grad  # the sum was recorded: d(grad)/dx = 6x
    (second,) = ab.grad(x.grad.sum(), [x])
    np.testing.assert_allclose(second.numpy(), [6.0, 12.0])


def test_a_seed_that_requires_grad_reaches_grad_as_a_differentiable_copy() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    z = ab.tensor([0.5, 0.5], requires_grad=True)
    v = ab.tensor([3.0, 4.0], requires_grad=True)
    with pytest.warns(UserWarning, match="reference cycle"):
        (x + z).backward(v, create_graph=True)
    assert x.grad is not v and z.grad is not v and x.grad is not z.grad
    np.testing.assert_allclose(x.grad.numpy(), [3.0, 4.0])
    assert x.grad.requires_grad
    (dv,) = ab.grad((x.grad * ab.tensor([2.0, 5.0])).sum(), [v])
    np.testing.assert_allclose(dv.numpy(), [2.0, 5.0])
    # arrays of their own: an in-place change to one .grad reaches neither the seed nor the other
    assert not np.shares_memory(x.grad.data, v.data) and not np.shares_memory(x.grad.data, z.grad.data)


# -- retained gradients, when the tensor is gone ----------------------------------------------
def test_a_retained_tensor_deleted_before_backward_costs_nothing() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    h.retain_grad()
    # (h first: the walk's last input read is x, so nothing but the product's node holds h, and
    # that node drops it once walked, before h's node runs)
    y = (h * x).sum()
    del h
    gc.collect()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [4.0, 8.0])  # d(2x^2)/dx


# -- ab.grad stops at its last wanted vertex ------------------------------------------------------------
def test_grad_of_an_intermediate_does_not_walk_into_a_freed_graph_upstream() -> None:
    # The walk went on past h into the graph that made it, which the first backward had freed:
    # "backward through op 'mul' a second time" (PyTorch returns the gradient).
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2.0
    h.sum().backward()
    (g,) = ab.grad(ab.sin(h).sum(), [h])
    np.testing.assert_array_equal(g.numpy(), np.cos(h.numpy()))
    (zero,) = ab.grad((h * 0.0).sum() + ab.sum(ab.sin(x)), [h])  # a wanted vertex reached by zeros only
    np.testing.assert_array_equal(zero.numpy(), [0.0, 0.0])


def test_grad_of_an_intermediate_runs_no_hook_upstream_of_it() -> None:
    # What lies upstream of the last wanted vertex is not run: its hooks see nothing (they saw a
    # gradient before), and a leaf there gets no call either, as in PyTorch.
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    a = x * 3.0
    h = ab.exp(a)
    seen: list[str] = []
    a.register_hook(lambda g: seen.append("a"))
    x.register_hook(lambda g: seen.append("x"))
    (g,) = ab.grad((h * h).sum(), [h])
    np.testing.assert_array_equal(g.numpy(), 2 * h.numpy())
    assert seen == []
    # With a leaf among the wanted, the walk goes on to it, hooks and all.
    g_h, g_x = ab.grad((h * h).sum(), [h, x])
    np.testing.assert_array_equal(g_h.numpy(), 2 * h.numpy())
    np.testing.assert_allclose(g_x.numpy(), 2 * h.numpy() * h.numpy() * 3.0, rtol=1e-15)
    assert seen == ["a", "x"]
