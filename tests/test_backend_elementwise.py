"""Elementwise ops, activations and reductions across array libraries: what the registry suite cannot see.

numpy's fast forwards (``autobp/backends/numpy.py`` ``FORWARDS``) must give their general forward's
numbers bit for bit, domain edges included (the registry suite samples inside the domain and only
ever runs the fast one on numpy). And the general forwards on other libraries must keep numpy's
conventions where the standard leaves room or refuses (float conditions, logic on numbers, clip
with crossed bounds, nan and signed zeros, dtype names).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.backends import MixedArraysError, library
from autobp.backends.numpy import FORWARDS
from autobp.ops.activations import tanh_backward
from autobp.ops.registry import REGISTRY

EDGES = np.array([-np.inf, -710.0, -2.5, -1.0, -0.0, 0.0, 1e-300, 0.5, 1.0, 3.0, 710.0, np.inf, np.nan])
OWN_FILES = ("autobp.ops.elementwise", "autobp.ops.activations", "autobp.ops.reduction")
FAST = sorted(name for name in FORWARDS if REGISTRY[name].declared.__module__.startswith(OWN_FILES))  # (packages too)


def _arguments(name: str, dtype: Any) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Inputs that reach every branch of a fast forward: 0-d and n-d, broadcast, edge values."""
    x = EDGES.astype(dtype)
    column, row = x[:, None], x[None, :]
    opdef = REGISTRY[name]
    if name == "where":
        return [((row > 0, column, row), {}), ((x != 0, x, 2.0), {}), ((np.array(True), x[3], x[4]), {})]
    if name == "sum":
        grid = np.outer(x[2:-3], x[2:-3])
        return [((grid,), {}), ((grid,), {"axis": 0}), ((grid,), {"axis": (0, 1), "keepdims": True}), ((x[5],), {})]
    if opdef.arity == 2:
        # (and mixed dtypes: a fast forward that writes into a buffer must not round a wider result into it)
        wider, integers = x.astype(np.float64), np.arange(-6, 7)
        mixed = [((wider, x), {}), ((x, wider), {}), ((x, integers), {}), ((integers, x), {})]
        return [((column, row), {}), ((x[3], x[7]), {}), ((x, 2.0), {}), *mixed]
    return [((x,), {}), ((column * row,), {}), ((x[3],), {}), ((x[0],), {})]


@pytest.mark.parametrize("name", FAST)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_numpy_fast_forward_gives_the_general_forwards_bits(name: str, dtype: Any) -> None:
    opdef = REGISTRY[name]
    assert opdef.numpy_forward is FORWARDS[name] and opdef.forward is not FORWARDS[name]
    with np.errstate(all="ignore"):  # sin(inf) warns in both; the comparison is the point
        cases = _arguments(name, dtype)
    for args, kwargs in cases:
        with np.errstate(all="ignore"):
            fast = np.asarray(opdef.numpy_forward(*args, **kwargs))
            general = np.asarray(opdef.forward(*args, **kwargs))
        assert fast.dtype == general.dtype and fast.shape == general.shape, (name, args)
        assert np.array_equal(fast, general, equal_nan=True), f"{name}: fast {fast} != general {general}"
        assert np.array_equal(np.signbit(fast), np.signbit(general)), f"{name}: signed zeros or nan signs differ"


def test_the_public_function_takes_the_fast_forward_on_numpy_only() -> None:
    # The same call on numpy and on array_api_strict: one value (the strict one came by the general path).
    x = np.linspace(-3.0, 3.0, 7)
    strict = library("array_api_strict")
    for name in FAST:
        if REGISTRY[name].arity != 1:
            continue
        here = REGISTRY[name].public(ab.tensor(x))
        there = REGISTRY[name].public(ab.Tensor(strict.from_numpy(x)))
        assert there.library == "array_api_strict"
        np.testing.assert_allclose(there.numpy(), here.numpy(), rtol=1e-15, atol=0, err_msg=name)


LIBRARIES = [
    "array_api_strict",
    pytest.param(
        "torch",
        marks=pytest.mark.skipif(
            importlib.util.find_spec("torch") is None, reason="torch is not installed (pip install 'autobp[torch]')"
        ),
    ),
]


def _on(name: str, array: np.ndarray) -> ab.Tensor:
    return ab.Tensor(library(name).from_numpy(np.asarray(array)))


@pytest.mark.parametrize("lib", LIBRARIES)
def test_numpy_conventions_on_other_libraries(lib: str) -> None:
    # Each case: the op on the library equals numpy's answer, nan and signed zeros included.
    with np.errstate(all="ignore"):
        cases = _convention_cases(lib)
        for what, got, want in cases:
            assert got.library == lib, what
            host, want = got.numpy(), np.asarray(want)
            assert host.dtype == want.dtype and host.shape == want.shape, (what, host.dtype, want.dtype)
            np.testing.assert_allclose(host, want, rtol=1e-15, atol=0, err_msg=what)
            number = ~np.isnan(want)  # (a nan's sign bit means nothing)
            assert np.array_equal(np.signbit(host[number]), np.signbit(want[number])), f"{what}: signed zeros differ"


def _convention_cases(lib: str) -> list[tuple[str, Any, Any]]:
    """(what, the op on the library, numpy's answer) for edge values."""
    x = EDGES
    y = x[::-1].copy()
    cases: list[tuple[str, Any, Any]] = [
        ("sign", ab.sign(_on(lib, x)), np.sign(x)),
        ("abs", ab.abs(_on(lib, x)), np.abs(x)),
        ("relu", ab.relu(_on(lib, x)), np.maximum(x, 0)),
        ("maximum", ab.maximum(_on(lib, x), _on(lib, y)), np.maximum(x, y)),
        ("minimum", ab.minimum(_on(lib, x), _on(lib, y)), np.minimum(x, y)),
        ("clip crossed", ab.clip(_on(lib, x), a_min=1.0, a_max=-1.0), np.clip(x, 1.0, -1.0)),
        ("clip one side", ab.clip(_on(lib, x), a_max=0.5), np.clip(x, None, 0.5)),
        ("clip none", ab.clip(_on(lib, x)), x),
        ("where on numbers", ab.where(_on(lib, x), _on(lib, y), 7.0), np.where(x, y, 7.0)),
        ("where two scalars", ab.where(_on(lib, x > 0), 1.0, 0.0), np.where(x > 0, 1.0, 0.0)),
        ("logical_and numbers", ab.logical_and(_on(lib, x), _on(lib, y)), np.logical_and(x, y)),
        ("logical_or numbers", ab.logical_or(_on(lib, x), 0.0), np.logical_or(x, 0.0)),
        ("logical_not numbers", ab.logical_not(_on(lib, x)), np.logical_not(x)),
        ("equal nan", ab.equal(_on(lib, x), _on(lib, x)), np.equal(x, x)),
        ("less_equal", ab.less_equal(_on(lib, x), 0.0), np.less_equal(x, 0.0)),
        ("sigmoid tails", ab.sigmoid(_on(lib, x)), 1.0 / (1.0 + np.exp(-x))),
        ("softplus tails", ab.softplus(_on(lib, x)), np.logaddexp(0.0, x)),
        ("log edges", ab.log(_on(lib, x)), np.log(x)),
        ("div by zero", ab.div(_on(lib, x), 0.0), np.true_divide(x, 0.0)),
    ]
    grid = np.array([[1.0, 3.0, 3.0], [-np.inf, -np.inf, 2.0], [np.inf, 1.0, 0.0]])
    cases += [
        ("logsumexp infinite", ab.logsumexp(_on(lib, grid), axis=1), np.log(np.sum(np.exp(grid), axis=1))),
        ("max", ab.max(_on(lib, grid), axis=0, keepdims=True), np.max(grid, axis=0, keepdims=True)),
        ("argmax first of ties", ab.argmax(_on(lib, grid), axis=1), np.argmax(grid, axis=1)),
        ("argmin flat", ab.argmin(_on(lib, grid)), np.argmin(grid)),
        ("prod", ab.prod(_on(lib, grid[:1]), axis=(0, 1)), np.prod(grid[:1])),
        ("var ddof", ab.var(_on(lib, grid[:1]), ddof=1), np.var(grid[:1], ddof=1)),
        ("std of one", ab.std(_on(lib, grid[0, :1])), np.std(grid[0, :1])),
        ("mean of ints", ab.mean(_on(lib, np.arange(5))), np.mean(np.arange(5))),
        ("sum axes", ab.sum(_on(lib, grid[:1]), axis=-1), np.sum(grid[:1], axis=-1)),
    ]
    return cases


@pytest.mark.parametrize("lib", LIBRARIES)
def test_float32_stays_float32_and_dtype_names_are_the_librarys(lib: str) -> None:
    x = _on(lib, np.linspace(-2.0, 2.0, 5, dtype=np.float32))
    for result in (ab.sigmoid(x), ab.softplus(x), ab.div(x, 3.0), ab.where(x > 0, x, 0.0), ab.logsumexp(x)):
        assert result.numpy().dtype == np.float32
    for spelling in ("float64", np.float64, np.dtype("float64"), float):
        converted = ab.astype(x, spelling)
        assert converted.library == lib and converted.numpy().dtype == np.float64, spelling


# A Python int beyond an integer tensor's dtype: numpy 2 raises OverflowError; torch wrapped it
# (uint8 + 300 gave 44, uint8 * -1 gave 255 and 254).
WRAPPING = [
    ("add", lambda t: t + 300),
    ("sub", lambda t: 300 - t),
    ("mul", lambda t: t * -1),
    ("pow", lambda t: t**300),
    ("maximum", lambda t: ab.maximum(t, -1)),
    ("minimum", lambda t: ab.minimum(t, 256)),
]
# numpy compares such an int exactly; the library raises rather than compare a wrapped one (torch's
# uint8 < -1 was True).
COMPARING = [
    ("less", lambda t: t < -1),
    ("equal", lambda t: t == 300),
    ("greater_equal", lambda t: ab.greater_equal(-1, t)),
]


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize(("name", "call"), WRAPPING + COMPARING, ids=[name for name, _ in WRAPPING + COMPARING])
def test_a_python_int_beyond_the_dtype_raises_on_every_library(lib: str, name: str, call: Any) -> None:
    u8 = np.array([1, 2], np.uint8)
    if (name, call) in WRAPPING:
        with pytest.raises(OverflowError, match="out of bounds for uint8"):
            call(ab.tensor(u8))  # numpy's own answer
    with pytest.raises(OverflowError, match=rf"^{name}: Python integer -?\d+ out of bounds for uint8 \(inputs: "):
        call(_on(lib, u8))
    in_range = _on(lib, u8) + 255  # wraps within the dtype, as numpy's does
    assert in_range.numpy().dtype == np.uint8 and in_range.numpy().tolist() == (u8 + 255).tolist() == [0, 1]


# A numpy integer scalar: torch reads it as a Python int and wrapped it too (uint8 + np.int64(300)
# gave [45, 46], where numpy computes [301, 302] in int64). Within the dtype's range torch's answer
# stands, as docs/arrays.md says (uint8 - np.int16(3) wraps in uint8 on torch, is int16 on numpy).
NUMPY_INTEGERS = [
    ("add", lambda t: t + np.int64(300)),
    ("sub", lambda t: t - np.int16(-300)),
    ("mul", lambda t: np.int32(-1) * t),
    ("maximum", lambda t: ab.maximum(t, np.int64(-1))),
    ("less", lambda t: t < np.int64(-1)),
]


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize(("name", "call"), NUMPY_INTEGERS, ids=[name for name, _ in NUMPY_INTEGERS])
def test_a_numpy_integer_beyond_the_dtype_raises_where_numpy_would_not_wrap(lib: str, name: str, call: Any) -> None:
    u8 = np.array([1, 2], np.uint8)
    on_numpy = call(ab.tensor(u8)).numpy()  # numpy promotes the scalar's dtype: nothing wraps
    assert on_numpy.dtype != np.uint8 and on_numpy.tolist() == np.asarray(call(u8)).tolist()
    with pytest.raises(OverflowError, match=rf"^{name}: numpy int\d+ -?\d+ out of bounds for uint8 \(inputs: "):
        call(_on(lib, u8))


def test_an_overflow_error_names_the_op_and_its_inputs() -> None:
    # numpy's own OverflowError (a Python int beyond the dtype, one beyond any float) came without
    # the op's name, unlike its ValueError and TypeError.
    with pytest.raises(
        OverflowError, match=r"^add: Python integer 300 out of bounds for uint8 \(inputs: uint8\[2\], int 300\)$"
    ):
        ab.tensor(np.array([1, 2], np.uint8)) + 300
    with pytest.raises(
        OverflowError, match=r"^mul: int too large to convert to float \(inputs: float32\[1\], int 1000"
    ):
        ab.tensor(np.array([1.5], np.float32)) * 10**400


@pytest.mark.parametrize("lib", LIBRARIES)
def test_a_python_int_beyond_64_bits_beside_a_float_tensor(lib: str) -> None:
    # numpy and array-api-strict compute it as a float; torch cannot take it (its integers are 64
    # bits) and said only "int too big to convert", naming no op.
    x = np.array([1.5, 2.0])
    if lib == "torch":
        with pytest.raises(OverflowError, match=r"^mul: int too big to convert \(inputs: torch float64\[2\], int 1180"):
            _on(lib, x) * 2**70
    else:
        assert (_on(lib, x) * 2**70).numpy().tolist() == (x * 2**70).tolist() == (ab.tensor(x) * 2**70).numpy().tolist()


# Integers to negative integer powers: numpy raises ValueError; torch gave 0 (int64 [2, 3] ** [-1, 2]
# was [0, 9]) for every exponent but a Python int, where it raised a RuntimeError of its own.
NEGATIVE_POWERS = [
    ("arrays", lambda on: on(np.array([2, 3])) ** on(np.array([-1, 2]))),
    ("0-d exponent", lambda on: on(np.array([2, 3])) ** on(np.array(-1))),
    ("number base", lambda on: 2 ** on(np.array([-1, 2]))),
    ("number exponent", lambda on: on(np.array([2, 3])) ** -1),
    ("numpy scalar exponent", lambda on: on(np.array([2, 3])) ** np.int64(-1)),
    ("bool base", lambda on: on(np.array([True, False])) ** on(np.array([2, -1]))),
    ("uint8 base, int8 exponent", lambda on: on(np.array([2, 3], np.uint8)) ** on(np.array([1, -1], np.int8))),
    ("int32 base", lambda on: ab.pow(on(np.array([2, 3], np.int32)), on(np.array([1, -1], np.int16)))),
]


@pytest.mark.parametrize("lib", LIBRARIES)
@pytest.mark.parametrize(("what", "call"), NEGATIVE_POWERS, ids=[what for what, _ in NEGATIVE_POWERS])
def test_integers_to_negative_integer_powers_raise_on_every_library(lib: str, what: str, call: Any) -> None:
    with pytest.raises(ValueError, match="Integers to negative integer powers are not allowed"):
        call(ab.tensor)  # numpy's own answer
    with pytest.raises(ValueError, match=r"^pow: Integers to negative integer powers are not allowed\. \(inputs: "):
        call(lambda array: _on(lib, array))


@pytest.mark.parametrize("lib", LIBRARIES)
def test_integer_powers_that_numpy_computes_are_computed_as_numpy_does(lib: str) -> None:
    base, exponent = np.array([[2, -3, 0]]), np.array([[0], [1], [3]])
    for x, y in [(base, exponent), (base.astype(np.uint8), exponent.astype(np.int8)), (2, exponent), (base, 2)]:
        found = ab.pow(_on(lib, x) if isinstance(x, np.ndarray) else x, _on(lib, y) if isinstance(y, np.ndarray) else y)
        want = np.power(x, y)
        assert found.numpy().dtype == want.dtype and found.numpy().tolist() == want.tolist(), (x, y)
    floats = _on(lib, np.array([2.0, 4.0])) ** -1  # a float base: no question
    assert floats.numpy().tolist() == [0.5, 0.25]


@pytest.mark.parametrize("lib", LIBRARIES)
def test_sign_and_square_of_bools_are_numpys_on_every_library(lib: str) -> None:
    # numpy has no sign of bools and squares them in int8; torch gave the bools back and int64.
    bools = np.array([True, False])
    with pytest.raises(TypeError):
        np.sign(bools)
    with pytest.raises(TypeError, match=r"^sign: .*\(inputs: "):
        ab.sign(_on(lib, bools))
    squared = ab.square(_on(lib, bools))
    assert squared.library == lib
    assert squared.numpy().dtype == np.square(bools).dtype == np.int8 and squared.numpy().tolist() == [1, 0]
    ints = np.array([-2, 0, 3], np.int16)  # other dtypes as before
    assert ab.sign(_on(lib, ints)).numpy().tolist() == [-1, 0, 1]
    assert ab.square(_on(lib, ints)).numpy().dtype == np.int16


# Every finite float16 below -11.1: e^-x overflows float16 there, and computed in float16 the
# sigmoid was 0 where it is a subnormal (6.1e-6 at -12, 1.2e-7 at -16) or a small normal.
HALF_TAIL = np.arange(-17.0, -11.0, 0.0625, dtype=np.float16)


@pytest.mark.parametrize("lib", ["numpy", *LIBRARIES[1:]])  # (array_api_strict has no float16)
def test_float16_sigmoid_is_the_float32_value_rounded_once(lib: str) -> None:
    x = np.concatenate([HALF_TAIL, EDGES.astype(np.float16)])
    with np.errstate(all="ignore"):
        want = (1.0 / (1.0 + np.exp(-x.astype(np.float32)))).astype(np.float16)
        found = ab.sigmoid(ab.tensor(x) if lib == "numpy" else _on(lib, x)).numpy()
    assert found.dtype == np.float16
    np.testing.assert_array_equal(found, want)
    assert np.all(found[: HALF_TAIL.size] > 0)


def test_float16_softplus_gradient_is_the_sigmoid_in_the_tail_too() -> None:
    x = ab.tensor(HALF_TAIL, requires_grad=True)
    (g,) = ab.grad(ab.softplus(x).sum(), [x])
    np.testing.assert_array_equal(g.numpy(), ab.sigmoid(x).numpy())
    assert np.all(g.numpy() > 0)


def test_float16_sigmoid_matches_torch() -> None:
    torch = pytest.importorskip("torch")
    x = np.array([-12.0, -16.0, -11.0, -3.0, 0.0, 5.0, 12.0], np.float16)
    np.testing.assert_array_equal(ab.sigmoid(ab.tensor(x)).numpy(), torch.sigmoid(torch.from_numpy(x)).numpy())


# A nan that makes a selection's output nan: the comparison is undecided, and the gradient passes
# to both inputs, as in PyTorch (it was 0 to both, which hid a nan gradient from a backward check).
NAN_X = np.array([np.nan, 1.0, 2.0, np.nan, 3.0])
NAN_Y = np.array([0.0, np.nan, 1.0, np.nan, 3.0])


def _selection_grads(name: str) -> list[np.ndarray]:
    x, y = ab.tensor(NAN_X, requires_grad=True), ab.tensor(NAN_Y, requires_grad=True)
    return [g.numpy() for g in ab.grad(getattr(ab, name)(x, y).sum(), [x, y])]


def test_a_nan_output_of_maximum_minimum_and_relu_passes_the_gradient() -> None:
    # nan, nan, a decided pair, nan twice, a tie (shared)
    x_max, y_max = _selection_grads("maximum")
    np.testing.assert_array_equal(x_max, [1.0, 1.0, 1.0, 1.0, 0.5])
    np.testing.assert_array_equal(y_max, [1.0, 1.0, 0.0, 1.0, 0.5])
    x_min, y_min = _selection_grads("minimum")
    np.testing.assert_array_equal(x_min, [1.0, 1.0, 0.0, 1.0, 0.5])
    np.testing.assert_array_equal(y_min, [1.0, 1.0, 1.0, 1.0, 0.5])
    x = ab.tensor([np.nan, -1.0, 0.0, 2.0], requires_grad=True)
    np.testing.assert_array_equal(ab.grad(ab.relu(x).sum(), [x])[0].numpy(), [1.0, 0.0, 0.0, 1.0])
    # a nan gradient from above now reaches the nan input (0 * nan made it 0 before)
    (g,) = ab.grad(ab.square(ab.relu(x)).sum(), [x])
    assert np.isnan(g.numpy()[0]) and g.numpy()[1:].tolist() == [0.0, 0.0, 4.0]


def test_nan_selections_match_torch() -> None:
    torch = pytest.importorskip("torch")
    for name in ("maximum", "minimum"):
        xt, yt = torch.tensor(NAN_X, requires_grad=True), torch.tensor(NAN_Y, requires_grad=True)
        want = torch.autograd.grad(getattr(torch, name)(xt, yt).sum(), [xt, yt])
        for found, expected in zip(_selection_grads(name), want, strict=True):
            np.testing.assert_array_equal(found, expected.numpy())
    xt = torch.tensor([np.nan, -1.0, 0.0, 2.0], requires_grad=True)
    x = ab.tensor([np.nan, -1.0, 0.0, 2.0], requires_grad=True)
    np.testing.assert_array_equal(
        ab.grad(ab.relu(x).sum(), [x])[0].numpy(), torch.autograd.grad(torch.relu(xt).sum(), [xt])[0].numpy()
    )


@pytest.mark.parametrize("lib", LIBRARIES)
def test_mixing_libraries_is_an_error_naming_both(lib: str) -> None:
    x = _on(lib, np.ones(3))
    with pytest.raises(MixedArraysError, match=r"two libraries.*numpy|numpy.*two libraries|float64\[3\]"):
        ab.clip(x, a_min=np.zeros(3))
    with pytest.raises(MixedArraysError, match="two libraries"):
        tanh_backward(x, np.ones(3))
    with pytest.raises(TypeError, match="clip: a_min and a_max are numbers or arrays, not Tensors"):
        ab.clip(x, a_min=ab.tensor(0.0))


def test_bfloat16_sigmoid_is_the_float32_value_rounded_once() -> None:
    # PyTorch's bfloat16 took 1 / (1 + e^-x) in bfloat16, three roundings: up to 0.84% off
    # (0.003738 at x = -5.59, exact 0.003707, PyTorch 0.003708); now the float32 value rounded
    # once, PyTorch's.
    torch = pytest.importorskip("torch")
    x = torch.linspace(-30.0, 10.0, 401, dtype=torch.float64).bfloat16()
    found = ab.sigmoid(ab.tensor(x)).data
    assert found.dtype == torch.bfloat16
    want = (1.0 / (1.0 + torch.exp(-x.float()))).bfloat16()
    assert torch.equal(found, want)
    assert torch.equal(found, torch.sigmoid(x))


def test_astype_takes_the_name_of_a_dtype_numpy_lacks() -> None:
    # numpy cannot spell "bfloat16", and the name reached torch as a str: "astype() received an
    # invalid combination of arguments - got (copy=bool, dtype=str)", where "float32" worked.
    torch = pytest.importorskip("torch")
    x = ab.tensor(torch.tensor([1.0, 1.00390625, 3.0e38]), requires_grad=True)
    narrow = ab.astype(x, "bfloat16")
    assert narrow.data.dtype == torch.bfloat16 and torch.equal(narrow.data, x.data.bfloat16())
    (grad,) = ab.grad(ab.astype(narrow, "float32").sum(), [x])
    assert grad.data.dtype == torch.float32 and torch.equal(grad.data, torch.ones(3))
    with pytest.raises(TypeError, match=r"^astype: "):  # a name that is no dtype is still refused
        ab.astype(x, "sin")


@pytest.mark.parametrize("lib", LIBRARIES)
def test_where_with_a_python_or_numpy_scalar_condition_works_on_every_library(lib: str) -> None:
    # numpy takes where(True, 0.0, x); torch raised its own TypeError ("where() received an
    # invalid combination of arguments") and array-api-strict "`condition` must be an Array".
    x0, y0 = np.array([1.0, np.inf]), np.array([3.0, 4.0])
    for condition in (True, False, 1, 0, np.bool_(True), np.float64(0.0)):
        for x, y in ((0.0, x0), (x0, 0.0), (x0, y0)):
            on_numpy = [ab.tensor(v) if isinstance(v, np.ndarray) else v for v in (x, y)]
            on_lib = [_on(lib, v) if isinstance(v, np.ndarray) else v for v in (x, y)]
            found, want = ab.where(condition, *on_lib), ab.where(condition, *on_numpy)
            np.testing.assert_array_equal(found.numpy(), want.numpy())
    t = ab.Tensor(library(lib).from_numpy(x0), requires_grad=True)
    (g,) = ab.grad(ab.where(True, t, 0.0).sum(), [t])
    np.testing.assert_array_equal(g.numpy(), [1.0, 1.0])


@pytest.mark.parametrize("lib", ["numpy", *LIBRARIES[1:]])  # (array_api_strict has no float16)
def test_a_large_cotangent_meets_the_partial_not_a_factor_of_it(lib: str) -> None:
    # The rules multiply the cotangent by the whole partial derivative, as PyTorch does: a large
    # cotangent (float16 loss scaling) times a factor first overflowed where the gradient fits.
    # float16: d(x^2)/dx at 1e-3 with cotangent 40000 was inf (grad * 2 first), PyTorch 80; d(x/y)/dy
    # at x = 300, y = 100 with cotangent 60000 was -inf (grad * out first), PyTorch -1800.
    as_lib = (lambda a: ab.tensor(a)) if lib == "numpy" else (lambda a: _on(lib, a))
    half = np.float16
    small, exponent = np.array([1e-3, 2e-3, 0.5], half), np.array([2.0, 1.5, 3.0], half)
    large = np.array([40000, 60000, 30000], half)
    cases = [  # (name, f, x, y, the cotangent or tangent, d/dx or d/dy, the expected product)
        ("x ** 2", lambda x, y: x**2, small, exponent, large, 0, [80.0, 240.0, 30000.0]),
        ("x ** 3", lambda x, y: x**3, small, exponent, large, 0, [0.12, 0.72, 22500.0]),
        ("square", lambda x, y: ab.square(x), small, exponent, large, 0, [80.0, 240.0, 30000.0]),
        ("x ** y", lambda x, y: x**y, small, exponent, large, 0, [80.0, 4.02e3, 22500.0]),
        ("x / y", lambda x, y: x / y, np.array([300, 600, 3], half), np.array([100, 200, 2], half), large, 1, None),
    ]
    for name, f, x0, y0, v, wrt, want in cases:
        if want is None:  # d(x/y)/dy = -x / y^2; its jvp, (dx - out dy) / y, overflows as PyTorch's does
            want = -v.astype(np.float64) * x0 / y0.astype(np.float64) ** 2
        x, y = as_lib(x0).requires_grad_(), as_lib(y0).requires_grad_()
        (g,) = ab.grad(f(x, y), [(x, y)[wrt]], grad_outputs=[as_lib(v)])
        assert g.numpy().dtype == half, name
        np.testing.assert_allclose(g.numpy().astype(np.float64), want, rtol=2e-2, err_msg=name)  # (x^2 is subnormal)
        if name != "x / y":
            directions = (as_lib(v), as_lib(np.zeros(3, half)))
            _, tangent = ab.functional.jvp(f, (as_lib(x0), as_lib(y0)), directions)
            np.testing.assert_allclose(tangent.numpy().astype(np.float64), want, rtol=2e-2, err_msg=name)


@pytest.mark.parametrize("lib", LIBRARIES)
def test_bools_sum_as_numpys_and_a_bool_product_a_library_lacks_raises_naming_the_op(lib: str) -> None:
    # arrays.md: sums of bools are numpy's int64 on every library; where the library has no such
    # computation (bool matrix products on torch and array-api-strict, bool einsum on the latter),
    # the op raises, naming itself.
    mask = np.array([[True, False], [True, True]])
    total = ab.sum(_on(lib, mask))
    assert total.library == lib and total.numpy().dtype == np.int64 and total.item() == 3
    with pytest.raises((TypeError, NotImplementedError), match=r"^matmul: "):
        ab.matmul(_on(lib, mask), _on(lib, mask))
    if lib == "array_api_strict":
        with pytest.raises(TypeError, match=r"^einsum: "):
            ab.einsum("ij,jk->ik", _on(lib, mask), _on(lib, mask))
