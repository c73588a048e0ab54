"""``pow``'s derivatives of every order at x = 0: finite wherever the true derivative is.

The rules mask x = 0 (d/dx at x = y = 0, d/dy at x = 0 with y >= 0). Masking only the rule's
result left inf in the branch not taken (``0 ** -1``, ``log(0)``), and the next derivative
multiplied its zero cotangent by it: nan. Checked here against hand-written oracles (falling
factorials, the closed-form Hessian), and against PyTorch where it is installed.
"""

from __future__ import annotations

import importlib.util
import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.functional import hvp, jvp
from tests.conftest import Library
from tests.test_engine_paths import _counting_fast_nodes, _general_path_only

EXPONENTS = [0, 0.0, 1, 1.0, 2, 2.0, 3, 0.5, 2.5, -1, -2]
BASES = [0.0, -0.0, -2.0, -0.5, 1.5]
# The exponent as the rules meet it: a Python number (the constant fast path), an array, a Tensor
# that requires grad (the general rules, on Tensors from the first order on).
KINDS: dict[str, Callable[[Any], Any]] = {
    "number": lambda c: c,
    "array": lambda c: np.asarray(c, dtype=np.float64),
    "tensor": lambda c: ab.tensor(float(c), requires_grad=True),
}
STRATEGIES = ["forward-over-reverse", "reverse-over-forward"]
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")


def _x_derivatives(x0: float, exponent: Any, orders: int = 3) -> list[float]:
    """d^k/dx^k x ** exponent at x0 for k = 1..orders, each the derivative of the one before."""
    x = ab.tensor(x0, requires_grad=True)
    found, f = [], x**exponent
    for _ in range(orders):
        if not f.requires_grad:  # a constant derivative (x ** 2 -> 2): the next ones are 0
            found.append(0.0)
            continue
        (f,) = ab.grad(f, [x], create_graph=True)
        found.append(float(f.numpy()))
    return found


def _falling_factorial_oracle(x0: float, c: float, k: int) -> float:
    """d^k/dx^k x^c = c (c-1) ... (c-k+1) x^(c-k), and 0 where that coefficient is 0."""
    coefficient = math.prod(c - i for i in range(k))
    if coefficient == 0:
        return 0.0
    with np.errstate(all="ignore"):
        return float(coefficient * np.float64(x0) ** np.float64(c - k))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("c", EXPONENTS, ids=repr)
@pytest.mark.parametrize("x0", BASES, ids=repr)
def test_x_derivatives_of_every_order_match_the_falling_factorial(x0: float, c: Any, kind: str) -> None:
    with np.errstate(all="ignore"):  # (0 * inf in the rules at x = 0 with a negative exponent)
        found = _x_derivatives(x0, KINDS[kind](c))
    expected = [_falling_factorial_oracle(x0, float(c), k) for k in (1, 2, 3)]
    np.testing.assert_allclose(found, expected, rtol=1e-14, atol=0)  # equal infinities, equal nans


def test_the_reported_cases_are_zero_not_nan() -> None:
    x = ab.tensor(0.0, requires_grad=True)
    (g,) = ab.grad(x**0.0, [x], create_graph=True)
    assert ab.grad(g, [x])[0].item() == 0.0
    for c in (1, 1.0):
        (g,) = ab.grad(x**c, [x], create_graph=True)
        (g2,) = ab.grad(g, [x], create_graph=True)
        assert (g.item(), g2.item(), ab.grad(g2, [x])[0].item()) == (1.0, 0.0, 0.0)


# x = 0, where f(0, y) = 0 for every y > 0: a partial derivative taking j times d/dx and at least
# once d/dy is lim x^(y-j) (a polynomial in log x) = 0 when y > j; with y <= j it is infinite or
# undefined (not checked: the rules give 0 there, the value of the mask they differentiate).
ZERO_AT_ZERO = [
    (y, "".join(order))
    for y in (0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
    for n in (1, 2, 3)
    for order in itertools.product("xy", repeat=n)
    if "y" in order and order.count("x") < y
]


def _partial(x0: float, y0: float, order: str) -> float:
    """The partial derivative of x ** y at (x0, y0), differentiating by the letters of ``order``."""
    x, y = ab.tensor(x0, requires_grad=True), ab.tensor(y0, requires_grad=True)
    f = x**y
    for letter in order:
        (f,) = ab.grad(f, [x if letter == "x" else y], create_graph=True)
    return float(f.numpy())


@pytest.mark.parametrize(("y0", "order"), ZERO_AT_ZERO, ids=str)
def test_derivatives_through_the_exponent_at_zero_are_zero(y0: float, order: str) -> None:
    assert _partial(0.0, y0, order) == 0.0


def test_d_dy_at_zero_keeps_its_conventions() -> None:
    x, y = ab.tensor([0.0, 0.0, 0.0, 2.0], requires_grad=True), ab.tensor([0.0, 2.0, -1.0, 3.0], requires_grad=True)
    with np.errstate(all="ignore"):
        (dy,) = ab.grad(ab.pow(x, y).sum(), [y])
    # 0 at x = 0 with y >= 0 (PyTorch's convention), 0 ** -1 * log 0 = -inf, 2^3 log 2.
    np.testing.assert_array_equal(dy.numpy(), [0.0, 0.0, -np.inf, 8 * np.log(2.0)])


def _hessian_times(a: np.ndarray, b: np.ndarray, va: np.ndarray, vb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H v for sum(a ** b), a >= 0, b >= 2, in closed form; at a = 0 the limits (a^k log^m a -> 0)."""
    with np.errstate(all="ignore"):
        log = np.where(a > 0, np.log(np.where(a > 0, a, 1.0)), 0.0)
        haa = b * (b - 1) * a ** (b - 2)
        hab = a ** (b - 1) * (1 + b * log)
        hbb = a**b * log**2
    return haa * va + hab * vb, hab * va + hbb * vb


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_hvp_of_pow_in_base_and_exponent_matches_the_closed_form(strategy: str) -> None:
    a, b = np.meshgrid([0.0, 0.5, 1.5, 2.0], [2.0, 2.5, 3.0, 4.0])
    a, b = a.ravel(), b.ravel()
    va, vb = np.linspace(-1.0, 1.5, a.size), np.linspace(0.5, -2.0, a.size)
    _, (ha, hb) = hvp(
        lambda s, t: ab.pow(s, t).sum(), (ab.tensor(a), ab.tensor(b)), (ab.tensor(va), ab.tensor(vb)), strategy=strategy
    )
    want_a, want_b = _hessian_times(a, b, va, vb)
    np.testing.assert_allclose(ha.numpy(), want_a, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(hb.numpy(), want_b, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_reported_hvps_are_finite(strategy: str) -> None:
    ones = ab.ones(2)
    _, found = hvp(lambda t: (t**0.0 * t).sum(), ab.tensor([0.0, 1.0]), ones, strategy=strategy)
    np.testing.assert_array_equal(found.numpy(), [0.0, 0.0])
    _, found = hvp(lambda t: (t**0).sum(), ab.tensor([0.0, 1.0]), ones, strategy=strategy)
    np.testing.assert_array_equal(found.numpy(), [0.0, 0.0])
    _, (ha, hb) = hvp(
        lambda s, t: ab.pow(s, t).sum(), (ab.tensor([0.0, 1.0]), ab.tensor([2.0, 2.0])), (ones, ones), strategy=strategy
    )
    np.testing.assert_array_equal(ha.numpy(), [2.0, 3.0])  # PyTorch's torch.func.hessian too
    np.testing.assert_array_equal(hb.numpy(), [0.0, 1.0])


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("c", [0, 0.0, 1, 1.0, 2, 3, 4], ids=repr)
def test_hvp_of_a_constant_exponent_at_zero_and_negative_bases(strategy: str, c: Any) -> None:
    x0, v = np.array([0.0, -0.0, -2.0, -0.5, 1.5]), np.array([1.0, -2.0, 0.5, 3.0, -1.0])
    _, found = hvp(lambda t: (t**c).sum(), ab.tensor(x0), ab.tensor(v), strategy=strategy)
    expected = [_falling_factorial_oracle(x, c, 2) * w for x, w in zip(x0, v, strict=True)]
    np.testing.assert_allclose(found.numpy(), expected, rtol=1e-14)


@pytest.mark.parametrize("c", [0, 0.0, 1, 1.0, 2, 3], ids=repr)
def test_forward_mode_of_every_order_at_zero(c: Any) -> None:
    x0, v = np.array([0.0, -2.0, 1.5]), np.array([1.0, 1.0, 1.0])

    def tangent(f: Callable[[ab.Tensor], ab.Tensor]) -> Callable[[ab.Tensor], ab.Tensor]:
        return lambda x: jvp(f, (x,), (ab.tensor(v),), create_graph=True)[1]

    first = tangent(lambda x: x**c)
    for k, f in enumerate([first, tangent(first), tangent(tangent(first))], start=1):
        expected = [_falling_factorial_oracle(x, c, k) for x in x0]
        np.testing.assert_allclose(f(ab.tensor(x0)).numpy(), expected, rtol=1e-14)


def test_first_order_rules_on_plain_arrays_equal_the_general_path(library: Library) -> None:
    x0 = np.array([0.0, 0.0, 0.0, 0.0, -2.0, 1.5, 0.0])
    y0 = np.array([0.0, 1.0, 2.0, 0.5, 3.0, 0.0, 3.0])

    def grads(general: bool) -> list[np.ndarray]:
        x, y = library.tensor(x0, requires_grad=True), library.tensor(y0, requires_grad=True)
        weights = library.tensor(np.linspace(0.5, 1.5, x0.size))
        loss = (ab.pow(x, y) * weights).sum()
        with _general_path_only() if general else _counting_fast_nodes(loss) as fast_nodes:
            found = ab.grad(loss, [x, y])
        assert general or "pow" in fast_nodes
        return [library.host(g) for g in found]

    fast = grads(general=False)
    for a, b in zip(fast, grads(general=True), strict=True):
        np.testing.assert_array_equal(a, b)
    w = np.linspace(0.5, 1.5, x0.size)
    np.testing.assert_allclose(fast[0], w * [0.0, 1.0, 0.0, np.inf, 12.0, 0.0, 0.0], rtol=1e-12)
    np.testing.assert_allclose(fast[1], w * [0.0, 0.0, 0.0, 0.0, np.nan, np.log(1.5), 0.0], rtol=1e-12)


def test_second_order_at_zero_on_the_library(library: Library) -> None:
    x = library.tensor(np.zeros(4), requires_grad=True)
    y = library.tensor(np.array([0.0, 1.0, 2.0, 3.0]), requires_grad=True)
    (gx,) = ab.grad(ab.pow(x, y).sum(), [x], create_graph=True)
    gxx, gxy = ab.grad(gx.sum(), [x, y])
    np.testing.assert_array_equal(library.host(gxx), [0.0, 0.0, 2.0, 0.0])
    np.testing.assert_array_equal(library.host(gxy), [0.0, 1.0, 0.0, 0.0])  # d/dy (y x^(y-1)), as PyTorch


# -- PyTorch as the oracle ----------------------------------------------------------------------
def _torch_x_derivatives(x0: float, c: Any) -> list[float]:
    """PyTorch with a Python-number exponent, whose pow(Tensor, Scalar) rules give 0 for a zero
    coefficient at every order (its Tensor-exponent rules give nan at x = 0, as autobp did)."""
    import torch

    x = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    found, f = [], x**c
    for _ in range(3):
        if not f.requires_grad:
            found.append(0.0)
            continue
        (f,) = torch.autograd.grad(f, x, create_graph=True)
        found.append(f.item())
    return found


def _assert_like_torch(found: list[float], want: list[float]) -> None:
    """Equal where PyTorch is finite; where it gives inf or nan, not finite either (not matched:
    the sign of inf at x = -0.0 differs with non-integer exponents, nan where autobp gives inf)."""
    for a, b in zip(found, want, strict=True):
        if math.isfinite(b):
            assert a == pytest.approx(b, rel=1e-14, abs=0), (found, want)
        else:
            assert not math.isfinite(a), (found, want)


@needs_torch
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("c", EXPONENTS, ids=repr)
@pytest.mark.parametrize("x0", BASES, ids=repr)
def test_x_derivatives_match_torch(x0: float, c: Any, kind: str) -> None:
    with np.errstate(all="ignore"):
        found = _x_derivatives(x0, KINDS[kind](c))
    _assert_like_torch(found, _torch_x_derivatives(x0, c))


@needs_torch
@pytest.mark.parametrize("order", ["".join(o) for n in (1, 2, 3) for o in itertools.product("xy", repeat=n)])
@pytest.mark.parametrize("y0", [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
def test_partials_at_zero_match_torch_where_it_is_finite(y0: float, order: str) -> None:
    import torch

    x, y = (torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in (0.0, y0))
    f = x**y
    for letter in order:
        (f,) = torch.autograd.grad(f, x if letter == "x" else y, create_graph=True)
    want = f.item()
    if math.isfinite(want):  # (where PyTorch's own Tensor-exponent rules give nan, ZERO_AT_ZERO checks)
        assert _partial(0.0, y0, order) == want


# -- bases where x ** -1 overflows --------------------------------------------------------------
# A subnormal base (and, in float16, one below 1.5e-5): 1 / x is inf although x is not 0, so the
# zero coefficient of d/dx x ** 0 met inf (0 * inf = nan). The mask covers every base whose x ** -1
# overflows, in each float dtype.
TINY = [(np.float64, 1e-310), (np.float32, 1e-39), (np.float16, 1e-5)]


def _grad_of(f: ab.Tensor, wrt: ab.Tensor) -> ab.Tensor:
    (g,) = ab.grad(f.sum(), [wrt], create_graph=True)
    return g


@pytest.mark.parametrize(("dtype", "tiny"), TINY, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_a_zero_coefficient_is_zero_where_x_to_the_minus_one_overflows(dtype: Any, tiny: float) -> None:
    x0 = np.array([tiny, -tiny, 0.0, 0.5], dtype)
    zeros = np.zeros(4)
    for exponent in (0, 0.0, np.zeros((), dtype), ab.tensor(np.zeros(4, dtype), requires_grad=True)):
        x = ab.tensor(x0, requires_grad=True)
        first = _grad_of(x**exponent, x)
        np.testing.assert_array_equal(first.numpy(), zeros)  # d/dx x ** 0
        np.testing.assert_array_equal(_grad_of(first, x).numpy(), zeros)  # d2/dx2 x ** 0
    for exponent in (1, 1.0, ab.tensor(np.ones(4, dtype), requires_grad=True)):
        x = ab.tensor(x0, requires_grad=True)
        first = _grad_of(x**exponent, x)
        np.testing.assert_array_equal(first.numpy(), np.ones(4))
        second = _grad_of(first, x)
        np.testing.assert_array_equal(second.numpy(), zeros)  # d2/dx2 x ** 1
        if second.requires_grad:
            np.testing.assert_array_equal(_grad_of(second, x).numpy(), zeros)  # d3/dx3 x ** 1


@pytest.mark.parametrize(("dtype", "tiny"), TINY, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_mixed_partials_and_the_jvp_at_an_overflowing_base_are_not_nan(dtype: Any, tiny: float) -> None:
    x0, y0 = np.array([tiny, tiny, 0.5], dtype), np.array([0.0, 1.0, 0.0], dtype)
    x, y = ab.tensor(x0, requires_grad=True), ab.tensor(y0, requires_grad=True)
    (dx,) = ab.grad(ab.pow(x, y).sum(), [x], create_graph=True)
    (dxy,) = ab.grad(dx.sum(), [y])
    # d/dy (y x^(y-1)) = x^(y-1) (1 + y log x): infinite at (tiny, 0), where the masked branch gives
    # 0 (the convention at x = 0); 1 + log(tiny) at (tiny, 1); 1 / 0.5 at (0.5, 0).
    with np.errstate(all="ignore"):
        expected = [0.0, 1.0 + np.log(x0[1]), 2.0]
    np.testing.assert_allclose(dxy.numpy(), expected, rtol=1e-3)
    # The jvp along y alone: the x partial times a zero tangent is 0, not 0 * nan; x^y log x remains.
    _, tangent = jvp(ab.pow, (ab.tensor(x0), ab.tensor(y0)), (ab.zeros(3, dtype=dtype), ab.ones(3, dtype=dtype)))
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(tangent.numpy(), x0**y0 * np.log(x0), rtol=1e-3)


@needs_torch
@pytest.mark.parametrize(("dtype", "tiny"), TINY, ids=lambda v: getattr(v, "__name__", repr(v)))
def test_the_reported_overflowing_bases_match_torch(dtype: Any, tiny: float) -> None:
    import torch

    x0 = np.array([tiny, 0.0], dtype)
    x, xt = ab.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    np.testing.assert_array_equal(
        ab.grad((x**0.0).sum(), [x])[0].numpy(), torch.autograd.grad((xt**0.0).sum(), [xt])[0].numpy()
    )
    (g,) = ab.grad((x**1).sum(), [x], create_graph=True)
    (gt,) = torch.autograd.grad((xt**1).sum(), [xt], create_graph=True)
    np.testing.assert_array_equal(ab.grad(g.sum(), [x])[0].numpy(), torch.autograd.grad(gt.sum(), [xt])[0].numpy())


@pytest.mark.parametrize("exponent", [0, 0.0, np.zeros(()), ab.zeros(())], ids=["0", "0.0", "array", "tensor"])
def test_a_constant_zero_exponent_gives_zeros_whatever_the_cotangent(exponent: Any) -> None:
    # x ** 0 is 1 everywhere (inf ** 0 and nan ** 0 too): its derivative is 0, not grad * 0, which
    # is nan where the cotangent or tangent is inf or nan. PyTorch returns zeros there (for a
    # Python number, and for a Tensor exponent at 0 too).
    x0 = np.array([np.inf, 1.0, np.nan, 0.0, -2.0])
    x = ab.tensor(x0, requires_grad=True)
    cotangent = ab.tensor([np.inf, -np.inf, np.nan, np.inf, 1.0])
    (g,) = ab.grad(x**exponent, [x], grad_outputs=[cotangent])
    np.testing.assert_array_equal(g.numpy(), np.zeros(5))
    _, tangent = jvp(lambda t: t**exponent, ab.tensor(x0), cotangent)
    np.testing.assert_array_equal(tangent.numpy(), np.zeros(5))
    # The report: f = (x ** 0).sum() * x.sum() = 2 (x0 + x1) has gradient [2, 2] at [inf, 1] (was nan)
    x = ab.tensor([np.inf, 1.0], requires_grad=True)
    (g,) = ab.grad((x**exponent).sum() * x.sum(), [x])
    np.testing.assert_array_equal(g.numpy(), [2.0, 2.0])


@pytest.mark.parametrize(("dtype", "x0"), [(np.float64, 1e-300), (np.float16, 0.003), (np.float64, np.nan)], ids=repr)
def test_constant_exponents_are_zero_one_order_up_where_x_to_the_minus_two_overflows(dtype: Any, x0: float) -> None:
    # d2/dx2 x ** 0.0 and d3/dx3 x ** 1 were nan there (the zero coefficient met x ** -2 = inf),
    # and d2/dx2 x ** 1 at nan; PyTorch's Python-number rules give 0.
    for exponent, orders in ((0.0, 2), (0, 2), (np.zeros((), dtype), 2), (1, 3), (1.0, 3), (np.ones((), dtype), 3)):
        x = ab.tensor(np.array([x0], dtype), requires_grad=True)
        f = x**exponent
        for _ in range(orders):
            f = _grad_of(f, x)
        np.testing.assert_array_equal(f.numpy(), [0.0])
        assert f.dtype == dtype


@pytest.mark.parametrize(("x", "y"), [(1.0, -0.0), (-2.0, 0.0), (3.0, 0.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_gradient_at_a_zero_exponent_is_plus_zero_on_both_paths(x: float, y: float, dtype: Any) -> None:
    # With create_graph the branch at y = 0 is kept for its derivative through y, and its value,
    # 0 * x^-1 with the signs of x and y, was -0.0 where the first-order path (masked, as
    # PyTorch) gives +0.0 (found by the ci profile: x = 1, y = -0.0 in float32).
    found = []
    for create_graph in (False, True):
        xt, yt = ab.tensor(dtype(x), requires_grad=True), ab.tensor(dtype(y), requires_grad=True)
        gx, _ = ab.grad(xt**yt, [xt, yt], create_graph=create_graph)
        found.append(gx.numpy())
    for g in found:
        assert g.dtype == dtype and g == 0 and not np.signbit(g)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_the_exponents_gradient_takes_the_log_in_the_results_precision(dtype: Any) -> None:
    # A float16 base under a float64 exponent: the forward is float64 (numpy's promotion), but
    # log(base) was taken in float16, giving the exponent's gradient float16's error (2.3e-4).
    base = np.array([2.5, 1.5], dtype)
    y = ab.tensor([1.25, 0.5], requires_grad=True)
    exact = (base.astype(np.float64) ** y.data) * np.log(base.astype(np.float64))
    (g,) = ab.grad((ab.tensor(base) ** y).sum(), [y])
    assert g.dtype == np.float64
    np.testing.assert_allclose(g.data, exact, rtol=1e-14)
    _, tangent = ab.functional.jvp(lambda e: ab.tensor(base) ** e, ab.tensor(y.data), ab.ones_like(y))
    np.testing.assert_allclose(tangent.data, exact, rtol=1e-14)
    (scalar_base,) = ab.grad((dtype(0.1) ** y).sum(), [y])  # (a numpy scalar base, too)
    wide = np.float64(dtype(0.1))  # (the base's value, as float64 computes with it)
    np.testing.assert_allclose(scalar_base.data, wide**y.data * np.log(wide), rtol=1e-14)
