"""Indexing: what the registry-driven suite cannot state on its own.

Exact accumulation of repeated indices, boolean masks, negative steps, mixed advanced and basic
indices, second order through scatter_add, error messages and dtypes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp.ops.indexing import describe_index
from autobp.testing.strategies import advanced_indices, basic_indices, shapes


def slow_scatter(shape: tuple[int, ...], index: Any, values: np.ndarray) -> np.ndarray:
    """The gradient of ``x[index]``, the obvious way: push a one-hot through numpy indexing per element."""
    total = np.zeros(shape)
    positions = np.arange(int(np.prod(shape))).reshape(shape)[index]  # which element of x each output reads
    for flat, g in zip(np.ravel(positions), np.ravel(values), strict=True):
        total[np.unravel_index(flat, shape)] += g
    return total


def index_grad(shape: tuple[int, ...], index: Any, rng: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(autobp's gradient of <v, x[index]>, the slow one) for a random cotangent v."""
    x = ab.randn(*shape, requires_grad=True, rng=rng)
    out = x[index]
    v = np.random.default_rng(rng + 1).standard_normal(out.shape)
    out.backward(v)
    assert x.grad is not None
    return x.grad.numpy(), slow_scatter(shape, index, v)


def test_repeated_integer_indices_accumulate() -> None:
    x = ab.arange(4.0).requires_grad_()
    y = x[[0, 0, 2, 0]]
    weights = np.array([1.0, 10.0, 100.0, 1000.0])
    (y * ab.tensor(weights)).sum().backward()
    assert x.grad is not None
    # element 0 is read three times: its gradient is the sum of the three weights, exactly.
    assert x.grad.tolist() == [weights[0] + weights[1] + weights[3], 0.0, weights[2], 0.0]


@pytest.mark.parametrize(
    "index",
    [
        ([0, 0, 1], [2, 2, 2]),  # two integer arrays: the same element three times
        (np.array([[1, 1], [0, 1]]),),  # a 2-D integer array
        (slice(None), [3, -1, 3]),  # negative and repeated entries after a slice
        ([1, 1], slice(None, None, -1)),
        (ab.tensor([2, 0, 2]),),  # an integer Tensor as the index
        (Ellipsis, np.array([0, 0, 0])),
    ],
    ids=["two-arrays", "2d-array", "slice-then-array", "array-then-negative-step", "int-tensor", "ellipsis"],
)
def test_integer_array_gradients_match_slow_scatter(index: Any) -> None:
    got, want = index_grad((3, 4), index if len(index) > 1 else index[0])
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize(
    "index",
    [
        (slice(None, None, -1),),
        (slice(3, 0, -2), slice(None, None, -3)),
        (slice(-1, None, -1), 2),
        (None, Ellipsis, slice(None, 1, -1)),
    ],
    ids=["reverse", "strided", "reverse-then-int", "newaxis-ellipsis"],
)
def test_negative_step_slices(index: tuple[Any, ...]) -> None:
    got, want = index_grad((4, 5), index)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert ab.gradgradcheck(lambda t: t[index] ** 2, ab.randn(4, 5, requires_grad=True, rng=3))


def test_boolean_masks_route_gradient_to_selected_elements() -> None:
    data = np.random.default_rng(0).standard_normal((3, 4))
    mask = data > 0
    for index in (mask, ab.tensor(mask), (mask[:, 0], slice(1, None)), (slice(None), mask[0])):
        x = ab.tensor(data, requires_grad=True)
        x[index].sum().backward()
        assert x.grad is not None
        expected = np.zeros((3, 4))
        expected[index if not isinstance(index, ab.Tensor) else mask] = 1.0
        np.testing.assert_array_equal(x.grad.numpy(), expected)
    x = ab.tensor(data, requires_grad=True)
    assert x[mask].shape == (int(mask.sum()),)
    assert ab.gradcheck(lambda t: t[mask] * t[mask], x)


@pytest.mark.parametrize(
    "index",
    [
        ([0, 2], slice(None), [1, 1]),  # advanced axes split by a slice: numpy moves them to the front
        (slice(1, None), [0, 0, 1]),
        (None, [1, 1], Ellipsis, 0),
        (np.array([True, False, True]), slice(None, None, -1), [3, 3]),
    ],
    ids=["split-advanced", "slice-then-array", "newaxis-int", "mask-slice-array"],
)
def test_mixed_advanced_and_basic_indices(index: tuple[Any, ...]) -> None:
    shape = (3, 2, 4)
    data = np.random.default_rng(1).standard_normal(shape)
    assert ab.tensor(data)[index].shape == data[index].shape
    got, want = index_grad(shape, index)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert ab.gradcheck(lambda t: t[index], ab.tensor(data, requires_grad=True))


@given(st.data())
def test_any_index_matches_numpy_and_slow_scatter(data: st.DataObject) -> None:
    shape = data.draw(shapes(), label="shape")
    index = data.draw(st.one_of(basic_indices(shape), advanced_indices(shape)), label="index")
    x = ab.randn(*shape, rng=0)
    np.testing.assert_array_equal(x[index].numpy(), x.numpy()[index])
    got, want = index_grad(shape, index)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_second_order_through_repeated_indices() -> None:
    # f(x) = sum(x[idx]^3): d2f/dx_i2 = 6 x_i * (times element i was picked)
    idx = [1, 1, 0, 1]
    x = ab.tensor([0.5, -1.5, 2.0], requires_grad=True)
    (g,) = ab.grad((x[idx] ** 3).sum(), [x], create_graph=True)
    (h,) = ab.grad(g.sum(), [x])
    counts = np.bincount(idx, minlength=3)
    np.testing.assert_allclose(h.numpy(), 6 * x.numpy() * counts)
    assert ab.gradgradcheck(lambda t: (t[idx] ** 3).sum(), x)


def test_scatter_add_accumulates_and_is_the_adjoint_of_getitem() -> None:
    values = ab.tensor([1.0, 2.0, 4.0], requires_grad=True)
    out = ab.scatter_add(values, [2, 0, 2], (3,))
    assert out.tolist() == [2.0, 0.0, 1.0 + 4.0]
    # <scatter_add(v), w> == <v, w[index]>: the two ops are adjoint.
    w = np.random.default_rng(2).standard_normal(3)
    np.testing.assert_allclose(np.dot(out.numpy(), w), np.dot(values.numpy(), w[[2, 0, 2]]))
    assert ab.gradcheck(lambda v: ab.scatter_add(v, [2, 0, 2], (3,)), values)
    assert ab.gradgradcheck(lambda v: ab.scatter_add(v * v, (slice(None, None, -1),), (3,)), values)


def test_scatter_add_broadcasts_values() -> None:
    row = ab.tensor([1.0, 2.0], requires_grad=True)
    out = ab.scatter_add(row, ([0, 0, 1],), (2, 2))
    np.testing.assert_array_equal(out.numpy(), [[2.0, 4.0], [1.0, 2.0]])
    assert ab.gradcheck(lambda r: ab.scatter_add(r, ([0, 0, 1],), (2, 2)), row)


def test_iteration_and_scalar_indexing_give_tensors_with_gradients() -> None:
    x = ab.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    rows = list(x)
    assert [r.shape for r in rows] == [(2,), (2,)]
    (rows[0][1] * rows[1][0]).backward()
    assert x.grad is not None
    assert x.grad.tolist() == [[0.0, x.data[1, 0]], [x.data[0, 1], 0.0]]


def test_first_order_backward_records_no_graph() -> None:
    x = ab.randn(3, 4, requires_grad=True, rng=0)
    x[[0, 0], 1:].sum().backward()
    assert x.grad is not None and x.grad.grad_fn is None and not x.grad.requires_grad


@pytest.mark.parametrize(
    ("index", "pieces"),
    [
        (5, ["getitem", "[5]", "(3, 4)", "out of bounds"]),
        ((0, [1, 9]), ["getitem", "int64 array [1, 9]", "(3, 4)"]),
        ((0, 0, 0), ["getitem", "[0, 0, 0]", "(3, 4)", "too many indices"]),
        (np.array([True, False]), ["getitem", "bool array [ True, False]", "(3, 4)"]),
    ],
    ids=["int", "array", "too-many", "mask-shape"],
)
def test_out_of_range_errors_name_op_index_and_shape(index: Any, pieces: list[str]) -> None:
    x = ab.zeros(3, 4)
    with pytest.raises(IndexError) as info:
        x[index]
    for piece in pieces:
        assert piece in str(info.value)


def test_non_integer_index_error_names_op() -> None:
    with pytest.raises(IndexError, match=r"getitem: index \[float64 array \[0\.5\]\] does not fit shape \(3,\)"):
        ab.zeros(3)[np.array([0.5])]


def test_scatter_add_error_names_op_and_shape() -> None:
    with pytest.raises(IndexError, match=r"scatter_add: index \[int64 array \[4\]\] does not fit shape \(2,\)"):
        ab.scatter_add(ab.ones(1), [4], (2,))


def test_describe_index_is_short_and_readable() -> None:
    assert describe_index((slice(1, None, -1), Ellipsis, None, 2)) == "[1::-1, ..., None, 2]"
    assert describe_index(slice(None, 3)) == "[:3]"
    assert "..." in describe_index(np.arange(100))  # long arrays are summarized


@pytest.mark.parametrize("index", [[2, 2, 0], slice(None, None, -2), np.array([True, False, True, True])])
def test_float32_stays_float32(index: Any) -> None:
    x = ab.tensor(np.arange(4.0), dtype=np.float32, requires_grad=True)
    y = x[index]
    assert y.dtype == np.float32
    (y * y).sum().backward()
    assert x.grad is not None and x.grad.dtype == np.float32
    (g,) = ab.grad((x[index] ** 2).sum(), [x], create_graph=True)
    assert g.dtype == np.float32
    (h,) = ab.grad(g.sum(), [x])
    assert h.dtype == np.float32
