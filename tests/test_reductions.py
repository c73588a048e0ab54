"""Reductions: what the registry-driven suite cannot draw (ties, zeros, extreme magnitudes, float16, edges)."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops.shape import kept_shape, normalize_axes
from tests.conftest import library_or_skip

LIBRARIES = ["numpy", "torch", "array_api_strict", "cupy"]
LOW_PRECISION_LIBRARIES = ["numpy", "torch", "cupy"]  # (array-api-strict has no float16)


def grad_of(fn: Any, values: Any, dtype: Any = np.float64) -> np.ndarray:
    x = ab.tensor(values, dtype=dtype, requires_grad=True)
    fn(x).sum().backward()
    assert x.grad is not None
    return x.grad.numpy()


# -- max / min: ties share the gradient ------------------------------------------------------------------
@pytest.mark.parametrize("name", ["max", "min"])
def test_tied_extremes_split_the_gradient_equally(name: str) -> None:
    values = np.array([[1.0, 3.0, 3.0, 3.0], [2.0, 2.0, 0.0, 5.0]])
    values = values if name == "max" else -values
    g = grad_of(lambda x: getattr(ab, name)(x, axis=1), values)
    assert g.sum(axis=1) == pytest.approx([1.0, 1.0])  # mass sums to one per output
    assert g[0].tolist() == pytest.approx([0.0, 1 / 3, 1 / 3, 1 / 3])
    assert g[1].tolist() == pytest.approx([0.0, 0.0, 0.0, 1.0])


@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("axis", [None, 1, (0, 1), -1], ids=repr)
def test_a_nan_extreme_sends_its_gradient_to_the_nans_over_any_axes(name: str, axis: Any) -> None:
    # max and min propagate nan; the nan equals no element, so the gradient was 0 / 0 = nan over
    # the whole slice. The nans that made the extreme share its gradient instead (torch.max(x)
    # does so; torch.amax(x, dim) still gives nan), over all axes as over one.
    values = np.array([[np.nan, 1.0, 2.0, np.nan], [3.0, 1.0, 2.0, 0.5]])
    g = grad_of(lambda x: getattr(ab, name)(x, axis=axis, keepdims=True), values)
    rows = [[0.5, 0.0, 0.0, 0.5], [1.0, 0.0, 0.0, 0.0] if name == "max" else [0.0, 0.0, 0.0, 1.0]]
    if axis in (None, (0, 1)):
        rows[1] = [0.0] * 4  # (one extreme for the whole array: the nans of the first row)
    np.testing.assert_array_equal(g, rows)
    _, tangent = ab.functional.jvp(
        lambda x: getattr(ab, name)(x, axis=axis), (ab.tensor(values),), (ab.tensor(np.arange(8.0).reshape(2, 4)),)
    )
    np.testing.assert_array_equal(np.ravel(tangent.numpy())[0], 1.5)  # (0 + 3) / 2, not nan


def test_a_nan_extreme_matches_torch_max_of_all() -> None:
    torch = pytest.importorskip("torch")
    values = np.array([np.nan, 1.0, 2.0, np.nan, 5.0])
    for name in ("max", "min"):
        t = torch.tensor(values, requires_grad=True)
        (want,) = torch.autograd.grad(getattr(torch, name)(t), [t])
        np.testing.assert_array_equal(grad_of(getattr(ab, name), values), want.numpy())


def test_max_over_all_ties_and_the_method() -> None:
    g = grad_of(lambda x: x.max(), np.full((2, 3), 7.0))
    assert np.allclose(g, 1 / 6)
    x = ab.tensor([[1.0, 4.0], [4.0, 2.0]], requires_grad=True)
    x.max(axis=(0, 1), keepdims=True).backward(np.ones((1, 1)))
    assert x.grad is not None and x.grad.tolist() == [[0.0, 0.5], [0.5, 0.0]]


@pytest.mark.parametrize("lib", LOW_PRECISION_LIBRARIES)
@pytest.mark.parametrize(("shape", "axis"), [((100000,), None), ((3000, 2), 0)])
def test_float16_ties_are_counted_in_float32(lib: str, shape: tuple[int, ...], axis: Any) -> None:
    # A float16 count stalls at 2048 (2048 + 1 is 2048) and is inf past 65504: 3000 tied elements
    # got 1/2048 each (a mass of 1.46), 100000 got 0. PyTorch shares 1/k here too.
    xp = library_or_skip(lib)
    count = shape[0]
    for name in ("max", "min"):
        x = ab.Tensor(xp.from_numpy(np.full(shape, 1.5, np.float16), None), requires_grad=True)
        for create_graph in (False, True):
            (g,) = ab.grad(getattr(ab, name)(x, axis=axis).sum(), [x], create_graph=create_graph)
            assert ab.backends.namespace(g.data).dtype_name(g.dtype) == "float16"
            np.testing.assert_allclose(g.detach().numpy(), np.float16(1 / count), rtol=1e-3)  # (1e-5: subnormal)


@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin"])
def test_extremes_match_numpy_with_negative_axes(name: str) -> None:
    data = np.random.default_rng(0).standard_normal((2, 3, 4))
    got = getattr(ab, name)(ab.tensor(data), axis=-2, keepdims=True)
    assert np.array_equal(got.numpy(), getattr(np, name)(data, axis=-2, keepdims=True))


def test_argmax_has_no_gradient_and_rejects_tuple_axes() -> None:
    x = ab.tensor([[1.0, 5.0], [7.0, 2.0]], requires_grad=True)
    index = x.argmax(axis=1)
    assert index.tolist() == [1, 0] and not index.requires_grad and index.dtype.kind == "i"
    assert x.argmin().item() == 0
    with pytest.raises(TypeError, match=r"argmax: axis must be an int or None"):
        ab.argmax(x, axis=(0, 1))


# -- axes given as index objects ---------------------------------------------------------------------
AXIS_TAKERS = {
    "sum": lambda x, axis: ab.sum(x, axis=axis),
    "max": lambda x, axis: ab.max(x, axis=axis, keepdims=True),
    "var": lambda x, axis: ab.var(x, axis=axis),
    "logsumexp": lambda x, axis: ab.logsumexp(x, axis=axis),
    "concatenate": lambda x, axis: ab.concatenate([x, x * 2.0], axis=axis),
    "stack": lambda x, axis: ab.stack([x, x * 2.0], axis=axis),
    "expand_dims": lambda x, axis: ab.expand_dims(x, axis),
    "squeeze": lambda x, axis: ab.squeeze(ab.expand_dims(x, 1), axis),
}


@pytest.mark.parametrize("name", sorted(AXIS_TAKERS))
def test_an_axis_may_be_any_index_as_numpy_takes_it(name: str) -> None:
    # A 0-d integer array or a one-element integer Tensor is an axis in numpy (its __index__);
    # `sum(x, axis=np.array(1))` failed ("iteration over a 0-d array").
    data = np.array([[1.0, -2.0, 0.5], [0.25, 3.0, -1.0]])
    results = []
    axes: list[Any] = [1, np.int64(1), np.array(1), ab.tensor(1), ab.tensor([1])]
    if name not in ("concatenate", "stack"):  # (these take one axis, as numpy's do)
        axes += [(np.array(1),), [ab.tensor(1)]]
    for axis in axes:
        x = ab.tensor(data, requires_grad=True)
        out = AXIS_TAKERS[name](x, axis)
        (out * out).sum().backward()
        assert x.grad is not None
        results.append((out.tolist(), x.grad.tolist()))
    assert all([r == results[0] for r in results])
    with pytest.raises(TypeError, match=f"^{name}: .*(integer|iteration|float)"):
        AXIS_TAKERS[name](ab.tensor(data), 1.0)


@pytest.mark.parametrize("name", ["sum", "mean", "var", "std", "prod", "logsumexp", "max", "min", "argmax", "argmin"])
def test_a_bool_axis_is_refused_as_numpy_refuses_it(name: str) -> None:
    # `ab.mean(x, True)` (keepdims meant) reduced axis 1, True taken as the index 1: numpy's and
    # PyTorch's reductions raise TypeError. numpy's expand_dims, swapaxes and split take it as 1.
    x = ab.tensor([[1.0, 2.0, 4.0], [3.0, 5.0, 9.0]])
    for axis in [True, np.True_] + ([] if name.startswith("arg") else [(0, True), (np.False_,)]):
        with pytest.raises(TypeError, match=f"^{name}: axis must be an integer, got"):
            getattr(ab, name)(x, axis)
    assert ab.expand_dims(x, True).shape == np.expand_dims(np.ones((2, 3)), True).shape == (2, 1, 3)
    assert ab.swapaxes(x, True, 0).shape == (3, 2)
    with pytest.raises(TypeError, match=r"^squeeze: axis must be an integer"):
        ab.squeeze(ab.ones((2, 1)), True)  # (numpy's squeeze refuses it too)


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize("name", ["max", "min", "argmax", "argmin"])
def test_extremes_of_bools_are_numpys_on_every_library(lib: str, name: str) -> None:
    # numpy answers them (an or, an and, the first True or False); PyTorch refused argmax and
    # argmin of bools, array-api-strict all four.
    xp = library_or_skip(lib)
    host = np.array([[False, True, True], [False, False, False], [True, True, True]])
    for axis, keepdims in [(1, False), (0, True), (None, False), (-1, True)]:
        want = getattr(np, name)(host, axis=axis, keepdims=keepdims)
        got = getattr(ab, name)(ab.tensor(xp.from_numpy(host, None)), axis=axis, keepdims=keepdims)
        assert got.numpy().dtype == want.dtype or name.startswith("arg")  # (indices: the library's integer)
        np.testing.assert_array_equal(got.numpy(), want)


# -- prod with zeros ---------------------------------------------------------------------------------------
def test_prod_gradient_with_one_zero_is_the_product_of_the_others() -> None:
    g = grad_of(lambda x: x.prod(), [2.0, 0.0, 3.0, -1.5])
    assert g.tolist() == [0.0, 2.0 * 3.0 * -1.5, 0.0, 0.0]
    x = ab.tensor([[2.0, 0.0, 3.0], [1.5, -2.0, 0.5]], requires_grad=True)
    assert ab.gradcheck(lambda t: ab.prod(t, axis=1), x)
    assert ab.gradgradcheck(lambda t: ab.prod(t, axis=1), x)


def test_prod_gradient_with_two_and_three_zeros_is_zero() -> None:
    assert grad_of(lambda x: x.prod(), [0.0, 4.0, 0.0]).tolist() == [0.0, 0.0, 0.0]
    assert grad_of(lambda x: x.prod(), [0.0, 0.0, 0.0]).tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("values", [[0.0, 4.0, 0.0, 2.0], [0.0, 0.0, 0.0, 3.0], [1.5, -2.0, 0.5, 3.0]])
def test_prod_second_order_holds_at_zeros(values: list[float]) -> None:
    # With two zeros the Hessian between them is the product of the rest (4 * 2): not zero.
    x = ab.tensor(values, requires_grad=True)
    assert ab.gradgradcheck(lambda t: t.prod(), x)
    (g,) = ab.grad(x.prod(), [x], create_graph=True)
    (row,) = ab.grad(g[0], [x])
    others = [np.prod(np.delete(values, [0, j])) if j else 0.0 for j in range(len(values))]
    assert row.tolist() == pytest.approx(others)


def _others_product(values: np.ndarray, axis: int) -> np.ndarray:
    """prod_{j != i} x_j along ``axis``, by numpy's IEEE products of each slice without x_i."""
    moved = np.moveaxis(values, axis, -1)
    flat = moved.reshape(-1, moved.shape[-1])
    others = np.array([[np.prod(np.delete(row, i)) for i in range(row.size)] for row in flat])
    return np.moveaxis(others.reshape(moved.shape), -1, axis)


INFINITE_SLICES = [
    [np.inf, 2.0, 3.0],  # out / x was inf / inf: nan, where the others' product is 6
    [np.inf, 0.0, 2.0],  # an infinity and a zero: 0 * 2 for the infinity, inf * 2, inf * 0 = nan
    [np.inf, -np.inf, 3.0],
    [0.0, 0.0, np.inf],
    [np.inf, np.inf, 0.0],
    [-np.inf, -2.0, 0.5],
]


@pytest.mark.parametrize("create_graph", [False, True], ids=["on-arrays", "on-tensors"])
def test_prod_gradient_beside_infinities_is_the_ieee_product_of_the_others(create_graph: bool) -> None:
    values = np.array([*INFINITE_SLICES, [1.5, -2.0, 4.0]])  # (and a finite slice beside them)
    x = ab.tensor(values, requires_grad=True)
    with np.errstate(invalid="ignore"):  # (inf * 0 in the forward's products)
        (g,) = ab.grad(ab.prod(x, axis=1).sum(), [x], create_graph=create_graph)
        (column,) = ab.grad(ab.prod(x, axis=0).sum(), [x], create_graph=create_graph)
        rows_want, columns_want = _others_product(values, axis=1), _others_product(values, axis=0)
    np.testing.assert_array_equal(g.numpy(), rows_want)  # (nan where nan, signs of infinities too)
    np.testing.assert_array_equal(column.numpy(), columns_want)


def test_prod_tangent_beside_an_infinity_is_the_others_products_along_the_direction() -> None:
    values, direction = np.array([np.inf, 2.0, 3.0]), np.array([1.0, 1.0, 1.0])
    _, tangent = ab.functional.jvp(lambda t: t.prod(), (ab.tensor(values),), (ab.tensor(direction),))
    assert tangent.item() == np.sum(_others_product(values, axis=0) * direction) == np.inf  # (was nan)


def test_prod_zero_in_one_slice_only() -> None:
    x = ab.tensor([[0.0, 2.0], [3.0, 4.0]], requires_grad=True)
    x.prod(axis=-1).sum().backward()
    assert x.grad is not None and x.grad.tolist() == [[2.0, 0.0], [4.0, 3.0]]


# Slices with three and four zeros, one or two, and none, reduced over all axes, one axis, two axes.
ZEROS_ROWS = np.array([[0.0, 0.0, 0.0, 2.0, -1.5], [0.0, 0.0, 0.0, 0.0, 3.0], [1.5, 0.5, -2.0, 1.0, 0.0]])
ZEROS_BLOCKS = np.array([[[0.0, 0.0], [0.0, 2.0], [3.0, 0.0]], [[1.0, 2.0], [0.5, 0.0], [0.0, 0.0]]])
HIGHER_ORDER_CASES = [
    (np.array([0.0, 0.0, 0.0, 2.0]), None, False),
    (ZEROS_ROWS, 1, True),
    (ZEROS_ROWS, 0, False),
    (ZEROS_BLOCKS, (0, 2), True),
    (ZEROS_BLOCKS, (1, 2), False),
    (ZEROS_BLOCKS, None, True),
]
HIGHER_ORDER_IDS = ["all-3-zeros", "rows-keepdims", "columns", "axes-0-2-keepdims", "axes-1-2", "all-6-zeros-keepdims"]


def _prod_derivative_by_definition(
    values: np.ndarray, weights: np.ndarray, axes: tuple[int, ...], dirs: list[np.ndarray]
) -> float:
    """The k-th derivative of ``sum(weights * prod(values, axes, keepdims=True))`` along the k
    directions ``dirs``, from the definition: the mixed partial of a slice's product along distinct
    elements S is the product of the slice's other elements, and 0 along a repeated element."""
    moved = [a for a in range(values.ndim) if a not in axes] + list(axes)
    count = math.prod(values.shape[a] for a in axes)

    def rows(array: np.ndarray) -> np.ndarray:
        return np.transpose(np.broadcast_to(array, values.shape), moved).reshape(-1, count)

    xs, ds, ws = rows(values), [rows(d) for d in dirs], rows(weights)[:, 0]
    total = 0.0
    for s, row in enumerate(xs):
        for picks in itertools.permutations(range(count), len(dirs)):
            total += ws[s] * np.prod(np.delete(row, picks)) * math.prod(d[s, i] for d, i in zip(ds, picks, strict=True))
    return float(total)


def _prod_derivative(
    mode: str, make: Any, values: np.ndarray, weights: Any, axis: Any, keepdims: bool, dirs: list
) -> float:
    """The same derivative from autobp: reverse (``grad`` with ``create_graph``, k times), forward
    (``jvp`` of ``jvp``...) or forward-over-reverse (``hvp`` of the (k - 2)-th reverse derivative)."""
    out_weights = make(weights if keepdims else np.reshape(weights, np.prod(values, axis=axis).shape))

    def f(t: ab.Tensor) -> ab.Tensor:
        return (ab.prod(t, axis=axis, keepdims=keepdims) * out_weights).sum()

    def reverse(fn: Any, direction: np.ndarray) -> Any:
        def derivative(t: ab.Tensor) -> ab.Tensor:
            (g,) = ab.grad(fn(t), [t], create_graph=True)
            return (g * make(direction)).sum()

        return derivative

    def forward(fn: Any, direction: np.ndarray) -> Any:
        return lambda t: ab.functional.jvp(fn, t, make(direction), create_graph=True)[1]

    x = make(values)
    if mode == "reverse":
        for direction in dirs:
            f = reverse(f, direction)
        return f(x.requires_grad_()).item()
    if mode == "forward":
        for direction in dirs:
            f = forward(f, direction)
        return f(x).item()
    for direction in dirs[:-2]:
        f = reverse(f, direction)
    _, hv = ab.functional.hvp(f, x, make(dirs[-2]))
    return (hv * make(dirs[-1])).sum().item()


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("mode", ["reverse", "forward", "forward-over-reverse"])
@pytest.mark.parametrize(("values", "axis", "keepdims"), HIGHER_ORDER_CASES, ids=HIGHER_ORDER_IDS)
def test_prod_derivatives_of_every_order_at_zeros_are_the_definitions(
    lib: str, dtype: str, mode: str, values: np.ndarray, axis: Any, keepdims: bool
) -> None:
    # Orders 3 and 4 at slices of 3 and 4 zeros came out 0 (the rule held the other zeros' product
    # constant past two zeros); [0, 0, 0, 2]'s d3 / dx0 dx1 dx2 is 2, as PyTorch gives.
    xp = library_or_skip(lib)

    def make(array: np.ndarray) -> ab.Tensor:
        return ab.Tensor(xp.from_numpy(np.asarray(array, dtype), None))

    rng = np.random.default_rng(7)
    axes = tuple(range(values.ndim)) if axis is None else normalize_axes(axis, values.ndim, "prod")
    weights = rng.uniform(0.5, 2.0, kept_shape(values.shape, axes))
    for order in (1, 2, 3, 4):
        dirs = [rng.uniform(-1.0, 1.0, values.shape) for _ in range(order)]
        if mode == "forward-over-reverse" and order < 2:
            continue
        want = _prod_derivative_by_definition(values, weights, axes, dirs)
        got = _prod_derivative(mode, make, values, weights, axis, keepdims, dirs)
        tolerance = 1e-5 if dtype == "float32" else 1e-12
        assert got == pytest.approx(want, rel=tolerance, abs=tolerance), order


def test_prod_third_and_fourth_derivatives_at_zeros_element_by_element() -> None:
    x = ab.tensor([0.0, 0.0, 0.0, 2.0], requires_grad=True)
    (g,) = ab.grad(ab.prod(x), [x], create_graph=True)
    (h,) = ab.grad(g[0], [x], create_graph=True)
    (third,) = ab.grad(h[1], [x], create_graph=True)
    assert third.tolist() == [0.0, 0.0, 2.0, 0.0]  # (was [0, 0, 0, 0])
    (fourth,) = ab.grad(third[2], [x])
    assert fourth.tolist() == [0.0, 0.0, 0.0, 1.0]
    y = ab.tensor([0.0, 0.0, 0.0, 0.0, -3.0], requires_grad=True)
    (row,) = ab.grad(ab.prod(y), [y], create_graph=True)
    for i in range(3):  # d / dy0, d / dy1, d / dy2 in turn
        (row,) = ab.grad(row[i], [y], create_graph=i < 2)
    assert row.tolist() == [0.0, 0.0, 0.0, -3.0, 0.0]  # d4 / dy0 dy1 dy2 dy3 is y4


def test_a_slice_without_zeros_keeps_its_derivatives_beside_one_with_zeros() -> None:
    # Slices with zeros take products of the others, whose partial products (1e160 * 1e160) may
    # overflow where out / x does not; a slice without zeros must not see them, even times 0.
    x = ab.tensor([[0.0, 0.0, 0.0, 2.0, 1.0, 1.0], [1e-100, 1e160, 1e160, 1e-100, 1e-100, 1e-20]], requires_grad=True)
    (g,) = ab.grad(ab.prod(x, axis=1).sum(), [x], create_graph=True)
    (h,) = ab.grad(g[1, 0], [x])
    np.testing.assert_allclose(h.numpy()[1], [0.0, 1e-60, 1e-60, 1e200, 1e200, 1e120], rtol=1e-12)  # (was nan)
    assert h.numpy()[0].tolist() == [0.0] * 6


@pytest.mark.parametrize(
    ("values", "scale"),
    [(np.array([300.0, 200.0], np.float16), 2.0), (np.array([1e19, 3e19], np.float32), 2.0), ([1e150, 1e150], 1e10)],
    ids=["float16", "float32", "float64"],
)
def test_prod_gradient_does_not_overflow_where_it_fits(values: Any, scale: float) -> None:
    # The product, the other elements' product and the gradient fit; grad * out (60000 * 2 in
    # float16) did not, and the gradient came out inf (PyTorch: [400, 600] in float16).
    x = ab.tensor(values, requires_grad=True)
    expected = scale * np.asarray(values, np.float64)[::-1]
    seed = ab.tensor(np.asarray(scale, x.dtype))
    for create_graph in (False, True):
        (g,) = ab.grad(ab.prod(x), [x], grad_outputs=[seed], create_graph=create_graph)
        assert g.dtype == x.dtype
        np.testing.assert_allclose(g.detach().numpy().astype(np.float64), expected, rtol=1e-3)
    (row,) = ab.grad(g[0], [x])  # d2 / dx0 dx1 = scale, d2 / dx0^2 = 0
    np.testing.assert_allclose(row.numpy().astype(np.float64), [0.0, scale], rtol=1e-3, atol=1e-3 * scale)


# -- logsumexp at large magnitudes --------------------------------------------------------------------------
@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_logsumexp_is_stable_at_large_magnitudes(scale: float) -> None:
    values = scale + np.array([[0.0, 1.0, 2.0], [0.5, 0.5, 0.5]])
    x = ab.tensor(values, requires_grad=True)
    out = ab.logsumexp(x, axis=1)
    shifted = values - scale
    expected = scale + np.log(np.exp(shifted).sum(axis=1))
    assert np.allclose(out.numpy(), expected, rtol=1e-12)
    out.sum().backward()
    assert x.grad is not None
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    assert np.allclose(x.grad.numpy(), softmax)  # each row of the gradient sums to one
    assert ab.gradgradcheck(lambda t: ab.logsumexp(t, axis=1), ab.tensor(shifted, requires_grad=True))


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize(("dtype", "offset"), [("float32", 1e5), ("float64", 1e13)])
def test_logsumexp_gradient_is_the_softmax_where_its_value_is_rounded(lib: str, dtype: str, offset: float) -> None:
    # The weights were exp(x - out) with out rounded (float32 1e5: spacing 0.008), off by a factor
    # common to the row: [0.37660 0.62091] for float32 [1e5, 1e5 + 0.5], summing to 0.9975.
    xp = library_or_skip(lib)
    shifted = np.array([[0.0, 0.5, -1.0], [0.25, 0.25, 0.25]])
    rtol = 1e-6 if dtype == "float32" else 1e-12
    softmax = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    host = (offset + shifted).astype(dtype)
    assert np.array_equal(host.astype(np.float64) - offset, shifted)  # the inputs are exact

    def make(array: np.ndarray) -> ab.Tensor:
        return ab.Tensor(xp.from_numpy(np.asarray(array, dtype), None))

    x = make(host).requires_grad_()
    (g,) = ab.grad(ab.logsumexp(x, axis=1).sum(), [x], create_graph=True)
    np.testing.assert_allclose(g.detach().numpy(), softmax, rtol=rtol)
    # Second order: the Hessian of a row is diag(p) - p p^T; along w it is p * (w - <p, w>).
    w = np.array([[1.0, -2.0, 0.5], [1.0, 0.0, -1.0]])
    (h,) = ab.grad((g * make(w)).sum(), [x])
    expected = softmax * (w - (softmax * w).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(h.numpy(), expected, rtol=100 * rtol, atol=100 * rtol)
    # Forward mode: the tangent of a row is <p, v>; at float32 [3e7, 3e7] along [1, 0] it was 1.0.
    _, jv = ab.functional.jvp(lambda t: ab.logsumexp(t, axis=1), (make(host),), (make(w),))
    np.testing.assert_allclose(jv.numpy(), (softmax * w).sum(axis=1), rtol=rtol, atol=rtol)
    ties = make(np.full(2, 3e7 if dtype == "float32" else 3e15))
    _, jv = ab.functional.jvp(ab.logsumexp, (ties,), (make(np.array([1.0, 0.0])),))
    assert jv.item() == 0.5


def test_logsumexp_gradient_at_infinities_matches_pytorch() -> None:
    # An input at +inf: 0 at the finite inputs, nan at the infinite one; all -inf: nan. First and
    # second order and forward mode, as PyTorch gives and as before the weights were normalized.
    inf = np.inf
    cases = {
        (1.0, inf): ([0.0, np.nan], [np.nan, np.nan], np.nan),
        (-inf, -inf): ([np.nan, np.nan], [np.nan, np.nan], np.nan),
        (1.0, -inf): ([1.0, 0.0], [0.0, 0.0], 1.0),
        (-inf, inf): ([0.0, np.nan], [np.nan, np.nan], np.nan),
    }
    for values, (gradient, second, tangent) in cases.items():
        x = ab.tensor(values, requires_grad=True)
        (g,) = ab.grad(ab.logsumexp(x), [x])
        np.testing.assert_array_equal(g.numpy(), gradient)
        (g,) = ab.grad(ab.logsumexp(x), [x], create_graph=True)
        np.testing.assert_array_equal(g.detach().numpy(), gradient)
        (h,) = ab.grad((g * ab.tensor([1.0, 2.0])).sum(), [x])
        np.testing.assert_array_equal(h.numpy(), second)
        _, jv = ab.functional.jvp(ab.logsumexp, (ab.tensor(values),), (ab.tensor([1.0, 1.0]),))
        np.testing.assert_array_equal(jv.numpy(), tangent)


def test_logsumexp_of_infinities() -> None:
    assert ab.logsumexp(ab.tensor([-np.inf, -np.inf])).item() == -np.inf
    assert ab.logsumexp(ab.tensor([1.0, np.inf])).item() == np.inf


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize(("shape", "axis", "keepdims"), [((0, 3), 0, False), ((0, 3), None, True), ((3, 0), -1, False)])
def test_logsumexp_over_no_elements_is_minus_inf(lib: str, shape: tuple[int, ...], axis: Any, keepdims: bool) -> None:
    # log(sum of no exponentials) = log 0, as PyTorch and scipy give; it raised numpy's
    # "zero-size array to reduction operation maximum". The gradient is empty, the jvp 0.
    xp = library_or_skip(lib)
    for dtype in ("float64", "float32") + (("float16",) if lib != "array_api_strict" else ()):
        x = ab.Tensor(xp.from_numpy(np.zeros(shape, dtype), None), requires_grad=True)
        out = ab.logsumexp(x, axis=axis, keepdims=keepdims)
        want = np.full(np.sum(np.zeros(shape), axis=axis, keepdims=keepdims).shape, -np.inf)
        assert ab.backends.namespace(out.data).dtype_name(out.dtype) == dtype
        np.testing.assert_array_equal(out.numpy(), want)
        (g,) = ab.grad(out.sum(), [x])
        assert g.shape == shape
        _, jv = ab.functional.jvp(
            lambda t: ab.logsumexp(t, axis=axis, keepdims=keepdims),
            (ab.Tensor(xp.from_numpy(np.zeros(shape, dtype), None)),),
            (ab.Tensor(xp.from_numpy(np.zeros(shape, dtype), None)),),
        )
        np.testing.assert_array_equal(jv.numpy(), np.zeros(want.shape))


# -- mean, var, std --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ddof", [0, 1, 2])
@pytest.mark.parametrize("name", ["var", "std"])
def test_spread_ddof_matches_numpy_and_gradcheck(name: str, ddof: int) -> None:
    data = np.random.default_rng(ddof).standard_normal((3, 4))
    got = getattr(ab, name)(ab.tensor(data), axis=(0, -1), ddof=ddof, keepdims=True)
    assert np.allclose(got.numpy(), getattr(np, name)(data, axis=(0, -1), ddof=ddof, keepdims=True))
    x = ab.tensor(data, requires_grad=True)
    assert ab.gradcheck(lambda t: getattr(t, name)(axis=0, ddof=ddof), x)
    assert ab.gradgradcheck(lambda t: getattr(t, name)(axis=1, ddof=ddof), x)


def test_spread_with_too_few_elements_gives_inf_or_nan_quietly() -> None:
    x = ab.tensor([[1.0, 2.0]], requires_grad=True)
    out = ab.var(x, axis=0, ddof=1)  # numpy warns here; autobp returns its value without a warning
    assert np.isnan(out.numpy()).all()
    out.sum().backward()
    assert x.grad is not None and np.isnan(x.grad.numpy()).all()
    assert np.isinf(ab.var(ab.tensor([1.0, 2.0]), ddof=2).item())


def test_std_gradient_is_zero_where_the_spread_is_zero() -> None:
    # Documented choice: a subgradient (PyTorch gives nan); second order stays finite too.
    x = ab.tensor([[2.0, 2.0, 2.0], [1.0, 2.0, 3.0]], requires_grad=True)
    (g,) = ab.grad(ab.std(x, axis=1).sum(), [x], create_graph=True)
    assert g.tolist()[0] == [0.0, 0.0, 0.0]
    assert np.allclose(g.numpy()[1], np.array([-1.0, 0.0, 1.0]) / (3 * np.std([1.0, 2.0, 3.0])))
    (h,) = ab.grad(g.sum(), [x])
    assert np.isfinite(h.numpy()).all()


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize(
    ("dtype", "scale"),
    [("float32", 1e-23), ("float32", 1e-21), ("float64", 1e-170), ("float32", 1e20), ("float64", 1e155)],
)
def test_std_of_deviations_whose_squares_underflow_or_overflow_keeps_its_digits(
    lib: str, dtype: str, scale: float
) -> None:
    # The squared deviations are subnormal or 0 (float32 below 1e-19, float64 below 1e-154): the
    # std of float32 [1e-23, -1e-23, 5e-24] was 0 with gradient 0, of [1e-21, ...] 8.4951e-22 (6
    # digits of 8.4984e-22 lost). PyTorch (which accumulates float32 in float64) gives 8.4984e-24
    # and [0.327, -0.458, 0.131]; the deviations are scaled by the largest before squaring. Squares
    # past the largest float (float32 above 1.8e19) made the std of [1e20, -1e20, 5e19] inf, with
    # gradient 0 (PyTorch: 8.4984e19 and the same gradient).
    xp = library_or_skip(lib)
    # (the second row is equal, with an exact mean: a power of two)
    host = np.array([[1.0, -1.0, 0.5], [1.0, 1.0, 1.0]]) * [[scale], [2.0 ** (-75 if dtype == "float32" else -565)]]
    exact = np.array([[1.0, -1.0, 0.5], [0.0, 0.0, 0.0]])  # std / scale, which sets the gradient
    for ddof in (0, 1):
        x = ab.Tensor(xp.from_numpy(host.astype(dtype), None), requires_grad=True)
        out = ab.std(x, axis=1, ddof=ddof)
        want = np.std(exact, axis=1, ddof=ddof)
        np.testing.assert_allclose(out.numpy().astype(np.float64), want * scale, rtol=1e-5)
        (g,) = ab.grad(out.sum(), [x])
        centered = exact - exact.mean(axis=1, keepdims=True)
        slope = np.divide(centered, (3 - ddof) * want[:, None], out=np.zeros_like(centered), where=want[:, None] > 0)
        np.testing.assert_allclose(g.numpy().astype(np.float64), slope, rtol=1e-5, atol=1e-6)
        _, jv = ab.functional.jvp(
            lambda t: ab.std(t, axis=1, ddof=ddof),
            (ab.Tensor(xp.from_numpy(host.astype(dtype), None)),),
            (ab.Tensor(xp.from_numpy(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=dtype), None)),),
        )
        np.testing.assert_allclose(jv.numpy().astype(np.float64), [slope[0, 0], 0.0], rtol=1e-5)
    # (the first row alone: with no equal row beside it to take the rescaled path for it)
    alone = ab.std(ab.Tensor(xp.from_numpy(host[0].astype(dtype), None)))
    np.testing.assert_allclose(float(alone.numpy()), np.std(exact[0]) * scale, rtol=1e-5)


@pytest.mark.parametrize("scale", [1e-23, 1e20])
def test_std_of_tiny_and_huge_float32_deviations_matches_torch(scale: float) -> None:
    torch = pytest.importorskip("torch")
    values = (np.array([1.0, -1.0, 0.5]) * scale).astype(np.float32)
    t = torch.tensor(values, requires_grad=True)
    want = torch.std(t, correction=0)
    (want_grad,) = torch.autograd.grad(want, [t])
    x = ab.tensor(values, requires_grad=True)
    got = ab.std(x)
    (g,) = ab.grad(got, [x])
    assert got.dtype == np.float32 and g.dtype == np.float32
    np.testing.assert_allclose(got.item(), want.item(), rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), want_grad.numpy(), rtol=1e-5)


def test_mean_gradient_and_empty_mean() -> None:
    g = grad_of(lambda x: x.mean(axis=(-1, 0)), np.ones((2, 5)))
    assert np.allclose(g, 0.1)
    empty = ab.tensor(np.zeros((0, 3)), requires_grad=True)
    out = ab.mean(empty, axis=0)
    assert np.isnan(out.numpy()).all() and out.shape == (3,)
    out.sum().backward()
    assert empty.grad is not None and empty.grad.shape == (0, 3)


def test_mean_of_integers_is_float64_like_numpy() -> None:
    got = ab.mean(ab.tensor([[1, 2], [3, 5]]), axis=1)
    assert got.dtype == np.float64 and got.tolist() == [1.5, 4.0]


# -- dtypes and errors -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["mean", "var", "std", "prod", "logsumexp", "max", "min", "sum"])
def test_float32_stays_float32_in_value_and_gradient(name: str) -> None:
    x = ab.tensor(np.array([[1.0, -2.0, 0.5], [3.0, 0.0, -1.0]], dtype=np.float32), requires_grad=True)
    out = getattr(x, name)(axis=1)
    assert out.dtype == np.float32
    out.sum().backward()
    assert x.grad is not None and x.grad.dtype == np.float32


@pytest.mark.parametrize("name", ["mean", "var", "std", "prod", "logsumexp", "max", "min"])
def test_bad_axes_name_the_op(name: str) -> None:
    x = ab.tensor(np.ones((2, 3)))
    with pytest.raises(np.exceptions.AxisError, match=rf"{name}: axis 2 is out of bounds .* dimension 2"):
        getattr(ab, name)(x, axis=2)
    with pytest.raises(ValueError, match=rf"{name}: repeated axis"):
        getattr(ab, name)(x, axis=(0, -2))


def test_max_of_empty_names_the_op_and_shape() -> None:
    with pytest.raises(ValueError, match=r"max: .*float64\[0\]"):
        ab.max(ab.tensor(np.zeros(0)))


# -- float16: accumulated in float32, rounded once ------------------------------------------------------------
def _spread_oracle(name: str, x: np.ndarray, axis: Any) -> tuple[np.ndarray, np.ndarray]:
    """The value and d value / d x of mean, var or std in float64: (x - mean) / n and its kin."""
    n = x.size if axis is None else x.shape[axis]
    centered = x - x.mean(axis=axis, keepdims=True)
    if name == "mean":
        return x.mean(axis=axis), np.full(x.shape, 1.0 / n)
    if name == "var":
        return x.var(axis=axis), 2 * centered / n
    return x.std(axis=axis), centered / (n * x.std(axis=axis, keepdims=True))


# The probe's cases: a 256 x 256 image (65536 elements, past float16's largest number 65504, the
# count itself inf), a sum past 65504 (1000 x 100), squared deviations past it, and a column of
# 100000 rows, which numpy's float16 sum adds one row at a time (stalling at 32).
FLOAT16_CASES = [
    ("mean", np.full((256, 256), 0.01), None),
    ("mean", np.full(1000, 100.0), None),
    ("std", np.array([200.0, -200.0] * 5), None),
    ("var", np.array([200.0, -200.0] * 5), None),
    ("mean", np.linspace(0.005, 0.015, 200000).reshape(100000, 2), 0),
    ("std", np.linspace(-3.0, 3.0, 300 * 250).reshape(300, 250), 0),
    ("var", np.linspace(-3.0, 3.0, 300 * 250).reshape(300, 250), None),
]


@pytest.mark.parametrize("lib", LOW_PRECISION_LIBRARIES)
@pytest.mark.parametrize(("name", "values", "axis"), FLOAT16_CASES)
def test_float16_mean_var_std_accumulate_in_float32(lib: str, name: str, values: np.ndarray, axis: Any) -> None:
    # Value, gradient (first order and under create_graph) and jvp against float64, all in float16,
    # as close as float16 rounding allows; before, 0 (the count was inf), inf or nan.
    xp = library_or_skip(lib)
    host = values.astype(np.float16)
    value, partials = _spread_oracle(name, host.astype(np.float64), axis)
    rng = np.random.default_rng(0)
    cotangent = rng.uniform(0.5, 1.5, np.shape(value)).astype(np.float16)
    tangent = rng.uniform(-1.0, 1.0, host.shape).astype(np.float16)

    def make(array: np.ndarray, requires_grad: bool = False) -> ab.Tensor:
        return ab.Tensor(xp.from_numpy(array, None), requires_grad=requires_grad)

    def op(t: ab.Tensor) -> ab.Tensor:
        return getattr(ab, name)(t, axis=axis)

    def close(got: ab.Tensor, want: np.ndarray) -> None:
        assert ab.backends.namespace(got.data).dtype_name(got.dtype) == "float16"
        scale = float(np.max(np.abs(want)))
        np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=2e-3, atol=2e-3 * scale)

    kept = cotangent if axis is None else np.expand_dims(cotangent, axis)
    close(op(make(host)), value)
    for create_graph in (False, True):
        x = make(host, requires_grad=True)
        (g,) = ab.grad(op(x), [x], grad_outputs=[make(cotangent)], create_graph=create_graph)
        close(g, kept.astype(np.float64) * partials)
    _, jv = ab.functional.jvp(op, (make(host),), (make(tangent),))
    close(jv, (partials * tangent).sum(axis=axis))


@pytest.mark.parametrize("lib", LOW_PRECISION_LIBRARIES)
@pytest.mark.parametrize(("shape", "axis"), [((300, 300), None), ((100000, 2), 0)])
def test_float16_logsumexp_accumulates_in_float32(lib: str, shape: tuple[int, ...], axis: Any) -> None:
    # The sum of exponentials (each near 1 after the shift) ran in float16: past 65504 it was inf,
    # and along an axis numpy adds one row at a time it stalled at 2048.
    xp = library_or_skip(lib)
    host = np.linspace(-0.1, 0.1, math.prod(shape)).reshape(shape).astype(np.float16)
    exact = host.astype(np.float64)
    softmax = np.exp(exact) / np.exp(exact).sum(axis=axis, keepdims=True)
    tangent = np.random.default_rng(0).uniform(-1.0, 1.0, shape).astype(np.float16)

    def make(array: np.ndarray, requires_grad: bool = False) -> ab.Tensor:
        return ab.Tensor(xp.from_numpy(array, None), requires_grad=requires_grad)

    x = make(host, requires_grad=True)
    out = ab.logsumexp(x, axis=axis)
    np.testing.assert_allclose(out.numpy().astype(np.float64), np.log(np.exp(exact).sum(axis=axis)), rtol=1e-3)
    (g,) = ab.grad(out.sum(), [x], create_graph=True)
    assert ab.backends.namespace(g.data).dtype_name(g.dtype) == "float16"
    np.testing.assert_allclose(g.detach().numpy().astype(np.float64), softmax, rtol=2e-2, atol=1e-7)  # (subnormals)
    _, jv = ab.functional.jvp(lambda t: ab.logsumexp(t, axis=axis), (make(host),), (make(tangent),))
    np.testing.assert_allclose(jv.numpy().astype(np.float64), (softmax * tangent).sum(axis=axis), atol=2e-3)


@pytest.mark.parametrize("lib", LOW_PRECISION_LIBRARIES)
def test_float16_sums_accumulate_in_float32(lib: str) -> None:
    # numpy adds along an outer axis one row at a time in float16, which stalls once the total's
    # spacing passes twice the terms: a column of 20000 values in [0, 1) summed to 2048, and a
    # bias's gradient (the engine's sum_to over the batch) of 20000 x 0.01 to 32. PyTorch
    # accumulates in float32: [10016, 10032] and 200.
    xp = library_or_skip(lib)
    host = np.random.default_rng(0).uniform(0.0, 1.0, (20000, 2)).astype(np.float16)
    exact = host.astype(np.float64)

    def make(array: np.ndarray, requires_grad: bool = False) -> ab.Tensor:
        return ab.Tensor(xp.from_numpy(array, None), requires_grad=requires_grad)

    def close(got: ab.Tensor, want: Any) -> None:
        assert ab.backends.namespace(got.data).dtype_name(got.dtype) == "float16"
        np.testing.assert_allclose(got.numpy().astype(np.float64), want, rtol=1e-3)

    close(ab.sum(make(host), axis=0), exact.sum(axis=0))
    close(ab.sum(make(host)), exact.sum())
    close(ab.sum_to(make(host), (1, 2)), exact.sum(axis=0, keepdims=True))
    bias = make(np.zeros(2, np.float16), requires_grad=True)
    for create_graph in (False, True):
        (g,) = ab.grad(((make(host) + bias) * 0.01).sum(), [bias], create_graph=create_graph)
        close(g, 20000 * float(np.float16(0.01)))
    if lib == "numpy":  # a tape's replay writes numpy's reductions itself: it must not stall either
        step = ab.tape.value_and_grad(lambda b: ((ab.tensor(host) + b) ** 2).sum() * 1e-4)
        for _ in range(3):  # the trace, the first replay (checked against eager), a replay
            _, g = step(np.zeros(2, np.float16))
            assert g.dtype == np.float16
            np.testing.assert_allclose(g.numpy().astype(np.float64), 2e-4 * exact.sum(axis=0), rtol=3e-3)
        assert not step.eager_reasons  # (a replay writing numpy's float16 reduction differs from eager)


def test_float16_mean_losses_accumulate_in_float32() -> None:
    # reduction="mean" goes through ab.mean: a float16 batch of 65536 elements gave a loss of 0.
    scores = ab.tensor(np.full((256, 256), 0.1, np.float16), requires_grad=True)
    loss = ab.nn.functional.mse_loss(scores, ab.tensor(np.zeros((256, 256), np.float16)))
    assert loss.dtype == np.float16 and loss.item() == pytest.approx(0.01, rel=1e-3)
    (g,) = ab.grad(loss, [scores])
    assert g.dtype == np.float16 and np.allclose(g.numpy(), 2 * 0.1 / 65536, rtol=1e-3)


@pytest.mark.parametrize("scale", [1e-170, 1e170])
def test_std_second_order_keeps_its_digits_where_the_squares_would_not(scale: float) -> None:
    # std is homogeneous of degree 1: H(c x) = H(x) / c. Second order went through 1 / spread**2,
    # which overflowed at 1e-170 (the Hessian came out inf) and underflowed at 1e170 (20% off)
    x = np.array([0.3, -1.2, 2.0, 0.7])
    want = ab.functional.hessian(ab.std, ab.tensor(x)).data
    got = ab.functional.hessian(ab.std, ab.tensor(x * scale)).data * scale
    np.testing.assert_allclose(got, want, rtol=1e-12)
