"""The ops' rarer branches (autobp/ops): errors on PyTorch and array-api-strict arrays that name the op
as numpy's do, indexing that numpy's fast path never takes, op definitions refused by name, and
keyword Tensors that would lose their gradient."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops import nn as nn_ops
from autobp.ops.registry import op
from autobp.ops.shape.broadcasting import sum_to


def on_torch(values: Any) -> ab.Tensor:
    """``values`` as a Tensor of torch's; the test skips, saying why, where torch is not installed."""
    torch = pytest.importorskip("torch")
    return ab.Tensor(torch.tensor(np.asarray(values)))


def on_strict(values: Any) -> ab.Tensor:
    xps = pytest.importorskip("array_api_strict")
    return ab.Tensor(xps.asarray(np.asarray(values)))


LIBRARIES = {"torch": on_torch, "array_api_strict": on_strict}


# -- errors on other libraries, named as numpy's ------------------------------------------------------------
def test_a_bool_to_a_negative_integer_power_is_refused_as_numpy_refuses_it() -> None:
    with pytest.raises(ValueError, match="Integers to negative integer powers"):
        np.power(True, np.array([-1, 2]))
    with pytest.raises(ValueError, match=r"pow: Integers to negative integer powers are not allowed\. \(inputs: bool"):
        ab.pow(True, on_torch([-1, 2]))
    result = ab.pow(True, on_torch([0, 2]))  # non-negative powers go through
    np.testing.assert_array_equal(result.numpy(), np.power(True, np.array([0, 2])))


@pytest.mark.parametrize("make", LIBRARIES.values(), ids=LIBRARIES.keys())
def test_transpose_refuses_axes_that_are_not_a_permutation(make: Any) -> None:
    x = make([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"transpose: axes \(0, 0\) are not a permutation of the 2 axes"):
        ab.transpose(x, (0, 0))
    with pytest.raises(ValueError, match=r"transpose: axes \(0, 2\)"):
        ab.transpose(x, (0, 2))


def test_a_torch_runtime_error_is_named_by_the_op() -> None:
    with pytest.raises(RuntimeError, match=r"^reshape: .*\(inputs: torch float\w*\[3\]\)"):
        ab.reshape(on_torch([1.0, 2.0, 3.0]), (2,))


def test_a_runtime_error_from_a_numpy_forward_is_not_rewritten(scratch_ops: list[str]) -> None:
    @op("edges_runtime_error", arity=1)
    def failing(x: np.ndarray) -> np.ndarray:
        raise RuntimeError("edges: the forward's own error")

    scratch_ops.append("edges_runtime_error")
    with pytest.raises(RuntimeError, match=r"^edges: the forward's own error$"):
        failing(ab.tensor([1.0]))


@pytest.mark.parametrize("make", LIBRARIES.values(), ids=LIBRARIES.keys())
def test_pad_refuses_to_extend_an_empty_axis_except_with_constants(make: Any) -> None:
    with pytest.raises(ValueError, match="can't extend empty axis"):
        np.pad(np.zeros(0), 1, mode="edge")
    with pytest.raises(ValueError, match="pad: cannot extend an empty axis with mode 'reflect'"):
        ab.pad(make(np.zeros(0)), 1, mode="reflect")
    padded = ab.pad(make(np.zeros(0)), (1, 2), mode="constant", constant_values=3.0)
    np.testing.assert_array_equal(padded.numpy(), np.pad(np.zeros(0), (1, 2), constant_values=3.0))


def test_a_keyword_tensor_that_requires_grad_inside_a_tuple_is_refused() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    fill = ab.tensor(1.0, requires_grad=True)
    with pytest.raises(TypeError, match="pad: keyword argument 'constant_values' is a Tensor that requires grad"):
        ab.pad(x, 1, constant_values=(fill, 2.0))
    # a Tensor that needs no gradient is a value as any other
    padded = ab.pad(x, 1, constant_values=(ab.tensor(1.0), 2.0))
    np.testing.assert_array_equal(padded.numpy(), [1.0, 1.0, 2.0, 2.0])


def test_sum_to_s_forward_takes_a_python_number() -> None:
    result = sum_to.op.forward(2.5, ())  # type: ignore[attr-defined]
    assert isinstance(result, np.ndarray) and result.shape == () and result == 2.5


# -- indexing on libraries numpy's fast path does not cover ---------------------------------------------
@pytest.mark.parametrize("make", LIBRARIES.values(), ids=LIBRARIES.keys())
@pytest.mark.parametrize(
    "index",
    [True, False, np.int64(1), [], (np.int64(-1), None), ([1, 0], np.int32(2)), (slice(None), [True, False, True])],
    ids=["true", "false", "np-int", "empty-list", "np-int-none", "list-np-int", "mask"],
)
def test_getitem_matches_numpy_and_its_gradient_is_the_scatter(make: Any, index: Any) -> None:
    values = np.arange(6.0).reshape(2, 3)
    got = make(values)[index]
    expected = values[index]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got.numpy(), expected)
    # the adjoint: scatter_add of a gradient of the result's shape, against numpy's add.at
    grad = np.arange(1.0, 1.0 + expected.size).reshape(expected.shape)
    scattered = ab.scatter_add(make(grad), index, values.shape)
    want = np.zeros(values.shape)
    np.add.at(want, index, grad)
    np.testing.assert_array_equal(scattered.numpy(), want)


INDEX_ERRORS = [
    (5, "index 5 is out of bounds"),
    ((5, [0]), "index 5 is out of bounds for axis 0 with size 2"),
    ((-3, [0]), "index -3 is out of bounds for axis 0 with size 2"),
    ([0, 7], "out of bounds for axis 0 with size 2"),
    (([0, 1], [0, 1, 2]), "could not be broadcast together with shapes"),
    (np.array([0.5]), "integer or boolean type"),
    (([0], "a"), "only integers, slices, None, Ellipsis"),
    ((Ellipsis, [0], Ellipsis), "a single ellipsis"),
    (([0], 0, 0), "too many indices for array: array is 2-dimensional, but 3 were indexed"),
]


@pytest.mark.parametrize(("index", "message"), INDEX_ERRORS)
def test_getitem_errors_on_the_standard_s_arrays_say_what_numpy_says(index: Any, message: str) -> None:
    # array-api-strict has no advanced indexing of its own: autobp computes positions, and its errors
    values = np.arange(6.0).reshape(2, 3)
    with pytest.raises(IndexError):
        values[index]
    with pytest.raises(IndexError, match=r"^getitem: index .* does not fit shape \(2, 3\): .*" + message):
        on_strict(values)[index]


@pytest.mark.parametrize(("index", "message"), INDEX_ERRORS)
def test_getitem_errors_on_torch_name_the_op_the_index_and_the_shape(index: Any, message: str) -> None:
    # torch indexes natively: its own message, after the op, the index and the shape
    with pytest.raises((IndexError, TypeError), match=r"^getitem: index .* does not fit shape \(2, 3\): "):
        on_torch(np.arange(6.0).reshape(2, 3))[index]


@pytest.mark.parametrize("make", LIBRARIES.values(), ids=LIBRARIES.keys())
@pytest.mark.parametrize("index", [(Ellipsis, Ellipsis), (Ellipsis, 0, Ellipsis), (0, Ellipsis, [1], Ellipsis)])
def test_two_ellipses_are_refused_on_every_library_as_numpy_refuses_them(make: Any, index: Any) -> None:
    values = np.arange(6.0).reshape(2, 3)
    with pytest.raises(IndexError, match="an index can only have a single ellipsis"):
        values[index]
    with pytest.raises(IndexError, match=r"^getitem: index .*: an index can only have a single ellipsis"):
        make(values)[index]  # torch's own indexing took them
    with pytest.raises(IndexError, match=r"^scatter_add: index .*: an index can only have a single ellipsis"):
        ab.scatter_add(make(np.ones(3)), index, (2, 3))
    if make is on_torch:  # (array-api-strict arrays refuse every in-place write)
        target = make(values)
        with pytest.raises(IndexError, match="an index can only have a single ellipsis"):
            target[index] = 0.0
        np.testing.assert_array_equal(target.numpy(), values)


@pytest.mark.parametrize("make", LIBRARIES.values(), ids=LIBRARIES.keys())
def test_scatter_add_errors_name_the_op(make: Any) -> None:
    with pytest.raises(IndexError, match=r"^scatter_add: index .* does not fit shape \(3,\): .*out of bounds"):
        ab.scatter_add(make([1.0, 2.0]), [5, 0], (3,))
    with pytest.raises(IndexError, match=r"^scatter_add: index .* does not fit shape \(3,\)"):
        ab.scatter_add(make([1.0]), 4, (3,))


@pytest.mark.parametrize("make", LIBRARIES.values(), ids=LIBRARIES.keys())
def test_max_pool2d_of_integers_and_its_scatter_and_gather_match_numpy_s(make: Any) -> None:
    # integer inputs: no NaN to look for in the argmax scan; a tie (9, 9) goes to the first
    values = np.array([[[[3, -1, 4, 1], [5, 9, 2, 6], [-5, 3, 9, 9], [9, 7, 9, 3]]]])
    got = ab.max_pool2d(make(values), 2)
    np.testing.assert_array_equal(got.numpy(), [[[[9, 6], [9, 9]]]])
    assert ab.backends.namespace(got.data).dtype_name(got.dtype) == "int64"
    grad = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    scattered = nn_ops.max_pool2d_scatter(make(grad), make(values), 2)
    want = np.zeros((1, 1, 4, 4))
    want[0, 0, 1, 1], want[0, 0, 1, 3], want[0, 0, 3, 0], want[0, 0, 2, 2] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(scattered.numpy(), want)
    np.testing.assert_array_equal(scattered.numpy(), nn_ops.max_pool2d_scatter(grad, values, 2).numpy())
    gathered = nn_ops.max_pool2d_gather(make(want), make(values), 2)
    np.testing.assert_array_equal(gathered.numpy(), grad)


# -- op definitions --------------------------------------------------------------------------------------
def test_defjvp_with_the_wrong_number_of_rules_names_the_op(scratch_ops: list[str]) -> None:
    @op("edges_two_inputs", arity=2)
    def two(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x * y

    scratch_ops.append("edges_two_inputs")
    with pytest.raises(TypeError, match="edges_two_inputs: defjvp needs 2 rules, got 1"):
        two.defjvp(lambda tangent, out, x, y: tangent * y)


class _Unreadable:
    """A vjp rule whose signature Python cannot read: it gets no ``needs`` keyword."""

    __signature__ = "not a signature"

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, grad: Any, out: Any, *inputs: Any, **kwargs: Any) -> list[Any]:
        self.calls.append(kwargs)
        x, y = inputs
        return [grad * y, grad * x]


def test_a_variadic_rule_with_an_unreadable_signature_is_called_without_needs(scratch_ops: list[str]) -> None:
    @op("edges_variadic", arity=None)
    def product(*xs: np.ndarray) -> np.ndarray:
        return xs[0] * xs[1]

    scratch_ops.append("edges_variadic")
    rule = _Unreadable()
    with pytest.raises(TypeError):
        inspect.signature(rule)
    product.defvjp_variadic(rule)
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    y = ab.tensor([3.0, 5.0], requires_grad=True)
    gx, gy = ab.grad(product(x, y).sum(), [x, y])
    np.testing.assert_allclose(gx.numpy(), [3.0, 5.0])
    np.testing.assert_allclose(gy.numpy(), [1.0, 2.0])
    assert rule.calls and all("needs" not in kwargs for kwargs in rule.calls)
    # only x needs one: the engine drops y's, which the rule computed all the same
    c = ab.tensor([3.0, 5.0])
    (gx,) = ab.grad(product(x, c).sum(), [x])
    np.testing.assert_allclose(gx.numpy(), [3.0, 5.0])


def test_an_axis_in_a_tuple_that_is_no_integer_names_the_op() -> None:
    x = ab.tensor(np.arange(6.0).reshape(2, 3))
    with pytest.raises(TypeError, match=r"^sum: axis 1.5 is not an integer or a tuple of integers$"):
        ab.sum(x, axis=(0, 1.5))


@pytest.mark.parametrize("shape", [np.int64(6), np.array(6), np.array([3, 2]), [np.int32(3), 2]], ids=repr)
def test_a_shape_is_read_as_numpy_reads_it(shape: Any) -> None:
    values = np.arange(6.0).reshape(2, 3)
    for make in (ab.tensor, on_torch, on_strict):  # (numpy's own reshape reads it on numpy's arrays)
        assert ab.reshape(make(values), shape).numpy().tolist() == np.reshape(values, shape).tolist()


def test_float16_einsum_beside_a_wider_operand_computes_in_the_wider_dtype() -> None:
    # (the result is float32 already: no float32 accumulation of its own, numpy's einsum as it is)
    a, b = np.linspace(0.5, 1.5, 3000).astype(np.float16), np.ones(3000, np.float32)
    got = ab.einsum("i,i->", ab.tensor(a), ab.tensor(b)).numpy()
    want = np.einsum("i,i->", a, b)
    assert got.dtype == want.dtype == np.float32 and got == want


def test_a_numpy_array_subclass_operand_reaches_the_rules_as_a_plain_array() -> None:
    # The rules compute with the operands they saved: an np.matrix saved by mul made grad * y a
    # matrix product (x * m got [[4, 6], [4, 6]], not m), in reverse and in forward mode alike.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PendingDeprecationWarning)  # (np.matrix's own)
        m = np.matrix([[1.0, 2.0], [3.0, 4.0]])
        saved = np.matrix([[1.0, 2.0], [3.0, 4.0]])
    plain = np.asarray(m).copy()
    data = np.array([[0.5, 1.5], [2.0, 0.25]])
    for f, want in [
        (lambda x: x * m, plain),  # d/dx sum(x * m) = m
        (lambda x: m * x, plain),
        (lambda x: (x * m) * x, 2 * data * plain),
        (lambda x: x**m, plain * data ** (plain - 1)),
        (lambda x: m @ x, plain.T @ np.ones((2, 2))),
    ]:
        x = ab.tensor(data, requires_grad=True)
        out = f(x)
        assert type(out.data) is np.ndarray
        (grad,) = ab.grad(out.sum(), [x])
        np.testing.assert_allclose(grad.numpy(), want, rtol=1e-12)
    _, tangent = ab.functional.jvp(lambda t: t * m, ab.tensor(data), ab.tensor(np.ones((2, 2))))
    np.testing.assert_array_equal(tangent.numpy(), plain)
    x = ab.tensor(data, requires_grad=True)
    out = x * saved
    saved[0, 0] = 100.0  # a constant changed after the op: the gradient is of the values it used
    np.testing.assert_array_equal(ab.grad(out.sum(), [x])[0].numpy(), plain)
    # A masked array is refused: the values carry no mask (x * [1, --] got the gradient [1, 1]).
    with pytest.raises(TypeError, match=r"^mul: operand float64\[2\] is a masked array"):
        ab.tensor([3.0, 4.0], requires_grad=True) * np.ma.array([1.0, 2.0], mask=[False, True])
