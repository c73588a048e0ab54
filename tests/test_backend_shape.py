"""Shape, indexing and linalg ops across array libraries: what the registry-driven suite cannot state.

Repeated indices accumulate on every library (its own ``scatter_add`` extra, and the op); numpy's
fast forwards (``backends/numpy.py``) equal the general forwards bit for bit; the routes built
from the standard alone (flat positions for indexing, take/concat for ``pad``) equal numpy's own
indexing and ``np.pad`` when run on numpy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp.backends import MixedArraysError, library
from autobp.backends import numpy as numpy_backend
from autobp.ops.padding import pad_by_copies, pad_sources
from autobp.ops.positions import as_key, flat_positions
from autobp.ops.registry import REGISTRY
from autobp.ops.shape.padding import PAD_MODES
from autobp.testing.samples import samples_for
from autobp.testing.strategies import advanced_indices, basic_indices, shapes
from tests.conftest import library_or_skip

LIBRARIES = ["numpy", "torch", "array_api_strict", "cupy"]


@pytest.mark.parametrize("name", LIBRARIES)
def test_the_scatter_add_extra_accumulates_repeated_positions(name: str) -> None:
    xp = library_or_skip(name)
    target = xp.from_numpy(np.zeros(4), None)
    index = xp.from_numpy(np.array([0, 2, 0, 0, 3]), None)
    values = xp.from_numpy(np.array([1.0, 10.0, 100.0, 1000.0, 5.0]), None)
    result = xp.to_numpy(xp.scatter_add(target, index, values))
    # Position 0 is hit three times: each value counts, not only the last one written.
    np.testing.assert_array_equal(result, [1101.0, 0.0, 10.0, 5.0])


@pytest.mark.parametrize("name", LIBRARIES)
@pytest.mark.parametrize(
    "index",
    [
        [0, 0, 2, 0],
        ([1, 1, 0], [2, 2, 2]),
        (slice(None), [3, -1, 3]),
        ([1, 1], slice(None, None, -1)),
    ],
    ids=["list", "two-arrays", "slice-then-array", "array-then-negative-step"],
)
def test_repeated_indices_accumulate_in_the_gradient_on_every_library(name: str, index: Any) -> None:
    xp = library_or_skip(name)
    x = np.arange(12.0).reshape(3, 4) if isinstance(index, tuple) else np.arange(4.0)
    rng = np.random.default_rng(0)
    cotangent = rng.standard_normal(np.shape(x[index]))
    want = np.zeros_like(x)
    np.add.at(want, index, cotangent)  # numpy's own accumulate, the oracle
    leaf = ab.tensor(xp.from_numpy(x, None), requires_grad=True)
    (grad,) = ab.grad([leaf[index]], [leaf], grad_outputs=[ab.tensor(xp.from_numpy(cotangent, None))])
    assert grad.library == xp.name
    np.testing.assert_allclose(grad.numpy(), want, rtol=1e-12, atol=1e-12)


FAST = sorted(
    name
    for name in numpy_backend.FORWARDS
    if name in REGISTRY and REGISTRY[name].forward is not numpy_backend.FORWARDS[name]
)


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in FAST
        if REGISTRY[n].declared.__module__.startswith(("autobp.ops.shape", "autobp.ops.indexing", "autobp.ops.linalg"))
    ],
)
@given(data=st.data())
def test_numpy_fast_forwards_equal_the_general_forwards_bit_for_bit(name: str, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    # (numpy returns a scalar for some 0-d results, np.matmul included: Tensor wraps either as an array.)
    fast = np.asarray(opdef.numpy_forward(*sample.arrays, **sample.kwargs))
    general = np.asarray(opdef.forward(*sample.arrays, **sample.kwargs))
    assert fast.dtype == general.dtype and fast.shape == general.shape
    assert np.array_equal(fast, general), f"{name}: numpy's fast forward differs from the general one"


@given(data=st.data())
def test_flat_positions_follow_numpy_indexing(data: st.DataObject) -> None:
    # The route libraries take where their own indexing means less than numpy's, run on numpy:
    # reading and adding at the positions must match numpy's own indexing exactly.
    shape = data.draw(shapes(), label="shape")
    index = data.draw(st.one_of(basic_indices(shape), advanced_indices(shape)), label="index")
    xp = library("numpy")
    x = np.arange(float(np.prod(shape))).reshape(shape) * 1.5 - 3.0
    positions, result_shape = flat_positions(xp, shape, as_key(xp, x, index), "cpu")
    assert result_shape == x[index].shape
    np.testing.assert_array_equal(np.take(x.reshape(-1), positions.reshape(-1)).reshape(result_shape), x[index])
    values = np.random.default_rng(1).standard_normal(result_shape)
    want = np.zeros(shape)
    np.add.at(want, index if not isinstance(index, list) else np.asarray(index, dtype=np.intp), values)
    got = np.zeros(int(np.prod(shape)))
    np.add.at(got, positions.reshape(-1), values.reshape(-1))
    np.testing.assert_allclose(got.reshape(shape), want, rtol=1e-12, atol=1e-12)


def test_pad_sources_copy_what_np_pad_copies() -> None:
    # Widths past the axis's length too, where numpy mirrors or wraps more than once.
    for size in range(1, 5):
        for before in range(0, 10):
            for after in range(0, 10):
                for mode in ("edge", "reflect", "symmetric", "wrap"):
                    want = np.pad(np.arange(size), (before, after), mode).tolist()  # type: ignore[call-overload]
                    assert pad_sources(size, before, after, mode) == want, (size, before, after, mode)


@pytest.mark.parametrize("mode", PAD_MODES)
def test_pad_by_copies_equals_np_pad_bit_for_bit(mode: str) -> None:
    x = np.random.default_rng(2).standard_normal((2, 3, 1))
    widths = [(1, 2), (0, 4), (3, 0)]
    kwargs = {"constant_values": 1.5} if mode == "constant" else {}
    want = np.pad(x, widths, mode, **kwargs)  # type: ignore[call-overload]
    got = pad_by_copies(library("numpy"), x, widths, mode, **kwargs)
    assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("name", ["torch", "array_api_strict"])
def test_an_index_of_another_library_is_refused(name: str) -> None:
    xp = library_or_skip(name)
    x = ab.tensor([1.0, 2.0, 3.0])
    with pytest.raises(MixedArraysError, match="two libraries"):
        x[ab.tensor(xp.from_numpy(np.array([0, 1]), None))]


def test_pad_on_a_library_without_its_own_pad_takes_one_constant() -> None:
    library_or_skip("array_api_strict")
    x = ab.tensor(library("array_api_strict").from_numpy(np.ones((2, 2)), None))
    with pytest.raises(TypeError, match=r"pad: constant_values must be one number for array_api_strict arrays"):
        ab.pad(x, 1, constant_values=((1.0, 2.0), (3.0, 4.0)))


# Keys whose advanced indices (arrays, and ints beside them) a slice, None or ... separates: numpy
# puts their axes first, torch's own indexing (ints read as basic indices) does not.
SEPARATED = [
    (0, slice(None), [0, 1]),
    (slice(None), 0, slice(None), [0, 1, 0]),
    (0, slice(None), 0, [1, 0]),
    (None, 0, [0, 1], slice(None), 0),
    (np.array(1), slice(None), np.array([0, 2])),
    ([1, 0], slice(None, None, -1), [0, 2]),
    (0, slice(None), np.array([True, False, True, True])),
    (0, slice(None), np.arange(20).reshape(4, 5) % 3 == 0),
    (slice(None), [0, 1], 1, [2, 3]),  # adjacent: each library's own indexing
]


@pytest.mark.parametrize("name", LIBRARIES)
@pytest.mark.parametrize("index", SEPARATED, ids=[f"key{i}" for i in range(len(SEPARATED))])
def test_separated_advanced_indices_read_and_write_as_numpy(name: str, index: Any) -> None:
    xp = library_or_skip(name)
    x = np.arange(120.0).reshape(2, 3, 4, 5)
    want = x[index]
    rng = np.random.default_rng(1)
    cotangent = rng.standard_normal(want.shape)
    want_grad = np.zeros_like(x)
    np.add.at(want_grad, index, cotangent)
    leaf = ab.tensor(xp.from_numpy(x, None), requires_grad=True)
    got = leaf[index]
    assert got.shape == want.shape
    np.testing.assert_array_equal(got.numpy(), want)
    (grad,) = ab.grad([got], [leaf], grad_outputs=[ab.tensor(xp.from_numpy(cotangent, None))])
    np.testing.assert_array_equal(grad.numpy(), want_grad)
    if name == "array_api_strict":
        return  # no in-place writes there (docs/arrays.md)
    values = 100.0 + np.arange(want.size, dtype=float).reshape(want.shape)
    expected = x.copy()
    expected[index] = values
    target = ab.tensor(xp.from_numpy(x, None))
    target[index] = ab.tensor(xp.from_numpy(values, None))
    np.testing.assert_array_equal(target.numpy(), expected)


@pytest.mark.parametrize("name", ["numpy", "torch"])
@pytest.mark.parametrize("index", [slice(None, None, -1), (1, slice(None, None, -2)), (slice(2, 0, -1), [3, 0])])
def test_writes_through_negative_steps_land_where_numpy_puts_them(name: str, index: Any) -> None:
    xp = library_or_skip(name)
    x = np.arange(12.0).reshape(3, 4)
    values = -1.0 - np.arange(x[index].size, dtype=float).reshape(x[index].shape)
    expected = x.copy()
    expected[index] = values
    target = ab.tensor(xp.from_numpy(x, None))
    target[index] = ab.tensor(xp.from_numpy(values, None))  # torch's own slices step forward only
    np.testing.assert_array_equal(target.numpy(), expected)


REPEATED_WRITES = [
    (np.arange(10000) * 7 % 3,),  # torch's index_put_ spreads this over threads
    (np.arange(600) % 3 - 3, slice(None)),
    (slice(None), np.arange(700) * 5 % 4),
    (np.arange(300) % 3, np.arange(300) * 7 % 4),
    (np.array([[0, 0], [1, 0]]), slice(None, None, -1), np.array([2, 2])),  # the flat-position route
]


@pytest.mark.parametrize("name", ["numpy", "torch", "cupy"])
@pytest.mark.parametrize("index", REPEATED_WRITES, ids=[f"key{i}" for i in range(len(REPEATED_WRITES))])
def test_a_write_at_repeated_positions_leaves_the_last_value_as_numpy_does(name: str, index: Any) -> None:
    # numpy assigns in order, so where an index array names a position twice the last value
    # stays; torch's index_put_ leaves the order open: t[idx] = v with 10000 writes into 5
    # elements kept values from the middle ([4999, 4998, ...] where numpy has [9995, ...]).
    xp = library_or_skip(name)
    x = np.zeros((3, 4, 5))
    values = 1.0 + np.arange(x[index].size, dtype=float).reshape(x[index].shape)
    for written in (values, values[(0,) * (values.ndim - 1)]):  # the whole selection, and one row broadcast
        expected = x.copy()
        expected[index] = written
        target = ab.tensor(xp.from_numpy(x, None))
        target[index] = ab.tensor(xp.from_numpy(np.ascontiguousarray(written), None))
        np.testing.assert_array_equal(target.numpy(), expected)


@pytest.mark.parametrize("name", LIBRARIES)
@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "uint16", "int32", "uint32"])
@pytest.mark.parametrize("native", [False, True], ids=["numpy-index", "library-index"])
def test_integer_index_arrays_of_any_width_are_positions(name: str, dtype: str, native: bool) -> None:
    # torch reads a uint8 index as a boolean mask (x[[1, 0]] gave one row) and refuses int8/int16.
    xp = library_or_skip(name)
    x = np.arange(6.0).reshape(3, 2)
    positions = np.array([1, 0, 1], dtype=dtype)
    index = xp.from_numpy(positions, None) if native and name != "numpy" else positions
    leaf = ab.tensor(xp.from_numpy(x, None), requires_grad=True)
    got = leaf[index]
    np.testing.assert_array_equal(got.numpy(), x[positions])
    (grad,) = ab.grad([got.sum()], [leaf])
    np.testing.assert_array_equal(grad.numpy(), [[1.0, 1.0], [2.0, 2.0], [0.0, 0.0]])  # row 1 twice
    if name == "array_api_strict":
        return  # no in-place writes there
    target = ab.tensor(xp.from_numpy(x, None))
    target[index, 1] = -1.0
    np.testing.assert_array_equal(target.numpy(), [[0.0, -1.0], [2.0, -1.0], [4.0, 5.0]])


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize(
    "call",
    [
        lambda x: ab.reshape(x, (6.9,)),
        lambda x: ab.reshape(x, (2, 3.5)),
        lambda x: ab.broadcast_to(ab.reshape(x, (1, 6)), (2.7, 6)),
        lambda x: ab.transpose(ab.reshape(x, (2, 3)), (1.5, 0)),
        lambda x: ab.transpose(ab.reshape(x, (2, 3)), (0.9, 1)),
    ],
    ids=["reshape-6.9", "reshape-3.5", "broadcast_to-2.7", "transpose-1.5", "transpose-0.9"],
)
def test_a_float_in_a_shape_or_axes_is_refused_on_every_library(name: str, call: Any) -> None:
    # numpy refuses a float size or axis; the general forwards (torch, array-api-strict) truncated
    # it with int(): reshape(x, (6.9,)) gave 6 elements, transpose(x, (0.9, 1)) the identity.
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.arange(6.0), None))
    with pytest.raises(TypeError, match=r"(reshape|broadcast_to|transpose): .*'float' object cannot be interpreted"):
        call(x)


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
def test_a_shape_given_as_a_0d_integer_array_is_taken_as_numpy_takes_it(name: str) -> None:
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.arange(6.0), None))
    assert tuple(ab.reshape(x, np.array(6)).shape) == (6,)
    assert tuple(ab.reshape(x, (np.array(2), np.int64(3))).shape) == (2, 3)


@pytest.mark.parametrize("name", ["numpy", "torch"])
@pytest.mark.parametrize(
    "write",
    [
        lambda b: b.__setitem__((0, 0), 5.0),
        lambda b: b.__setitem__(0, 5.0),
        lambda b: b[:, 1].__setitem__(0, 5.0),
        lambda b: b[0].__setitem__(0, 5.0),
        lambda b: b[1][1:].fill_(5.0),
        lambda b: ab.squeeze(b[2:]).add_(1.0),
        lambda b: b.fill_(5.0),
        lambda b: b.zero_(),
    ],
    ids=[
        "one-element",
        "one-row",
        "through-a-column-view",
        "through-a-row-view",
        "through-a-view-of-a-row-view",
        "through-a-squeezed-row",
        "fill_",
        "zero_",
    ],
)
def test_a_write_into_a_broadcast_view_is_refused_on_every_library(name: str, write: Any) -> None:
    # numpy's broadcast_to is a read-only view, and so is every view of it; torch's expand is a
    # writeable one whose rows share memory: b[0, 0] = 5 wrote x[0], so every row of b changed (3
    # elements for the 1 written), and its row b[0], whose strides are a plain row's, is x itself.
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.zeros(4), None))
    b = ab.broadcast_to(x, (3, 4))
    with pytest.raises(RuntimeError, match=r"tensor .*float64\[.*\] .*broadcast view"):
        write(b)
    np.testing.assert_array_equal(xp.to_numpy(x.data), np.zeros(4))
    assert x._version == 0


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_writes_into_an_array_of_no_elements_are_taken(name: str) -> None:
    # torch gives an array of no elements zero strides: it is no broadcast view (no element is shared).
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.zeros((2, 0, 3)), None))
    x[...] = 1.0
    x.fill_(2.0)
    assert x._version == 2


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize(
    ("fill", "error"), [(float("nan"), ValueError), (float("inf"), OverflowError), (-float("inf"), OverflowError)]
)
def test_pad_of_integers_with_a_non_finite_constant_raises_as_numpy_does(
    name: str, fill: float, error: type[Exception]
) -> None:
    # np.pad raises ("cannot convert float NaN to integer"); the route from the standard alone
    # filled int32 with -2147483648, torch raised its own RuntimeError.
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.array([1, 2], np.int32), None))
    with pytest.raises(error, match=r"pad: cannot convert float (NaN|infinity) to integer"):
        ab.pad(x, 1, constant_values=fill)


@pytest.mark.parametrize("name", ["numpy", "torch"])
@pytest.mark.parametrize("index", [(0, 1), (-1, -3), (np.int64(1), 2)], ids=["ints", "negative", "numpy-int"])
def test_an_element_read_by_ints_is_a_copy_as_numpys_scalar_on_every_library(name: str, index: Any) -> None:
    # numpy's x[0, 1] is a scalar, a copy; torch's is a 0-d view: a later x[0, 1] = 5 changed the
    # value read before (0.0 became 5.0) and v.fill_(9) wrote into x.
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.zeros((2, 3)), None))
    v = x[index]
    x[index] = 5.0
    assert float(v.item()) == 0.0
    v.fill_(9.0)
    assert float(x[index].item()) == 5.0
    # With an Ellipsis (or a slice, or None) numpy gives a view, and so does every library.
    w = x[(*index, ...)]
    w.fill_(7.0)
    assert float(x[index].item()) == 7.0


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
def test_pad_takes_a_numpy_integer_constant_on_every_library(name: str) -> None:
    # np.float64(5.0) was taken; np.int64(5) and np.float32(5) were refused as "not one number" on
    # torch and array-api-strict.
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.zeros(2), None))
    for fill in (np.int64(5), np.float32(5.5)):
        got = xp.to_numpy(ab.pad(x, 1, constant_values=fill).data)
        np.testing.assert_array_equal(got, np.pad(np.zeros(2), 1, constant_values=fill))


MISMATCHED_MASKS = [
    (np.array([True, False]),),
    (np.array([True, False]), slice(None, None, -1)),
    (slice(None), np.array([True, False])),
    (np.array([[True, False], [False, True]]),),
    (Ellipsis, np.array([True, False, True])),
    (0, None, np.array([True, True, False])),
]


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize(
    "index", MISMATCHED_MASKS, ids=["short", "short-negative-step", "axis-1", "2d", "ellipsis", "int-none"]
)
def test_a_mask_of_another_shape_than_its_axes_is_refused_on_every_library(name: str, index: Any) -> None:
    # The flat-position route (array-api-strict, torch's negative steps) read a short mask as the
    # integer arrays of its true elements: x[[True, False]] on 3 rows gave row 0, where numpy raises.
    _refused_by_every_indexing_op(name, index, r"(?s){op}: .*boolean index did not match|mask", 2)


def _refused_by_every_indexing_op(name: str, index: Any, message: str, values: int) -> None:
    """getitem and scatter_add (and setitem on torch, which writes in place) of a (3, 4) array
    raise an IndexError whose text matches ``message`` with ``{op}`` the op's name; a refused
    write leaves the array as it was."""
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.arange(12.0).reshape(3, 4), None))
    with pytest.raises(IndexError, match=message.format(op="getitem")):
        x[index]
    with pytest.raises(IndexError, match=message.format(op="scatter_add")):
        ab.scatter_add(ab.tensor(xp.from_numpy(np.ones(values), None)), index, (3, 4))
    if name == "torch":
        with pytest.raises(IndexError, match=message.format(op="setitem")):
            x[index] = -1.0
        np.testing.assert_array_equal(xp.to_numpy(x.data), np.arange(12.0).reshape(3, 4))


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize(
    "index",
    [
        (np.array(-4), slice(None, None, -1)),
        (slice(None, None, -1), np.array(-5)),
        (slice(None, None, -1), np.array(4)),
    ],
    ids=["row-negative", "column-negative", "column-past-the-end"],
)
def test_a_0d_index_array_out_of_bounds_is_refused_on_every_library(name: str, index: Any) -> None:
    # The flat-position route skipped the bounds check of 0-d index arrays: x[::-1, np.array(-5)] of a
    # (3, 4) array read [7, 3, 11], and t[::-1, np.array(4)] = -1 on torch wrote column 0.
    _refused_by_every_indexing_op(name, index, r"{op}: .*out of bounds for (axis|dimension) [01] with size [34]", 3)


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize(
    ("shape", "index"),
    [((1, 4), (np.zeros(0, bool),)), ((3, 2, 4), (np.zeros((0, 2), bool), slice(None, None, -1)))],
    ids=["empty", "empty-then-negative-step"],
)
def test_an_empty_mask_selects_nothing_as_numpy_reads_it(name: str, shape: tuple[int, ...], index: Any) -> None:
    # numpy lets a mask axis of 0 elements stand for any axis (torch's own indexing refuses it).
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.zeros(shape), None))
    if name == "torch" and len(index) == 1:  # torch's own indexing refuses it: an error, never another value
        with pytest.raises(IndexError, match=r"^getitem: .*mask"):
            x[index]
        return
    assert tuple(x[index].shape) == np.zeros(shape)[index].shape


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize(
    ("shape", "index", "message"),
    [
        ((3, 4), (Ellipsis, Ellipsis), "single ellipsis"),
        ((1, 0), (np.array([1]),), "out of bounds for axis 0 with size 1"),
        ((1, 0, 0), (np.array([-2]),), "out of bounds for axis 0 with size 1"),
        ((2, 1), (slice(None, -4), np.array([-2, -2])), "out of bounds for axis 1 with size 1"),
    ],
    ids=["two-ellipses", "past-the-end-of-an-empty-array", "negative-of-an-empty-array", "into-an-empty-result"],
)
def test_indices_numpy_refuses_are_refused_on_every_library(
    name: str, shape: tuple[int, ...], index: Any, message: str
) -> None:
    # torch took x[..., ...], and checked no index array against an array of 0 elements: x[[1]] of
    # a (1, 0) array gave a (1, 0) result where numpy raises.
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.zeros(shape), None))
    with pytest.raises(IndexError, match=rf"getitem: .*{message}"):
        x[index]
    if name == "torch" and 0 in shape:
        with pytest.raises(IndexError, match=rf"setitem: .*{message}"):
            x[index] = 1.0


@pytest.mark.parametrize("name", ["numpy", "torch", "array_api_strict"])
@pytest.mark.parametrize(
    ("shape", "index"),
    [
        ((2, 3), (np.array(False), [[2]])),
        ((3, 0), (1, np.array(False), [[0]])),
        ((0, 3), ([[0], [0]], np.array([], int))),
    ],
    ids=["0d-false-mask", "int-and-false-mask", "empty-array"],
)
def test_advanced_indices_that_select_nothing_are_not_bounds_checked_as_in_numpy(
    name: str, shape: tuple[int, ...], index: Any
) -> None:
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.zeros(shape), None))
    assert tuple(x[index].shape) == np.zeros(shape)[index].shape


@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_the_source_of_a_broadcast_view_and_copies_of_its_rows_take_writes(name: str) -> None:
    # Only what shares the broadcast's elements is refused: the tensor broadcast from (whose
    # writes every row of the view shows, as in numpy), a copy of a row, and a slice of another
    # tensor made by the same op are written as usual.
    xp = library_or_skip(name)
    x = ab.tensor(xp.from_numpy(np.zeros(4), None))
    b = ab.broadcast_to(x, (3, 4))
    row = b[0].copy()
    row[1] = 2.0
    x[0] = 1.0
    np.testing.assert_array_equal(xp.to_numpy(b.data), np.tile([1.0, 0.0, 0.0, 0.0], (3, 1)))
    np.testing.assert_array_equal(xp.to_numpy(row.data), [0.0, 2.0, 0.0, 0.0])
    plain = ab.tensor(xp.from_numpy(np.zeros((3, 4)), None))
    plain[0][1:].fill_(3.0)
    np.testing.assert_array_equal(xp.to_numpy(plain.data)[0], [0.0, 3.0, 3.0, 3.0])
