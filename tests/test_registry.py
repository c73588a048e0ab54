"""The op registry: registration rules, argument binding, and the plain-array first-order path."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import autobp as ab
from autobp.graph import WeakScalar
from autobp.ops.registry import REGISTRY, composite, describe, op


def test_an_op_name_can_be_registered_once(scratch_ops: list[str]) -> None:
    scratch_ops.append("twice_for_test")

    @op("twice_for_test")
    def first(x: np.ndarray) -> np.ndarray:
        """x."""
        return x

    with pytest.raises(ValueError, match="registered twice"):
        op("twice_for_test")(first.op.forward)
    with pytest.raises(ValueError, match="registered twice"):
        composite("twice_for_test")(lambda x: x)


def test_defvjp_needs_one_rule_per_input(scratch_ops: list[str]) -> None:
    scratch_ops.append("pair_for_test")

    @op("pair_for_test", arity=2)
    def pair(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """x + y."""
        return x + y

    with pytest.raises(TypeError, match="pair_for_test: defvjp needs 2 rules, got 1"):
        pair.defvjp(lambda grad, out, x, y: grad)


def test_extra_positional_arguments_bind_to_keywords() -> None:
    x = ab.tensor(np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(ab.sum(x, 0).data, ab.sum(x, axis=0).data)
    with pytest.raises(TypeError, match="sum: takes at most 3 positional arguments"):
        ab.sum(x, 0, False, "extra")
    with pytest.raises(TypeError, match=r"sum: got multiple values for \['axis'\]"):
        ab.sum(x, 0, axis=1)


def _register_scaled(name: str, rule: object, plain_arrays: bool) -> object:
    @op(name)
    def scaled(x: np.ndarray) -> np.ndarray:
        """3 x."""
        return 3 * x

    scaled.defvjp(rule, plain_arrays=plain_arrays)
    return scaled


@pytest.mark.parametrize("plain_arrays", [True, False])
def test_rules_that_mix_in_tensors_work_on_either_path(scratch_ops: list[str], plain_arrays: bool) -> None:
    # A rule that builds a Tensor (ab.full) and returns a Tensor: on the plain-array path the
    # ops unwrap it and the engine takes its data; on the Tensor path it is the normal case.
    name = f"scaled_for_test_{plain_arrays}"
    scratch_ops.append(name)
    scaled = _register_scaled(name, lambda grad, out, x: grad * ab.full(x.shape, 3.0), plain_arrays)
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    (g,) = ab.grad(scaled(x).sum(), [x])  # type: ignore[operator]
    np.testing.assert_array_equal(g.data, [3.0, 3.0])
    assert ab.gradgradcheck(scaled, x)  # type: ignore[arg-type]


def test_an_error_inside_a_plain_array_rule_names_the_op(scratch_ops: list[str]) -> None:
    scratch_ops.append("misaligned_for_test")
    scaled = _register_scaled("misaligned_for_test", lambda grad, out, x: ab.matmul(grad, np.ones((5, 5))), True)
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match="matmul: shapes"):
        scaled(x).sum().backward()  # type: ignore[operator]
    with pytest.raises(TypeError, match=r"add: .*inputs: float64\[2\], str"):
        scaled_bad = _register_scaled("bad_for_test", lambda grad, out, x: ab.add(grad, "text"), True)
        scratch_ops.append("bad_for_test")
        scaled_bad(ab.tensor([1.0, 2.0], requires_grad=True)).sum().backward()  # type: ignore[operator]


def test_a_tensor_passed_to_an_op_inside_a_plain_array_rule_fails_clearly_when_numpy_rejects_it(
    scratch_ops: list[str],
) -> None:
    scratch_ops.append("shapeless_for_test")
    # numpy's ufuncs refuse Tensors: the op unwraps them, tries again, and names itself on failure.
    scaled = _register_scaled("shapeless_for_test", lambda grad, out, x: ab.add(grad, ab.ones(5)), True)
    with pytest.raises(ValueError, match="add: operands could not be broadcast"):
        scaled(ab.tensor([1.0, 2.0], requires_grad=True)).sum().backward()  # type: ignore[operator]


def test_a_plain_array_rule_may_return_a_tensor(scratch_ops: list[str]) -> None:
    scratch_ops.append("constant_slope_for_test")
    scaled = _register_scaled("constant_slope_for_test", lambda grad, out, x: ab.full(x.shape, 3.0), True)
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    scaled(x).sum().backward()  # type: ignore[operator]
    np.testing.assert_array_equal(x.grad.data, [3.0, 3.0])


def test_a_variadic_plain_array_rule_works_with_one_input(scratch_ops: list[str]) -> None:
    scratch_ops.append("total_for_test")

    @op("total_for_test", arity=None)
    def total(*xs: np.ndarray) -> np.ndarray:
        """The elementwise sum of all inputs."""
        return sum(xs[1:], xs[0])

    total.defvjp_variadic(lambda grad, out, *xs: [grad for _ in xs], plain_arrays=True)
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    for inputs in ((x,), (x, x), (x, x, x)):
        (g,) = ab.grad(total(*inputs).sum(), [x])
        np.testing.assert_array_equal(g.data, [len(inputs)] * 2)


def test_a_ufunc_forward_must_take_the_op_s_inputs(scratch_ops: list[str]) -> None:
    scratch_ops.append("ufunc_for_test")
    with pytest.raises(TypeError, match="ufunc add takes 2 inputs, but arity is 1"):

        @op("ufunc_for_test", ufunc=np.add)
        def twice(x: np.ndarray) -> np.ndarray:
            """x + x."""
            return x + x

    assert "ufunc_for_test" not in REGISTRY


def test_a_ufunc_op_shows_its_declared_signature_and_runs_the_ufunc(scratch_ops: list[str]) -> None:
    scratch_ops.append("hypot_for_test")

    @op("hypot_for_test", arity=2, ufunc=np.hypot)
    def hypot_for_test(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """sqrt(x^2 + y^2)."""

    assert hypot_for_test.op.forward is np.hypot
    assert hypot_for_test.__doc__ == "sqrt(x^2 + y^2)."
    assert list(inspect.signature(hypot_for_test).parameters) == ["x", "y"]
    assert hypot_for_test(ab.tensor(3.0), ab.tensor(4.0)).item() == 5.0


def test_internal_ops_are_registered_but_not_public() -> None:
    import autobp.ops

    assert set(REGISTRY) >= autobp.ops.INTERNAL
    public = set(ab.__all__) | set(autobp.ops.__all__) | set(dir(ab)) | set(vars(autobp.ops))
    assert not autobp.ops.INTERNAL & public
    # Every registry entry is either public (under its own name or an alias) or internal.
    public_ops = {getattr(ab, name).op.name for name in autobp.ops.__all__}
    assert set(REGISTRY) == public_ops | autobp.ops.INTERNAL
    assert not public_ops & autobp.ops.INTERNAL
    # An internal op still works as an op: its public function computes and records.
    matmul_tn = REGISTRY["matmul_tn"].public
    x, y = ab.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True), ab.tensor(np.arange(3.0).reshape(3, 1))
    out = matmul_tn(x, y)
    np.testing.assert_array_equal(out.data, x.data.T @ y.data)
    assert out.grad_fn.name == "matmul_tn"


def test_describe_shows_dtype_shape_library_and_device() -> None:
    assert describe(ab.ones((3, 4))) == "float64[3, 4]"
    assert describe(np.ones(2, np.float32)) == "float32[2]"
    assert describe(2.0) == "float 2.0"
    assert describe(WeakScalar(2.0)) == "float64[]"  # a Tensor subclass: its array is shown
    assert describe([1.5, 2.5]) == "list [1.5, 2.5]"
    long = describe(list(range(10**5)))  # a long value is cut short, not pasted whole into a message
    assert long.startswith("list [0, 1, 2") and long.endswith("...]") and len(long) < 80
    torch = pytest.importorskip("torch")
    assert describe(ab.tensor(torch.ones(2, 3))) == "torch float32[2, 3]"


def test_an_error_between_libraries_names_both_inputs() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"add: .*float64\[2\] and torch float32\[2\]"):
        ab.tensor([1.0, 2.0]) + ab.tensor(torch.ones(2))


def test_describe_shows_an_ndarray_subclass_as_its_array() -> None:
    class Marked(np.ndarray):
        pass

    assert describe(np.ones((2, 3), np.float32).view(Marked)) == "float32[2, 3]"


@pytest.mark.parametrize("create_graph", [False, True])
@pytest.mark.parametrize("plain_arrays", [False, True])
def test_a_vjp_of_the_wrong_shape_names_the_op_and_the_input(
    scratch_ops: list[str], create_graph: bool, plain_arrays: bool
) -> None:
    name = f"wrong_shape_vjp_{create_graph}_{plain_arrays}"
    scratch_ops.append(name)

    @op(name, arity=2)
    def wrong(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """x * y."""
        return x * y

    # Input 1's rule returns a gradient of a shape that no broadcast of y's (3,) could give.
    wrong.defvjp(lambda grad, out, x, y: grad * y, lambda grad, out, x, y: grad[:, :2], plain_arrays=plain_arrays)
    x, y = ab.tensor(np.ones((2, 3)), requires_grad=True), ab.tensor(np.ones(3), requires_grad=True)
    with pytest.raises(
        ValueError, match=rf"^{name}: the vjp rule for input 1 returned a gradient of shape \(2, 2\).*\(3,\)"
    ):
        ab.grad(wrong(x, y).sum(), [x, y], create_graph=create_graph)


def test_a_custom_forward_writing_into_its_input_is_refused_not_silent(scratch_ops: list[str]) -> None:
    # The forward got the Tensor's own array: `x *= 2` changed a leaf that requires grad, and a
    # constant another op had saved, with no version counted, so backward gave wrong gradients
    # ((c * w).sum() then doubled(c): w.grad [2, 4, 6] for [1, 2, 3]) without an error.
    scratch_ops.append("doubled_in_place")

    @op("doubled_in_place")
    def doubled(x: np.ndarray) -> np.ndarray:
        """2 x, written into x."""
        x *= 2.0
        return x

    doubled.defvjp(lambda grad, out, x: grad * 2)
    x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(ValueError, match="doubled_in_place: the forward wrote into an input array in place"):
        doubled(x)
    np.testing.assert_array_equal(x.data, [1.0, 2.0, 3.0])
    c, w = ab.tensor([1.0, 2.0, 3.0]), ab.tensor([1.0, 1.0, 1.0], requires_grad=True)
    total = (c * w).sum()  # mul saves c
    with pytest.raises(ValueError, match="wrote into an input array"):
        doubled(c)
    with pytest.raises(ValueError, match="wrote into an input array"):
        doubled(np.array([1.0, 2.0]))  # a plain array operand too
    total.backward()
    np.testing.assert_array_equal(w.grad.data, [1.0, 2.0, 3.0])


def test_a_custom_forward_returning_its_input_or_a_view_still_shares_the_counter(scratch_ops: list[str]) -> None:
    # (the forward now gets a read-only view of each array: what it returns of it is still a view)
    scratch_ops.extend(["same_for_test", "reversed_for_test"])

    @op("same_for_test")
    def same(x: np.ndarray) -> np.ndarray:
        """x itself."""
        return x

    @op("reversed_for_test")
    def flipped(x: np.ndarray) -> np.ndarray:
        """x reversed, a view."""
        return x[::-1]

    same.defvjp(lambda grad, out, x: grad)
    flipped.defvjp(lambda grad, out, x: grad[::-1])
    for function in (same, flipped):
        c, w = ab.tensor([1.0, 2.0, 3.0]), ab.tensor([1.0, 1.0, 1.0], requires_grad=True)
        y = function(c)
        assert np.shares_memory(y.data, c.data)
        total = (y * w).sum()
        c[0] = 100.0  # a write through the input reaches the saved view
        with pytest.raises(RuntimeError, match="modified in place"):
            total.backward()
        x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
        (function(x) * ab.tensor([1.0, 2.0, 3.0])).sum().backward()
        np.testing.assert_array_equal(x.grad.data, [1.0, 2.0, 3.0] if function is same else [3.0, 2.0, 1.0])


@pytest.mark.parametrize("plain_arrays", [True, False])
@pytest.mark.parametrize("returned", ["one too few", "one too many", "an array"])
def test_a_variadic_rule_giving_the_wrong_count_is_named(
    scratch_ops: list[str], plain_arrays: bool, returned: str
) -> None:
    # The walk pairs gradients with inputs unchecked: the count is checked where a user's rule gives it.
    # (An array of two rows for two inputs would otherwise be read as two gradients.)
    scratch_ops.append("pair_total_for_test")

    @op("pair_total_for_test", arity=None)
    def pair_total(*xs: np.ndarray) -> np.ndarray:
        """The sum of the inputs. Shapes: broadcastable -> broadcast shape."""
        return sum(np.asarray(x) for x in xs)  # type: ignore[return-value]

    def back(grad: np.ndarray, out: np.ndarray, *xs: np.ndarray, needs: tuple[bool, ...]) -> object:
        grads = [grad for _ in xs]
        if returned == "an array":
            return np.stack(grads)
        return grads[:-1] if returned == "one too few" else [*grads, grad]

    pair_total.defvjp_variadic(back, plain_arrays=plain_arrays)
    x, y = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([3.0, 4.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"^pair_total_for_test: its variadic vjp rule returned .* for 2 inputs"):
        pair_total(x, y).sum().backward()
    assert x.grad is None and y.grad is None


@pytest.mark.parametrize("create_graph", [False, True])
def test_an_op_without_a_vjp_rule_refuses_reverse_mode_by_name(scratch_ops: list[str], create_graph: bool) -> None:
    # As an op without a jvp rule refuses forward mode (custom-ops.md); before, backward raised
    # "zip() argument 2 is longer than argument 1", which says nothing of the missing rule.
    scratch_ops.append("cube_without_vjp")

    @op("cube_without_vjp", arity=2)
    def cube(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """x^3 y. Shapes: broadcastable -> broadcast shape."""
        return np.asarray(x) ** 3 * y

    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(NotImplementedError, match=r"^cube_without_vjp: reverse mode .* has no vjp rule; .*defvjp"):
        ab.grad(cube(x, 2.0).sum(), [x], create_graph=create_graph)
    with pytest.raises(NotImplementedError, match="has no vjp rule"):
        cube(x, 2.0).sum().backward(create_graph=create_graph)
    assert x.grad is None
