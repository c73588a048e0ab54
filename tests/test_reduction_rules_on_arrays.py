"""std, prod, max and min's rules on plain arrays: the edge cases the sampled suite keeps away from.

Their rules read values (which elements are zero, which reach the extreme, where the spread is
zero) through ``array_of``, so they run on the first-order fast path and in forward mode on
arrays. The registry's samples avoid zeros and ties; here the fast path meets them and must agree
with the general path bit for bit, and with a slow obvious version of each gradient.
"""

from __future__ import annotations

from itertools import product as cartesian
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops.registry import REGISTRY
from tests.test_engine_paths import _walk_both_ways

# Rows with no zero, one, two and three zeros; a prod over axis 1 meets each case once.
WITH_ZEROS = [[1.5, 2.0, -3.0], [0.0, 2.0, 3.0], [0.0, -2.5, 0.0], [0.0, 0.0, 0.0]]
# Rows with no tie, a tie at the maximum, a tie at the minimum, and all equal (zero spread too).
WITH_TIES = [[1.0, 3.0, 2.0], [3.0, 3.0, 1.0], [1.0, 2.0, 1.0], [2.0, 2.0, 2.0]]


def _slow_prod_grad(rows: np.ndarray) -> np.ndarray:
    """d prod(row)/d x_i: the product of the other elements, one deletion at a time."""
    return np.array([[np.prod(np.delete(row, i)) for i in range(row.size)] for row in rows])


def _slow_extreme_grad(rows: np.ndarray, pick: Any) -> np.ndarray:
    """1/k at each of the k elements of a row that reach its extreme, 0 elsewhere."""
    hits = (rows == pick(rows, axis=1, keepdims=True)).astype(float)
    return hits / hits.sum(axis=1, keepdims=True)


def _slow_std_grad(rows: np.ndarray, ddof: int) -> np.ndarray:
    """(x_i - mean) / ((n - ddof) std), and 0 where the spread is zero."""
    spread = rows.std(axis=1, ddof=ddof, keepdims=True)
    centered = rows - rows.mean(axis=1, keepdims=True)
    safe = np.where(spread == 0, 1.0, spread)
    return np.where(spread == 0, 0.0, centered / ((rows.shape[1] - ddof) * safe))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ["prod", "max", "min", "std"])
def test_fast_and_general_paths_agree_at_zeros_and_ties(name: str, dtype: Any) -> None:
    rows = np.array(WITH_ZEROS if name == "prod" else WITH_TIES)
    x = ab.tensor(rows.astype(dtype), requires_grad=True)
    kwargs = {"ddof": 1} if name == "std" else {}
    out = getattr(ab, name)(x, axis=1, **kwargs)
    grads, fast_nodes = _walk_both_ways(out.sum(), [x])
    assert name in fast_nodes
    assert grads[0].dtype == dtype
    expected = {
        "prod": lambda: _slow_prod_grad(rows),
        "max": lambda: _slow_extreme_grad(rows, np.max),
        "min": lambda: _slow_extreme_grad(rows, np.min),
        "std": lambda: _slow_std_grad(rows, ddof=1),
    }[name]()
    np.testing.assert_allclose(grads[0], expected, rtol=1e-6 if dtype == np.float32 else 1e-12)


def test_prod_over_everything_with_zeros_on_both_paths() -> None:
    # axis=None: one slice; one zero (the others' product) and two zeros (all zero) by turns.
    for values in ([2.0, 0.0, -1.5, 4.0], [0.0, 3.0, 0.0, 2.0]):
        x = ab.tensor(values, requires_grad=True)
        grads, fast_nodes = _walk_both_ways(ab.prod(x) * 3.0, [x])
        assert "prod" in fast_nodes
        np.testing.assert_allclose(grads[0], 3.0 * _slow_prod_grad(np.array([values]))[0], rtol=1e-12)


def _jvp(name: str, x: ab.Tensor, tangent: ab.Tensor, on_arrays: bool, **kwargs: Any) -> np.ndarray:
    opdef = REGISTRY[name]
    kept = opdef.jvp_plain_arrays
    opdef.jvp_plain_arrays = on_arrays  # False: forward mode runs the rules on Tensors
    try:
        _, out_tangent = ab.functional.jvp(lambda v: getattr(ab, name)(v, **kwargs), (x,), (tangent,))
    finally:
        opdef.jvp_plain_arrays = kept
    return out_tangent.data


EDGES = [("prod", WITH_ZEROS), ("max", WITH_TIES), ("min", WITH_TIES), ("std", WITH_TIES)]


@pytest.mark.parametrize(("name", "rows"), EDGES)
@pytest.mark.parametrize(("axis", "keepdims"), list(cartesian([1, None], [False, True])))
def test_forward_mode_on_arrays_agrees_with_forward_mode_on_tensors(
    name: str, rows: list[list[float]], axis: Any, keepdims: bool
) -> None:
    assert REGISTRY[name].jvp_plain_arrays  # forward mode takes the array path for these ops
    x = ab.tensor(rows)
    tangent = ab.tensor(np.linspace(-1.0, 2.0, x.size).reshape(x.shape))
    on_arrays = _jvp(name, x, tangent, True, axis=axis, keepdims=keepdims)
    on_tensors = _jvp(name, x, tangent, False, axis=axis, keepdims=keepdims)
    assert on_arrays.dtype == on_tensors.dtype and on_arrays.shape == on_tensors.shape
    np.testing.assert_array_equal(on_arrays, on_tensors)
    # The tangent is the vjp's partials (the gradient of the output's sum) times the tangent, reduced.
    leaf = ab.tensor(rows, requires_grad=True)
    (partials,) = ab.grad(getattr(ab, name)(leaf, axis=axis, keepdims=keepdims).sum(), [leaf])
    expected = (partials.data * tangent.data).sum(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(on_arrays, expected, rtol=1e-12, atol=1e-15)
