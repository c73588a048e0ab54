"""The reverse-mode engine: backward, ab.grad, higher order, graph freeing, grad mode."""

from __future__ import annotations

import array
import gc
import re
import weakref
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops.registry import REGISTRY, op


def test_readme_example() -> None:
    x = ab.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    w = ab.randn(2, 3, requires_grad=True, rng=0)
    loss = (x @ w).tanh().sum()
    loss.backward()
    assert x.grad is not None and w.grad is not None
    assert x.grad.shape == x.shape and w.grad.shape == w.shape
    # d/dx sum(tanh(xw)) = (1 - tanh^2(xw)) w^T
    sech2 = 1 - np.tanh(x.data @ w.data) ** 2
    np.testing.assert_allclose(x.grad.data, sech2 @ w.data.T)
    np.testing.assert_allclose(w.grad.data, x.data.T @ sech2)

    y = (x**3).sum()
    (g,) = ab.grad(y, [x], create_graph=True)
    np.testing.assert_allclose(g.data, 3 * x.data**2)
    v = ab.tensor([[1.0, -1.0], [0.5, 2.0]])
    (hv,) = ab.grad((g * v).sum(), [x])
    np.testing.assert_allclose(hv.data, 6 * x.data * v.data)


def test_third_derivative() -> None:
    x = ab.tensor([0.3, -1.2], requires_grad=True)
    (d1,) = ab.grad(ab.sin(x).sum(), [x], create_graph=True)
    (d2,) = ab.grad(d1.sum(), [x], create_graph=True)
    (d3,) = ab.grad(d2.sum(), [x])
    np.testing.assert_allclose(d1.data, np.cos(x.data))
    np.testing.assert_allclose(d2.data, -np.sin(x.data))
    np.testing.assert_allclose(d3.data, -np.cos(x.data))


def test_leaf_gradients_accumulate_across_calls() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, 3 + 2 * x.data)


def test_shared_subexpression_and_reused_input() -> None:
    x = ab.tensor(1.5, requires_grad=True)
    h = x * x
    y = h * h + h * x + x
    y.backward()
    # y = x^4 + x^3 + x -> 4x^3 + 3x^2 + 1
    assert x.grad.item() == pytest.approx(4 * 1.5**3 + 3 * 1.5**2 + 1)


@pytest.mark.parametrize("fast_path", [True, False])
@pytest.mark.parametrize("create_graph", [False, True])
def test_an_output_given_twice_receives_both_cotangents(
    fast_path: bool, create_graph: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # grad([y, y], x, [a, b]) is grad(y, x, a + b). Counted twice, y's inputs waited for a second
    # contribution the walk never sent: every gradient came back None (found by the fuzzer's
    # gradgradcheck of sin(x0 + x1), whose two first derivatives are one Tensor).
    monkeypatch.setattr("autobp.engine._fast_path", fast_path)
    x = ab.tensor([0.5, -1.0], requires_grad=True)
    y = ab.sin(x) * 3.0
    a, b = ab.tensor([0.3, 1.0]), ab.tensor([-0.7, 2.0])
    twice = ab.grad([y, y], [x], grad_outputs=[a, b], retain_graph=True, create_graph=create_graph)[0]
    once = ab.grad([ab.sin(x) * 3.0], [x], grad_outputs=[a + b])[0]
    assert twice is not None and np.array_equal(twice.data, once.data)
    # A leaf given twice too, and the graph's root given beside a node inside it.
    z = y.sum()
    both = ab.grad([z, y, x, x], [x], grad_outputs=[ab.tensor(1.0), a, b, b])[0]
    want = 3.0 * np.cos(x.data) * (1.0 + a.data) + 2.0 * b.data
    np.testing.assert_allclose(both.data, want, rtol=1e-14)


@pytest.mark.parametrize("fast_path", [True, False])
def test_first_order_gradients_never_share_memory_with_the_seed_or_each_other(
    fast_path: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # add's vjp hands its seed through: the gradient was the caller's grad_outputs array, and the
    # gradients of x and y were one array, so an in-place write to one changed the others.
    monkeypatch.setattr("autobp.engine._fast_path", fast_path)
    x, y = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([3.0, 4.0], requires_grad=True)
    u = ab.tensor([0.5, 0.25])
    gx, gy = ab.grad(x + y, [x, y], grad_outputs=[u])
    (alone,) = ab.grad(x + 0.0, [x], grad_outputs=[u])
    first, again = ab.grad((x * 2.0).sum(), [x, x])
    for a, b in [(gx, u), (gy, u), (gx, gy), (alone, u), (first, again)]:
        assert not np.shares_memory(a.data, b.data)
    gx.add_(1.0)
    alone.add_(1.0)
    assert u.tolist() == [0.5, 0.25] and gy.tolist() == [0.5, 0.25]


def test_graph_is_freed_after_backward_and_second_backward_raises() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * np.exp(x.data))


def test_memory_of_intermediates_is_released_after_backward() -> None:
    x = ab.tensor(np.ones(1000), requires_grad=True)
    h = x * 2.0
    node = weakref.ref(h)  # (h is the node of the op that made it)
    array = weakref.ref(h.data.base if h.data.base is not None else h.data)
    y = h.sum()
    del h
    y.backward()
    gc.collect()
    assert node() is None
    assert array() is None


def test_nonscalar_backward_needs_a_gradient() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with pytest.raises(RuntimeError, match="not a scalar"):
        y.backward()
    y.backward(np.array([1.0, 10.0]))
    np.testing.assert_allclose(x.grad.data, [2.0, 20.0])


def test_backward_of_something_without_grad_is_explained() -> None:
    with pytest.raises(RuntimeError, match="does not require grad"):
        ab.tensor(1.0).backward()


def test_the_derivative_of_a_gradient_on_no_graph_is_none_with_allow_unused() -> None:
    # relu's first-order gradient does not vary with x, so it is on no graph; its derivative is
    # zero (PyTorch keeps such a gradient on its graph and returns zeros).
    x = ab.tensor([1.0, -1.0], requires_grad=True)
    (g,) = ab.grad(ab.relu(x).sum(), [x], create_graph=True)
    assert not g.requires_grad
    assert ab.grad(g.sum(), [x], allow_unused=True) == (None,)
    with pytest.raises(RuntimeError, match="allow_unused=True"):  # without it: the error says what to do
        ab.grad(g.sum(), [x])
    # with another output on a graph, the constant one adds nothing
    (both,) = ab.grad([g.sum(), (x * x).sum()], [x], allow_unused=True)
    np.testing.assert_allclose(both.data, [2.0, -2.0])
    weighted = ab.grad([g, x * x], [x], grad_outputs=[np.ones(2), np.array([1.0, 3.0])], allow_unused=True)
    np.testing.assert_allclose(weighted[0].data, [2.0, -6.0])
    with pytest.raises(ValueError, match="does not match output shape"):  # a constant's seed is still checked
        ab.grad([g, x * x], [x], grad_outputs=[np.ones(3), np.ones(2)], allow_unused=True)
    with pytest.raises(ValueError, match="every input must be a Tensor that requires grad"):
        ab.grad(g.sum(), [ab.tensor(1.0)], allow_unused=True)


def test_gradient_argument_must_match_the_shape() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="does not match output shape"):
        (x * 2).backward(np.ones(3))


def test_grad_never_touches_dot_grad_and_reports_unused_inputs() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    z = ab.tensor([3.0], requires_grad=True)
    y = (x * x).sum()
    (g,) = ab.grad(y, [x], retain_graph=True)
    assert x.grad is None
    np.testing.assert_allclose(g.data, 2 * x.data)
    with pytest.raises(RuntimeError, match="not used"):
        ab.grad(y, [x, z], retain_graph=True)
    gx, gz = ab.grad(y, [x, z], allow_unused=True)
    assert gz is None and gx is not None


def test_grad_with_respect_to_an_intermediate() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    (gh,) = ab.grad(y, [h])
    np.testing.assert_allclose(gh.data, 2 * h.data)


def test_grad_of_several_outputs_sums_their_contributions() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    a, b = (x * 2).sum(), (x * x).sum()
    (g,) = ab.grad([a, b], [x])
    np.testing.assert_allclose(g.data, 2 + 2 * x.data)


def test_gradients_are_summed_back_over_broadcast_axes() -> None:
    x = ab.tensor(np.ones((3, 1)), requires_grad=True)
    y = ab.tensor(np.arange(4.0), requires_grad=True)
    (x * y).sum().backward()
    assert x.grad.shape == (3, 1) and y.grad.shape == (4,)
    np.testing.assert_allclose(x.grad.data, np.full((3, 1), 6.0))
    np.testing.assert_allclose(y.grad.data, np.full(4, 3.0))


def test_no_grad_and_enable_grad_as_context_and_decorator() -> None:
    x = ab.tensor([1.0], requires_grad=True)
    with ab.no_grad():
        assert not (x * 2).requires_grad
        with ab.enable_grad():
            assert (x * 2).requires_grad
        assert not ab.is_grad_enabled()
    assert ab.is_grad_enabled()

    @ab.no_grad()
    def infer(t: ab.Tensor) -> ab.Tensor:
        return t * 2

    assert not infer(x).requires_grad and (x * 2).requires_grad


def test_a_million_op_chain_runs_forward_and_backward_without_recursion() -> None:
    x = ab.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(500_000):
        y = y * 1.000001
        y = y + 1e-9
    y.backward()
    assert x.grad.item() == pytest.approx(1.000001**500_000, rel=1e-9)


def test_deleting_a_deep_graph_without_backward_does_not_overflow_the_stack() -> None:
    x = ab.tensor(0.5, requires_grad=True)
    y = x
    for _ in range(300_000):
        y = y + 1e-9
    del y
    gc.collect()


def test_an_error_in_backward_leaves_every_grad_unchanged() -> None:
    @op("failing_for_test", arity=2)
    def failing(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """x + y whose vjp for y fails."""
        return x + y

    del REGISTRY["failing_for_test"]  # keep the test op out of the registry-driven suite

    def broken(grad: ab.Tensor, out: ab.Tensor, x: ab.Tensor, y: ab.Tensor) -> ab.Tensor:
        raise ArithmeticError("broken vjp")

    failing.defvjp(lambda grad, out, x, y: grad, broken)
    a = ab.tensor([1.0], requires_grad=True)
    b = ab.tensor([2.0], requires_grad=True)
    a.grad = ab.tensor([5.0])
    with pytest.raises(ArithmeticError):
        (failing(a * 1.0, b) + a).sum().backward()
    np.testing.assert_allclose(a.grad.data, [5.0])
    assert b.grad is None


def test_stale_saved_tensor_is_detected() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    y = (h * h).sum()
    h._version += 1  # what an in-place op does
    with pytest.raises(RuntimeError, match="modified in place"):
        y.backward()


def test_next_functions_and_grad_fn_names() -> None:
    x = ab.tensor([1.0], requires_grad=True)
    y = x.exp() * 2
    assert y.grad_fn.name == "mul"
    (parent,) = y.grad_fn.next_functions
    assert parent.name == "exp"
    assert parent.next_functions == (x,)
    assert repr(y.grad_fn) == "<mul backward>"


def test_create_graph_gradients_in_grad_are_each_their_own_and_stay_differentiable() -> None:
    # An identity vjp (x + y) hands one gradient to both leaves; with create_graph it is the seed
    # itself. Each .grad must be its own (a write to one reaches neither the other nor the seed),
    # and a later first-order backward adding to a differentiable .grad must keep its graph.
    x, y = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([3.0, 4.0], requires_grad=True)
    seed = ab.tensor([1.0, 1.0], requires_grad=True)
    with pytest.warns(UserWarning, match="reference cycle"):
        (x + y).backward(seed, create_graph=True)
    assert x.grad is not y.grad and x.grad is not seed and y.grad is not seed
    with pytest.raises(RuntimeError, match="belongs to the graph"):  # a write is refused, not shared
        x.grad.mul_(5.0)
    (d_seed,) = ab.grad(x.grad.sum(), [seed])  # still differentiable with respect to the seed
    np.testing.assert_array_equal(d_seed.data, [1.0, 1.0])

    w = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(UserWarning, match="reference cycle"):
        (w**3).sum().backward(create_graph=True)  # w.grad = 3 w^2, on a graph
    (w**2).sum().backward()  # adds 2 w, a constant
    assert w.grad.requires_grad
    (second,) = ab.grad(w.grad.sum() + (w * w).sum(), [w])
    np.testing.assert_array_equal(second.data, [8.0, 16.0])  # 6 w + 2 w, as PyTorch gives

    r = ab.tensor([1.0, 2.0], requires_grad=True)
    h = r * 1.0
    h.retain_grad()
    with pytest.warns(UserWarning, match="reference cycle"):
        (h * r).sum().backward(create_graph=True)  # h.grad = r, on a graph
    (h * 2.0).sum().backward()
    assert h.grad.requires_grad
    np.testing.assert_array_equal(ab.grad(h.grad.sum(), [r])[0].data, [1.0, 1.0])


@pytest.mark.parametrize(
    "seed",
    # Bool seeds added as a logical or ([1, 1] for [2, 2]), uint8 ones overflowed (144 for 400),
    # float16 ones kept the walk in float16 (its own sums rounded).
    [np.array([True, True]), np.array([200, 200], np.uint8), np.array([1.1, 2.2], np.float16)],
    ids=["bool", "uint8", "float16"],
)
def test_a_tensor_seed_of_another_dtype_is_cast_to_the_output_dtype(seed: np.ndarray) -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3.3
    (g,) = ab.grad([y, y], [x], grad_outputs=[ab.tensor(seed), ab.tensor(seed)], retain_graph=True)
    assert g.dtype == np.float64
    as_float64 = seed.astype(np.float64)
    np.testing.assert_allclose(g.data, 2 * as_float64 * 3.3, rtol=1e-15)  # what numpy seeds give
    y.backward(ab.tensor(seed))
    np.testing.assert_allclose(x.grad.data, as_float64 * 3.3, rtol=1e-15)


def test_a_keyword_tensor_that_requires_grad_is_refused_by_name() -> None:
    # An op differentiates its positional inputs: a keyword's gradient would be lost silently.
    @op("scale_by_keyword", arity=1)
    def scale(x: Any, s: Any = 1.0) -> Any:
        return x * (s.data if isinstance(s, ab.Tensor) else s)

    scale.defvjp(lambda g, out, x, s=1.0: g * s)
    del REGISTRY["scale_by_keyword"]  # keep the test op out of the registry-driven suite
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    for call in (lambda: scale(x, s=x), lambda: scale(ab.tensor([1.0, 1.0]), s=x), lambda: scale(x, x)):
        with pytest.raises(TypeError, match=r"scale_by_keyword: keyword argument 's' is a Tensor that requires grad"):
            call()
    with ab.no_grad():  # no gradient wanted: fine
        np.testing.assert_array_equal(scale(x, s=x).data, [1.0, 4.0])
    np.testing.assert_array_equal(scale(x, s=x.detach()).data, [1.0, 4.0])


@pytest.mark.parametrize(
    "expression",
    [
        "x ** [2.0, 3.0]",
        "[2.0, 3.0] ** x",
        "[2.0, 3.0] @ x",
        "ab.einsum('i,i->', x, (2.0, 3.0))",
        "ab.concatenate([x, [2.0]])",
    ],
)
def test_a_list_operand_is_the_array_numpy_makes_of_it(expression: str) -> None:
    # The forward took a list as numpy does, but the rules got the list itself: reading its .dtype
    # or .ndim, or computing y - 1 with it, failed at backward (pow, matmul, einsum, concatenate).
    x = ab.tensor([1.5, 2.5], requires_grad=True)
    (grad,) = ab.grad((eval(expression, {"x": x, "ab": ab}) ** 2).sum(), [x])
    as_array = expression.replace("[2.0, 3.0]", "np.array([2.0, 3.0])").replace("(2.0, 3.0)", "np.array([2.0, 3.0])")
    as_array = as_array.replace("[2.0]]", "np.array([2.0])]")
    x_again = ab.tensor([1.5, 2.5], requires_grad=True)
    (want,) = ab.grad((eval(as_array, {"x": x_again, "ab": ab, "np": np}) ** 2).sum(), [x_again])
    np.testing.assert_array_equal(grad.numpy(), want.numpy())


@pytest.mark.parametrize(
    "operand",
    ["range(2, 4)", "memoryview(np.array([2.0, 3.0]))", "array.array('d', [2.0, 3.0])", "bytearray(b'\\x02\\x03')"],
)
@pytest.mark.parametrize("expression", ["x ** OPERAND", "OPERAND ** x", "x @ OPERAND", "OPERAND @ x", "x * OPERAND"])
def test_a_range_or_buffer_operand_is_the_array_numpy_makes_of_it(operand: str, expression: str) -> None:
    # The forward took it as numpy does, but the rules got the object itself: x ** range(3) failed
    # at backward ("unsupported operand type(s) for -: 'range' and 'int"), and so did matmul
    # ("'memoryview' object has no attribute 'swapaxes'"). Now it goes the way a list goes.
    names = {"ab": ab, "np": np, "array": array}
    x = ab.tensor([1.5, 2.5], requires_grad=True)
    out = eval(expression.replace("OPERAND", operand), {**names, "x": x})
    (grad,) = ab.grad((out**2).sum(), [x])
    x_again = ab.tensor([1.5, 2.5], requires_grad=True)
    want_out = eval(expression.replace("OPERAND", "np.array([2.0, 3.0])"), {**names, "x": x_again})
    (want,) = ab.grad((want_out**2).sum(), [x_again])
    np.testing.assert_array_equal(out.numpy(), want_out.numpy())
    np.testing.assert_array_equal(grad.numpy(), want.numpy())


def test_a_memoryview_operand_written_after_the_op_is_read_as_the_op_read_it() -> None:
    # (its memory is copied when saved, as a writeable numpy array's is)
    buffer = np.array([2.0, 3.0])
    x = ab.tensor([1.5, 2.5], requires_grad=True)
    out = x ** memoryview(buffer)
    buffer[0] = 10.0
    np.testing.assert_array_equal(ab.grad(out.sum(), [x])[0].numpy(), [2.0 * 1.5, 3.0 * 2.5**2])


@pytest.mark.parametrize("number", [Fraction(1, 3), Decimal("0.5")], ids=repr)
@pytest.mark.parametrize(
    ("expression", "name", "where"),
    [
        ("x * N", "mul", "operand"),
        ("N * x", "mul", "operand"),
        ("x ** N", "pow", "operand"),
        ("ab.maximum(x, N)", "maximum", "operand"),
        ("x > N", "greater", "operand"),
        ("x * [N, 1.0]", "mul", "a list operand holding"),
        ("x * (1.0, N)", "mul", "a tuple operand holding"),
    ],
)
def test_a_number_numpy_holds_as_a_python_object_is_refused(
    number: Any, expression: str, name: str, where: str
) -> None:
    # numpy holds a Fraction as a Python object: x * Fraction(1, 3) was a Tensor of dtype object on
    # the graph (whose sin failed, naming no Fraction), and x * Decimal(...) failed naming
    # 'float' and 'decimal.Decimal'. Refused, as PyTorch and ab.tensor refuse them.
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    kind = f"{type(number).__module__}.{type(number).__name__}"
    message = rf"^{name}: {where} {re.escape(repr(number))}, a {re.escape(kind)}, which numpy holds as a Python object"
    for grad_mode in (ab.enable_grad, ab.no_grad):
        with grad_mode(), pytest.raises(TypeError, match=message) as error:
            eval(expression, {"ab": ab, "x": x, "N": number})
        assert "float(value)" in str(error.value)
    np.testing.assert_array_equal((x * float(number)).numpy(), [float(number), 2 * float(number)])  # the way out


def test_a_ragged_list_operand_is_an_error_naming_the_op() -> None:
    # numpy refuses to make an array of it; that error came out of the public function bare.
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"^mul: .*inhomogeneous shape.*\(inputs: float64\[2\], list "):
        x * [[1.0, 2.0], [3.0]]


def test_a_tensor_inside_a_list_operand_that_needs_a_derivative_is_refused() -> None:
    # numpy reads the list as an array of its values, a constant: x * [a, 4.0] gave a no gradient
    # (None), with no error. A constant Tensor in the list, or grad mode off, is as before.
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    a = ab.tensor(3.0, requires_grad=True)
    with pytest.raises(
        TypeError, match=r"^mul: a list operand holds tensor float64\[\], which requires grad; .*ab\.stack"
    ):
        x * [a, 4.0]
    with pytest.raises(TypeError, match=r"^mul: a tuple operand holds tensor .*forward-mode tangent"):
        ab.functional.jvp(lambda t: x.detach() * (t, 1.0), ab.tensor(2.0), ab.tensor(1.0))
    np.testing.assert_array_equal((x * [ab.tensor(3.0), 4.0]).numpy(), [3.0, 8.0])
    with ab.no_grad():
        np.testing.assert_array_equal((x * [a, 4.0]).numpy(), [3.0, 8.0])
    (grad,) = ab.grad((x * ab.stack([a, ab.tensor(4.0)])).sum(), [a])  # the way out
    assert grad.item() == 1.0


class _Subclass(np.ndarray):
    """An ndarray subclass of the test's own."""


@pytest.mark.parametrize(
    "expression",
    ["x * A", "A * x", "ab.mul.general(x, A)", "x @ A[:, None]", "ab.maximum(A, x)", "ab.sin(A)", "ab.sum(A)", "x + M"],
)
def test_a_numpy_array_of_dtype_object_is_refused_as_an_operand(expression: str) -> None:
    # x * np.array([1.0, 2.0], dtype=object) was a Tensor of dtype object on the graph (which
    # ab.tensor refuses to make, and whose gradient came back as objects). Refused on the shorter
    # road and the general function alike, with grad mode on and off.
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    values = {"ab": ab, "x": x, "A": np.array([1.0, Fraction(1, 2)], dtype=object)}
    values["M"] = values["A"].view(_Subclass)  # (a subclass holding objects, taken as its plain array)
    for grad_mode in (ab.enable_grad, ab.no_grad):
        with (
            grad_mode(),
            pytest.raises(TypeError, match=r"^\w+: operand object\[[\d, ]+\] is a numpy array of dtype object"),
        ):
            eval(expression, values)
    assert (x * values["A"].astype(float)).dtype == np.float64  # the way out the message gives
