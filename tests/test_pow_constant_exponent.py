"""``x ** c`` with a constant number ``c`` takes a shorter vjp (no x == 0 mask); it must give the
numbers of the general rule, which sees ``c`` as an array, bit for bit, at every order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import autobp as ab

EXPONENTS = [2, 2.0, 3, 1, 0.5, -1.0, -2, 1.5, 0, 0.0, float("nan"), np.float64(2.0)]
VALUES = st.sampled_from([0.0, -0.0, 1.0, -1.0, 2.5, -0.3, 1e-300, float("inf")]) | st.floats(-3, 3)


def _grads(x0: np.ndarray, c: object, order: int) -> list[np.ndarray]:
    x = ab.tensor(x0, requires_grad=True)
    (g,) = ab.grad((x**c).sum(), [x], create_graph=order > 1)
    found = [g.numpy()]
    if order > 1:
        found.append(ab.grad(g.sum(), [x])[0].numpy())
    return found


@pytest.mark.parametrize("c", EXPONENTS, ids=repr)
@given(x0=arrays(np.float64, st.integers(1, 5), elements=VALUES))
def test_a_constant_exponent_gives_the_general_rules_numbers(c: object, x0: np.ndarray) -> None:
    as_array = np.asarray(c, dtype=np.float64)  # the general rule: the exponent is an array
    with np.errstate(all="ignore"):
        for order in (1, 2):
            for fast, general in zip(_grads(x0, c, order), _grads(x0, as_array, order), strict=True):
                np.testing.assert_array_equal(fast, general)


@pytest.mark.parametrize("c", EXPONENTS, ids=repr)
def test_a_constant_exponent_keeps_the_zero_at_zero_convention(c: object) -> None:
    x = ab.tensor([0.0, 2.0], requires_grad=True)
    with np.errstate(all="ignore"):
        (g,) = ab.grad((x**c).sum(), [x])
        expected = np.where(np.asarray(c) == 0, 0.0, np.float64(c) * np.array([0.0, 2.0]) ** (np.float64(c) - 1))
    np.testing.assert_array_equal(g.numpy(), expected)


def test_forward_mode_through_a_constant_exponent_matches_reverse() -> None:
    x0 = np.array([0.0, 0.5, -1.5, 2.0])
    v = np.array([1.0, -2.0, 0.5, 3.0])
    _, tangent = ab.functional.jvp(lambda x: x**3, (ab.tensor(x0),), (ab.tensor(v),))
    np.testing.assert_allclose(tangent.numpy(), 3 * x0**2 * v, rtol=1e-15)
