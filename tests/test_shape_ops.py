"""Shape ops: joining, splitting, padding and axis edits beyond what the registry suite checks.

Gradients of partly used outputs, inputs that need no gradient, mixed dtypes, tuple pad widths,
every pad mode, and error messages that name the op and the shapes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import autobp as ab


def rand(*shape: int, rng: int = 0, dtype: Any = np.float64) -> ab.Tensor:
    data = np.random.default_rng(rng).standard_normal(shape)
    return ab.tensor(data, dtype=dtype, requires_grad=True)


# -- expand_dims, squeeze, flatten ---------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, -1, (0, 2), (-1, 1)])
def test_expand_dims_matches_numpy_and_reshapes_back(axis: Any) -> None:
    x = rand(2, 3)
    y = ab.expand_dims(x, axis)
    assert y.shape == np.expand_dims(x.numpy(), axis).shape
    assert ab.gradgradcheck(lambda t: ab.expand_dims(t, axis) ** 2, x)


def test_expand_dims_error_names_op_and_axis() -> None:
    with pytest.raises(np.exceptions.AxisError, match="expand_dims: axis 3 is out of bounds for an array of dimension"):
        ab.expand_dims(ab.zeros(2, 3), 3)


def test_squeeze_all_or_chosen_axes() -> None:
    x = rand(1, 3, 1)
    assert ab.squeeze(x).shape == (3,)
    assert x.squeeze(-1).shape == (1, 3)
    assert ab.squeeze(x, (0, 2)).shape == (3,)
    ab.squeeze(x, 0).sum().backward()
    assert x.grad is not None and x.grad.shape == (1, 3, 1)


def test_squeeze_of_a_non_unit_axis_says_which_axis_and_shape() -> None:
    with pytest.raises(ValueError, match=r"squeeze: cannot squeeze axis 1 of shape \(1, 3, 1\): its size is 3, not 1"):
        ab.squeeze(ab.zeros(1, 3, 1), axis=1)


def test_flatten_is_c_order_and_differentiable() -> None:
    x = rand(2, 3)
    np.testing.assert_array_equal(x.flatten().numpy(), x.numpy().ravel())
    assert ab.gradgradcheck(lambda t: ab.flatten(t) ** 3, x)


# -- concatenate and stack -------------------------------------------------------------------------------
@pytest.mark.parametrize("axis", [0, 1, -1, None])
def test_concatenate_gradient_is_the_matching_slice(axis: int | None) -> None:
    a, b = rand(2, 3, rng=0), rand(2, 3, rng=1)
    out = ab.concatenate([a, b], axis=axis)
    weights = np.random.default_rng(2).standard_normal(out.shape)
    out.backward(weights)
    split_at = a.size if axis is None else a.shape[axis]
    flat = weights.ravel() if axis is None else weights
    first, second = np.split(flat, [split_at], axis=0 if axis is None else axis)
    assert a.grad is not None and b.grad is not None
    np.testing.assert_array_equal(a.grad.numpy(), first.reshape(a.shape))
    np.testing.assert_array_equal(b.grad.numpy(), second.reshape(b.shape))


def test_concatenate_skips_inputs_without_gradient_and_keeps_each_dtype() -> None:
    a = rand(2, dtype=np.float32)
    constant = ab.tensor([5.0, 6.0, 7.0])  # float64, no gradient
    out = ab.concatenate((a, constant))
    assert out.dtype == np.float64  # numpy's promotion
    out.sum().backward()
    assert a.grad is not None and a.grad.dtype == np.float32 and constant.grad is None
    assert ab.gradgradcheck(lambda t: ab.concatenate([t * t, constant, t]), rand(2))


def test_concatenate_shape_mismatch_error_names_op_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"concatenate: .*float64\[2, 3\], float64\[2, 2\]"):
        ab.concatenate([ab.zeros(2, 3), ab.zeros(2, 2)], axis=0)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_stack_gradient_is_each_position(axis: int) -> None:
    xs = [rand(2, 3, rng=i) for i in range(3)]
    out = ab.stack(xs, axis=axis)
    assert out.shape == np.stack([x.numpy() for x in xs], axis=axis).shape
    (out * ab.arange(3.0).reshape([3 if i == axis % 3 else 1 for i in range(3)])).sum().backward()
    for i, x in enumerate(xs):
        assert x.grad is not None
        np.testing.assert_array_equal(x.grad.numpy(), np.full((2, 3), float(i)))
    assert ab.gradgradcheck(lambda p, q: ab.stack([p * q, q], axis=axis), (xs[0], xs[1]))


def test_stack_error_names_op_and_shapes() -> None:
    with pytest.raises(ValueError, match=r"stack: .*float64\[2\], float64\[3\]"):
        ab.stack([ab.zeros(2), ab.zeros(3)])


# -- split ---------------------------------------------------------------------------------------------
def test_split_returns_a_list_and_unused_pieces_get_zero_gradient() -> None:
    x = rand(6, 2)
    pieces = ab.split(x, 3)
    assert isinstance(pieces, list) and [p.shape for p in pieces] == [(2, 2)] * 3
    (pieces[0] * 2.0 + pieces[2] ** 2).sum().backward()
    expected = np.zeros((6, 2))
    expected[:2] = 2.0
    expected[4:] = 2 * x.numpy()[4:]
    assert x.grad is not None
    np.testing.assert_allclose(x.grad.numpy(), expected)


@pytest.mark.parametrize("where", [[1, 3], [0, 2, 2], [5], [-1]])
def test_split_at_indices_matches_numpy(where: list[int]) -> None:
    x = rand(2, 4)
    got = ab.split(x, where, axis=-1)
    want = np.split(x.numpy(), where, axis=-1)
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g.numpy(), w)
    assert ab.gradgradcheck(lambda t: tuple(p**2 for p in ab.split(t, where, axis=1)), x)


def test_split_into_unequal_sections_is_an_error_naming_the_shape() -> None:
    with pytest.raises(ValueError, match=r"split: axis 0 of shape \(5, 2\) \(size 5\) does not divide into 2"):
        ab.split(ab.zeros(5, 2), 2)


# -- pad -------------------------------------------------------------------------------------------------
def test_pad_with_tuple_widths_slices_the_gradient_back() -> None:
    x = rand(2, 3)
    widths = ((1, 2), (0, 1))
    out = ab.pad(x, widths, constant_values=-1.0)
    np.testing.assert_array_equal(out.numpy(), np.pad(x.numpy(), widths, constant_values=-1.0))
    weights = np.random.default_rng(3).standard_normal(out.shape)
    out.backward(weights)
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), weights[1:3, 0:3])
    assert ab.gradgradcheck(lambda t: ab.pad(t * t, widths), x)


@pytest.mark.parametrize("mode", ["edge", "reflect", "symmetric", "wrap"])
def test_pad_copying_modes_add_the_copies_back(mode: str) -> None:
    x = rand(3, 2)
    widths = ((2, 3), (1, 0))
    out = ab.pad(x, widths, mode=mode)
    np.testing.assert_array_equal(out.numpy(), np.pad(x.numpy(), widths, mode=mode))
    out.sum().backward()
    # Each element's gradient counts its copies: pad the element numbers and count them.
    ids = np.arange(x.size).reshape(x.shape)
    counts = np.bincount(np.pad(ids, widths, mode=mode).ravel(), minlength=x.size).reshape(x.shape)
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), counts)
    assert ab.gradgradcheck(lambda t: ab.pad(t**2, widths, mode=mode), x)


def test_pad_accepts_a_dict_of_axes() -> None:
    x = rand(2, 3)
    assert ab.pad(x, {1: (0, 2)}).shape == (2, 5)
    assert ab.pad(x, {-2: 1}).shape == (4, 3)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"pad_width": -1}, ValueError, r"pad: pad widths must be non-negative, got -1"),
        ({"pad_width": ((1, 1), (1, 1), (1, 1))}, ValueError, r"pad: pad_width .* does not fit a 2-d array"),
        ({"pad_width": 1.5}, TypeError, r"pad: pad_width must be integers, got 1.5"),
        ({"pad_width": 1, "mode": "mean"}, ValueError, r"pad: mode 'mean' is not supported"),
    ],
    ids=["negative", "too-many-axes", "float", "mode"],
)
def test_pad_errors_name_op_and_argument(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ab.pad(ab.zeros(2, 3), **kwargs)


# -- dtypes ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "function",
    [
        lambda t: ab.concatenate([t, t], axis=1),
        lambda t: ab.stack([t, t * 2.0]),
        lambda t: ab.split(t, 2, axis=1)[1],
        lambda t: ab.pad(t, 1, constant_values=0.5),
        lambda t: ab.pad(t, (1, 0), mode="reflect"),
        lambda t: ab.expand_dims(t, 1),
        lambda t: ab.squeeze(ab.expand_dims(t, 0)),
        lambda t: ab.flatten(t),
    ],
    ids=["concatenate", "stack", "split", "pad", "pad-reflect", "expand_dims", "squeeze", "flatten"],
)
def test_float32_stays_float32_in_value_and_both_gradient_orders(function: Any) -> None:
    x = rand(2, 4, dtype=np.float32)
    out = function(x)
    assert out.dtype == np.float32
    (g,) = ab.grad((out**2).sum(), [x], create_graph=True)
    assert g.dtype == np.float32 and g.shape == x.shape
    (h,) = ab.grad(g.sum(), [x])
    assert h.dtype == np.float32


def test_split_of_a_0d_tensor_is_refused() -> None:
    with pytest.raises(ValueError, match="split: cannot split a 0-d tensor"):
        ab.split(ab.tensor(1.0), 2)


@pytest.mark.parametrize("where", [[1.7], np.array([1.5, 3.0])], ids=["list", "float-array"])
def test_split_at_a_float_index_is_refused_as_numpy_refuses_it(where: Any) -> None:
    # int() took 1.7 as 1: split(x, [1.7]) gave pieces of 1 and 3 where numpy raises.
    with pytest.raises(TypeError, match=r"split: .*1\.(7|5).* is not an integer"):
        ab.split(ab.zeros(4), where)


@pytest.mark.parametrize("sections", [np.array(2), np.int64(2), ab.tensor(np.array(2))], ids=["0d", "np-int", "tensor"])
def test_split_into_sections_given_as_a_0d_integer_is_numpys_split(sections: Any) -> None:
    pieces = ab.split(rand(4, 2), sections)
    assert [p.shape for p in pieces] == [(2, 2), (2, 2)]


def test_split_with_sections_of_no_integer_type_names_the_op() -> None:
    # Before: a bare "'float' object is not iterable" from inside split.
    with pytest.raises(TypeError, match=r"split: indices_or_sections must be an int or a sequence of ints, got 2\.0"):
        ab.split(ab.zeros(4), 2.0)


@pytest.mark.parametrize("widths", [{0: 1.5}, {-1: (0, 2.7)}], ids=["one-float", "float-in-a-pair"])
def test_pad_refuses_a_float_width_in_a_dict_as_elsewhere(widths: dict[int, Any]) -> None:
    # A dict's widths were written into an integer table: {0: 1.5} padded 1 on each side, silently.
    with pytest.raises(TypeError, match=r"pad: pad_width must be integers, got \{"):
        ab.pad(ab.zeros(2, 3), widths)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: ab.split(x, 3, axis=1.0),
        lambda x: ab.expand_dims(x, 1.5),
        lambda x: ab.squeeze(x, 0.0),
        lambda x: ab.sum(x, axis=1.0),
    ],
    ids=["split", "expand_dims", "squeeze", "sum"],
)
def test_a_float_axis_error_names_the_op_and_the_axis(call: Any) -> None:
    # Before: a bare "'float' object is not iterable" (split named nothing at all).
    with pytest.raises(TypeError, match=r"^(split|expand_dims|squeeze|sum): axis (1\.0|1\.5|0\.0) is not an integer"):
        call(ab.zeros(1, 3))
