"""The testing kit itself (``autobp.testing``): gradcheck and gradgradcheck must reject wrong
rules, wherever the rule is wrong, and accept right ones; the sample kinds must honour the hints."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

import autobp as ab
from autobp.ops.opdef import OpDef, OpFunction
from autobp.ops.registry import Hints, op
from autobp.testing.sample_parts import draw_array, spread_apart
from autobp.testing.samples import samples_for
from autobp.testing.strategies import arrays, elements_in, shapes


def _power(name: str, exponent: int, scratch_ops: list[str]) -> Any:
    """A scratch op ``x ** exponent`` with no rules yet (each test gives its own, right or wrong)."""
    scratch_ops.append(name)

    @op(name)
    def power(x: Any) -> Any:
        """x ** exponent. Shapes: any -> same."""
        return np.asarray(x) ** exponent

    return power


def _cube(name: str, scratch_ops: list[str]) -> Any:
    return _power(name, 3, scratch_ops)


X = ab.tensor([0.5, -1.0, 2.0], requires_grad=True)


@pytest.mark.parametrize("check", [ab.gradcheck, ab.gradgradcheck])
def test_a_rule_wrong_only_on_the_create_graph_path_fails(scratch_ops: list[str], check: Any) -> None:
    cube = _cube("cube_wrong_on_tensors", scratch_ops)
    # right on plain arrays (the first-order fast path), twice the truth on Tensors (create_graph)
    cube.defvjp(lambda g, out, x: (2 if isinstance(x, ab.Tensor) else 1) * g * 3 * x * x, plain_arrays=True)
    with pytest.raises(ab.GradcheckError, match="create_graph backward"):
        check(cube, X)


def test_gradgradcheck_fails_a_first_derivative_wrong_on_both_paths(scratch_ops: list[str]) -> None:
    cube = _cube("cube_wrong_everywhere", scratch_ops)
    cube.defvjp(lambda g, out, x: 2 * g * 3 * x * x)  # twice the truth: its own derivative agrees with it
    with pytest.raises(ab.GradcheckError, match="analytic"):
        ab.gradgradcheck(cube, X)


def test_a_wrong_jvp_rule_fails_gradcheck_unless_forward_mode_is_off(scratch_ops: list[str]) -> None:
    cube = _cube("cube_wrong_jvp", scratch_ops)
    cube.defvjp(lambda g, out, x: g * 3 * x * x, plain_arrays=True)
    cube.defjvp(lambda t, out, x: -t * 3 * x * x)  # wrong sign
    with pytest.raises(ab.GradcheckError, match=r"forward mode \(jvp\) along input 0"):
        ab.gradcheck(cube, X)
    assert ab.gradcheck(cube, X, check_forward_ad=False)
    assert ab.gradgradcheck(cube, X, check_forward_ad=False)


def test_forward_mode_names_the_input_whose_jvp_rule_is_wrong(scratch_ops: list[str]) -> None:
    scratch_ops.append("mul_wrong_jvp")

    @op("mul_wrong_jvp", arity=2)
    def mul(x: Any, y: Any) -> Any:
        """x * y. Shapes: broadcastable -> broadcast shape."""
        return np.multiply(x, y)

    mul.defvjp(lambda g, out, x, y: g * y, lambda g, out, x, y: g * x)
    mul.defjvp(lambda t, out, x, y: t * y, lambda t, out, x, y: 1.01 * t * x)  # the second is 1% off
    y = ab.tensor([1.5, 0.25, -3.0], requires_grad=True)
    with pytest.raises(ab.GradcheckError, match=r"along input 1, output 0"):
        ab.gradcheck(mul, (X, y))


def test_forward_mode_is_skipped_where_an_op_has_no_jvp_rule(scratch_ops: list[str]) -> None:
    cube = _cube("cube_no_jvp_rule", scratch_ops)
    cube.defvjp(lambda g, out, x: g * 3 * x * x)
    assert ab.gradcheck(lambda t: ab.sin(cube(t)), X)
    assert ab.gradgradcheck(cube, X)


def test_gradgradcheck_fails_a_jvp_rule_that_is_right_but_not_differentiable(scratch_ops: list[str]) -> None:
    # gradgradcheck differentiated the vjp only: a jvp rule with a value held constant
    # (.detach(), or numpy) is right at first order, so gradcheck passes it, and passed
    # gradgradcheck too, while jacfwd(jacfwd(f)) and the reverse derivative of jvp came out 0.
    cube = _cube("cube_jvp_not_differentiable", scratch_ops)
    cube.defvjp(lambda g, out, x: g * 3 * x * x)
    cube.defjvp(lambda t, out, x: t * 3 * x.detach() * x.detach())
    assert ab.gradcheck(cube, X)
    with pytest.raises(ab.GradcheckError, match=r"derivative of fn's jvp"):
        ab.gradgradcheck(cube, X)
    assert not ab.gradgradcheck(cube, X, raise_exception=False)
    assert ab.gradgradcheck(cube, X, check_forward_ad=False)
    # the same rule written differentiably passes
    right = _cube("cube_jvp_differentiable", scratch_ops)
    right.defvjp(lambda g, out, x: g * 3 * x * x)
    right.defjvp(lambda t, out, x: t * 3 * x * x)
    assert ab.gradgradcheck(right, X)
    assert ab.gradgradcheck(lambda a, b: right(a) * b, (X, ab.tensor([1.5, 0.25, -3.0], requires_grad=True)))


def _square(name: str, scratch_ops: list[str]) -> Any:
    return _power(name, 2, scratch_ops)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_rule_wrong_only_in_lower_precision_fails(scratch_ops: list[str], dtype: Any) -> None:
    square = _square(f"square_wrong_in_{np.dtype(dtype).name}", scratch_ops)
    square.defvjp(lambda g, out, x: (1.1 if x.dtype == dtype else 1.0) * g * 2 * x, plain_arrays=True)
    x = ab.tensor(np.array([0.5, -1.0, 2.0], dtype), requires_grad=True)
    with (
        pytest.warns(UserWarning, match="promoted to float64"),
        pytest.raises(ab.GradcheckError, match=np.dtype(dtype).name),
    ):
        ab.gradcheck(square, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_jvp_rule_wrong_only_in_lower_precision_fails(scratch_ops: list[str], dtype: Any) -> None:
    # Forward mode was checked on the float64 copies alone: a jvp rule wrong only in float32
    # passed gradcheck every time.
    square = _square(f"square_jvp_wrong_in_{np.dtype(dtype).name}", scratch_ops)
    square.defvjp(lambda g, out, x: g * 2 * x, plain_arrays=True)
    square.defjvp(lambda t, out, x: (1.5 if x.dtype == dtype else 1.0) * t * 2 * x)
    x = ab.tensor(np.array([0.5, -1.0, 2.0], dtype), requires_grad=True)
    with (
        pytest.warns(UserWarning, match="promoted to float64"),
        pytest.raises(ab.GradcheckError, match=r"forward mode \(jvp\) in the inputs' own dtypes"),
    ):
        ab.gradcheck(square, x)
    with pytest.warns(UserWarning, match="promoted to float64"):
        assert ab.gradcheck(square, x, check_forward_ad=False)  # (the vjp is right)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_a_right_rule_passes_in_lower_precision(dtype: Any) -> None:
    x = ab.tensor(np.array([[0.5, -1.0, 2.0], [0.25, 1.5, -0.75]], dtype), requires_grad=True)
    with pytest.warns(UserWarning, match="promoted to float64"):
        assert ab.gradcheck(lambda t: ab.tanh(t @ t.T).sum(axis=0), x)


def _scale_in_place(g: Any, out: Any, x: Any) -> Any:
    g *= 2  # writes into the incoming gradient: a real backward's is often a read-only view
    return g * x


def _negate_input(g: Any, out: Any, x: Any) -> Any:
    result = g * 2 * x
    x *= -1  # writes into the op's input, which later rules (and the caller) read
    return result


@pytest.mark.parametrize(
    "rule, message",
    [(_scale_in_place, "wrote into a read-only array"), (_negate_input, "input 0 changed during the first-order")],
)
def test_a_rule_that_writes_into_its_arguments_fails(scratch_ops: list[str], rule: Any, message: str) -> None:
    square = _square(f"square_{rule.__name__}", scratch_ops)
    square.defvjp(rule, plain_arrays=True)  # right values: only the writing is wrong
    x = ab.tensor([0.5, -1.0, 2.0], requires_grad=True)
    with pytest.raises(ab.GradcheckError, match=message):
        ab.gradcheck(square, x)
    assert x.data.tolist() == [0.5, -1.0, 2.0]  # gradcheck works on copies


@pytest.mark.parametrize("values", [[1e7, 3e7], [-3e7]])
def test_a_right_gradient_passes_at_large_magnitudes(values: list[float]) -> None:
    # x +- eps rounds at these magnitudes: the difference must be divided by the step taken
    assert ab.gradcheck(lambda t: (t * t).sum(), ab.tensor(values, requires_grad=True))


@pytest.mark.parametrize("values", [[-3e7, 5e6, 2.5e7], [1e8, -1.3e8], [1e12]])
def test_the_step_grows_with_large_values(values: list[float]) -> None:
    # a fixed step of 1e-6 moves f = x^2 by less than f's own rounding at these magnitudes
    assert ab.gradcheck(lambda t: (t * t).sum(), ab.tensor(values, requires_grad=True))
    assert ab.gradcheck(lambda t: ab.sin(t * 1e-7), ab.tensor(values, requires_grad=True))


@pytest.mark.parametrize("shape", [(65,), (9, 9), (100, 100)])
def test_one_wrong_element_of_a_large_input_fails_for_every_seed(scratch_ops: list[str], shape: Any) -> None:
    square = _square(f"square_wrong_at_one_element_{len(shape)}_{shape[0]}", scratch_ops)
    wrong = np.ones(shape)
    wrong.flat[0] = 2.0  # one element's gradient twice the truth

    square.defvjp(lambda g, out, x: 2 * g * x * wrong, plain_arrays=True)
    x = ab.tensor(np.linspace(0.5, 2.0, wrong.size).reshape(shape), requires_grad=True)
    for seed in range(10):
        with pytest.raises(ab.GradcheckError, match="random block"):
            ab.gradcheck(square, x, rng=seed, check_forward_ad=False)
    assert ab.gradcheck(lambda t: (t * t * t).sum(axis=0), x)  # a right gradient passes


@given(st.data())
def test_distinct_samples_keep_away_from_the_avoided_points(data: st.DataObject) -> None:
    hints = Hints(avoid=(0.0, 1.0), distinct=True)
    values = draw_array(data.draw, hints, 0, data.draw(shapes(max_dims=2, max_side=8)))
    assert np.all(np.abs(values - 0.0) >= hints.gap) and np.all(np.abs(values - 1.0) >= hints.gap)
    ordered = np.sort(values.ravel())
    assert np.all(np.diff(ordered) > hints.gap)  # still spread apart


def test_spread_apart_never_puts_a_sample_on_an_avoided_point() -> None:
    # evenly over [-2, 2], three samples put the middle one exactly on 0
    spread = spread_apart(np.array([3.0, 1.0, 2.0]), -2.0, 2.0, avoid=(0.0,), gap=0.01)
    assert np.all(np.abs(spread) >= 0.01) and list(np.argsort(spread)) == [1, 2, 0]


def test_a_lower_precision_output_is_named_in_the_failure(scratch_ops: list[str]) -> None:
    scratch_ops.append("square_in_float32")

    @op("square_in_float32")
    def square(x: Any) -> Any:
        """x^2, computed in float32. Shapes: any -> same."""
        return np.asarray(x, np.float32) ** 2

    square.defvjp(lambda g, out, x: 2 * g * x, plain_arrays=True)  # right: float32 rounding fails it
    with pytest.raises(ab.GradcheckError, match="fn returned float32 output from float64 inputs"):
        ab.gradcheck(square, X)


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@given(data=st.data())
def test_arrays_take_bounds_the_dtype_cannot_represent(dtype: Any, data: st.DataObject) -> None:
    # Bounds are rounded inward (testing.md). Compared in float64: numpy 2 compares a float32 with
    # a Python float in float32, where float32(0.1), above 0.1, is equal to it, and float16(0.1),
    # below 0.1, too; the strategy made that comparison itself and drew outside the range.
    for low, high in ((-0.1, 0.1), (0.1, 0.2)):
        values = data.draw(arrays((3,), dtype, (low, high)))
        wide = values.astype(np.float64)
        assert values.dtype == dtype and np.all(low <= wide) and np.all(wide <= high), (low, high, values)


@pytest.mark.parametrize(("dtype", "low"), [(np.float16, 0.1), (np.float32, 0.7)])
def test_a_lower_bound_the_dtype_rounds_down_is_rounded_up(dtype: Any, low: float) -> None:
    # float16(0.1) and float32(0.7) lie below the bound; hypothesis shrinks toward it, to the least
    # value the strategy allows, which was that one.
    assert float(dtype(low)) < low
    least = find(elements_in(low, 0.9, dtype), lambda _: True)
    assert low <= float(least) and dtype(least) == least


def test_the_where_kind_draws_each_input_from_its_own_domain(scratch_ops: list[str]) -> None:
    scratch_ops.append("where_domains")

    @op("where_domains", arity=3, hints=Hints(shapes="where", domain=((0.0, 1.0), (-2.0, -1.0), (5.0, 6.0))))
    def where_domains(c: Any, x: Any, y: Any) -> Any:
        """np.where. Shapes: all three broadcast together."""
        return np.where(c, x, y)

    @given(samples_for(where_domains.op))
    def check(sample: Any) -> None:
        _, x, y = sample.arrays
        assert np.all((x >= -2.0) & (x <= -1.0)) and np.all((y >= 5.0) & (y <= 6.0))

    check()


@pytest.mark.parametrize("method", ["defvjp", "defvjp_variadic", "defjvp", "defjvp_variadic"])
def test_the_op_function_protocol_declares_the_real_defaults(method: str) -> None:
    declared = inspect.signature(getattr(OpFunction, method)).parameters["plain_arrays"].default
    assert declared == inspect.signature(getattr(OpDef, method)).parameters["plain_arrays"].default is False


def _large_beside_small(x: ab.Tensor, y: ab.Tensor) -> tuple[ab.Tensor, ...]:
    """A product near -1.9e5 of six values beside sines of the same input: the random-program
    fuzzer's case (tests/test_fuzz.py, its outputs and their order) where a right second
    derivative failed gradgradcheck. (``y``, as there, is unused.)"""
    z = ab.matmul(ab.matmul(x, ab.transpose(x)), x) + x
    return ab.sin(x), ab.sin(x), ab.sin(x), ab.sin(x), ab.prod(z)


def test_a_right_rule_beside_large_terms_passes_and_a_wrong_one_still_fails(scratch_ops: list[str]) -> None:
    # The difference quotient of <v, f(x)> resolves nothing finer than the pairing's rounding over
    # the step: with f's terms near 1e5 the derivative by a cotangent beside them (0.1329) came
    # out 0.1327, 0.14% off, and a right rule failed. The tolerance now adds that noise floor.
    x = ab.tensor(np.random.default_rng(0).uniform(-1.5, 1.5, (2, 3)), requires_grad=True)
    y = ab.tensor(0.3, requires_grad=True)
    assert ab.gradgradcheck(_large_beside_small, (x, y))
    # A rule wrong by 1% on another input still fails beside the same large terms: the noise floor
    # there is 2e-4, the error 5e-3.
    square = _square("square_off_by_a_percent", scratch_ops)
    square.defvjp(lambda g, out, t: g * 2.02 * t)
    u = ab.tensor([0.4, -0.7, 1.1], requires_grad=True)
    with pytest.raises(ab.GradcheckError, match=r"input 2 \(shape \(3,\)\).*analytic"):
        ab.gradcheck(lambda t, s, w: (*_large_beside_small(t, s), square(ab.sin(w))), (x, y, u))
