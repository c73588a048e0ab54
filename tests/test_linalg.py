"""dot, outer and einsum: forms, repeated operands, diagonals, errors and dtypes."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops import linalg as linalg_ops
from tests.conftest import library_or_skip


def arrays(*shapes: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) for shape in shapes]


def leaves(*values: np.ndarray) -> tuple[ab.Tensor, ...]:
    return tuple(ab.tensor(v, requires_grad=True) for v in values)


def check_einsum(subscripts: str, *shapes: tuple[int, ...]) -> None:
    values = arrays(*shapes)
    got = ab.einsum(subscripts, *[ab.tensor(v) for v in values])
    expected = np.einsum(subscripts, *values)
    assert got.shape == expected.shape
    assert np.allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)

    def fn(*xs: ab.Tensor) -> ab.Tensor:
        return ab.einsum(subscripts, *xs)

    assert ab.gradcheck(fn, leaves(*values))
    assert ab.gradgradcheck(fn, leaves(*values))


# -- einsum ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("subscripts", "shapes"),
    [
        ("ij,jk->ik", [(2, 3), (3, 4)]),
        ("ij,jk", [(2, 3), (3, 4)]),  # implicit: labels seen once, sorted
        ("ba,cb", [(3, 2), (4, 3)]),  # implicit output "ac", not "ca"
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 2)]),
        ("i,j->ij", [(3,), (2,)]),
        ("ij->ji", [(2, 3)]),
        ("ijk->", [(2, 3, 2)]),
        ("ij,ij->i", [(2, 3), (2, 3)]),
        ("ij,jk,kl->il", [(2, 3), (3, 2), (2, 4)]),
        ("i,ij->j", [(3,), (1, 4)]),  # a label that only one operand sums over, and a size-1 axis broadcast
        ("ij,j->", [(2, 3), (1,)]),
        ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),  # ... broadcasts like matmul's batch axes
        ("i...,i->...", [(3, 2), (3,)]),
        (",ij->ij", [(), (2, 3)]),
    ],
)
def test_einsum_matches_numpy_and_its_gradients_check(subscripts: str, shapes: list[tuple[int, ...]]) -> None:
    check_einsum(subscripts, *shapes)


@pytest.mark.parametrize(
    ("subscripts", "shapes"),
    [("ii->i", [(3, 3)]), ("ii", [(3, 3)]), ("ii->", [(2, 2)]), ("iij->j", [(2, 2, 3)]), ("iii->i", [(2, 2, 2)])],
)
def test_einsum_diagonals_and_traces(subscripts: str, shapes: list[tuple[int, ...]]) -> None:
    check_einsum(subscripts, *shapes)


def test_trace_gradient_is_the_identity() -> None:
    x = ab.tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    ab.einsum("ii", x).backward()
    assert x.grad is not None and x.grad.tolist() == np.eye(3).tolist()


def test_einsum_with_the_same_tensor_twice() -> None:
    (value,) = arrays((4,))
    x = ab.tensor(value, requires_grad=True)
    ab.einsum("i,i->", x, x).backward()  # |x|^2
    assert x.grad is not None and np.allclose(x.grad.numpy(), 2 * value)
    (matrix,) = arrays((3, 2), seed=1)
    assert ab.gradgradcheck(lambda m: ab.einsum("ij,ik->jk", m, m), ab.tensor(matrix, requires_grad=True))


def test_einsum_gradient_only_for_inputs_that_require_it() -> None:
    a, b = arrays((2, 3), (3,))
    x, const = ab.tensor(a, requires_grad=True), ab.tensor(b)
    ab.einsum("ij,j->i", x, const).sum().backward()
    assert x.grad is not None and np.allclose(x.grad.numpy(), np.broadcast_to(b, (2, 3)))
    assert const.grad is None


@pytest.mark.parametrize(
    ("subscripts", "shapes"),
    [
        ("i->", [(0,)]),
        ("ij->j", [(0, 3)]),
        ("ij,ij->j", [(0, 3), (0, 3)]),
        ("ij,j->i", [(2, 0), (1,)]),  # a size-1 axis broadcast against an empty one
        ("ij,jk->ik", [(2, 1), (0, 4)]),
        ("ij,jk->ik", [(2, 0), (0, 4)]),
    ],
)
def test_einsum_over_an_empty_axis_has_gradients_of_the_inputs_shapes(
    subscripts: str, shapes: list[tuple[int, ...]]
) -> None:
    # A sum over no elements: the value is numpy's (zeros), each gradient zeros of its input's shape.
    # The rule broadcast the gradient to the larger of the sizes, 1 for an empty axis: "the vjp rule
    # for input 0 returned a gradient of shape (1,), which is not that input's shape (0,)".
    inputs = [ab.tensor(np.ones(shape), requires_grad=True) for shape in shapes]
    out = ab.einsum(subscripts, *inputs)
    np.testing.assert_array_equal(out.numpy(), np.einsum(subscripts, *(np.ones(shape) for shape in shapes)))
    grads = ab.grad((out * out).sum() + out.sum(), inputs, create_graph=True)
    for grad, shape in zip(grads, shapes, strict=True):
        assert grad is not None and grad.shape == shape
        np.testing.assert_array_equal(grad.numpy(), np.zeros(shape))
    second = ab.grad(sum(g.sum() for g in grads if g.requires_grad), inputs, allow_unused=True)
    assert all(g is None or g.shape == shape for g, shape in zip(second, shapes, strict=True))
    directions = tuple(ab.tensor(np.ones(shape)) for shape in shapes)
    _, tangent = ab.functional.jvp(lambda *xs: ab.einsum(subscripts, *xs), tuple(inputs), directions)
    assert tangent.shape == out.shape


def test_einsum_is_registered_under_its_public_name() -> None:
    assert ab.einsum.op is ab.REGISTRY["einsum"]
    assert ab.einsum("ij,jk", ab.ones((2, 3)), ab.ones((3, 4))).grad_fn is None  # nothing requires grad
    x = ab.ones((2, 3), requires_grad=True)
    assert ab.einsum("ij->j", x).grad_fn.name == "einsum"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("subscripts", "shapes", "message"),
    [
        ("ij,jk->ik", [(2, 3), (4, 5)], r"einsum: label 'j' of 'ij,jk->ik' has size 3 in operand 0 \(float64\[2, 3\]\)"
         r" but 4 in operand 1 \(float64\[4, 5\]\)"),
        ("ij,jk", [(2, 3)], r"einsum: subscripts 'ij,jk' name 2 operands, got 1"),
        ("ijk", [(2, 3)], r"einsum: operand 0 has shape \(2, 3\) but 'ijk' in 'ijk' names 3 axes"),
        ("ij->ik", [(2, 3)], r"einsum: invalid output 'ik'"),
        ("ij->ii", [(2, 3)], r"einsum: invalid output 'ii'"),
        ("i1->i", [(2, 3)], r"einsum: invalid subscripts"),
        ("...i->i", [(2, 3)], r"einsum: output of '...i->i' needs '...'"),
    ],
)  # fmt: skip
def test_einsum_errors_name_the_op_and_shapes(subscripts: str, shapes: list[tuple[int, ...]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ab.einsum(subscripts, *[ab.tensor(v) for v in arrays(*shapes)])


def test_einsum_subscripts_must_be_a_string() -> None:
    with pytest.raises(TypeError, match="einsum: subscripts must be a str"):
        ab.einsum(ab.ones(2), ab.ones(2))  # type: ignore[arg-type]


# -- dot and outer ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("x_shape", "y_shape"),
    [((), (2, 3)), ((3,), ()), ((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)),
     ((2, 2, 3), (3, 4)), ((3,), (2, 3, 4)), ((2, 3), (4, 3, 2)), ((2, 2, 3), (4, 3, 1))],
)  # fmt: skip
def test_dot_matches_numpy_and_its_gradients_check(x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
    x, y = arrays(x_shape, y_shape)
    got = ab.dot(ab.tensor(x), ab.tensor(y))
    expected = np.dot(x, y)
    assert got.shape == np.shape(expected) and np.allclose(got.numpy(), expected, rtol=1e-12)
    assert ab.gradcheck(ab.dot, leaves(x, y))
    assert ab.gradgradcheck(ab.dot, leaves(x, y))
    assert np.allclose(ab.tensor(x).dot(y).numpy(), expected)  # the method, with an array argument


@pytest.mark.parametrize(("x_shape", "y_shape"), [((3,), (4,)), ((2, 3), (2, 3)), ((2, 3), (5, 2, 4))])
def test_dot_shape_mismatch_names_the_op_shapes_and_dtypes(x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
    x, y = arrays(x_shape, y_shape)
    with pytest.raises(ValueError, match=rf"dot: shapes \({x_shape[0]},.*not aligned.*float64"):
        ab.dot(ab.tensor(x), ab.tensor(y))


@pytest.mark.parametrize(("x_shape", "y_shape"), [((3,), (2,)), ((2, 2), (3,)), ((), (2,))])
def test_outer_flattens_like_numpy(x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
    x, y = arrays(x_shape, y_shape)
    got = ab.outer(ab.tensor(x), ab.tensor(y))
    assert np.allclose(got.numpy(), np.outer(x, y)) and got.shape == np.outer(x, y).shape
    assert ab.gradcheck(ab.outer, leaves(x, y))


# -- dtypes ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fn", "shapes"),
    [
        (lambda a, b: ab.einsum("ij,jk->ik", a, b), [(2, 3), (3, 2)]),
        (lambda a, b: ab.einsum("ii,ij->j", a, b), [(3, 3), (3, 2)]),
        (lambda a, b: ab.einsum("ij,j->", a, b), [(3, 3), (1,)]),
        (ab.dot, [(2, 3), (4, 3, 2)]),
        (ab.dot, [(3,), (3,)]),
        (ab.outer, [(3,), (2,)]),
    ],
)
def test_float32_stays_float32_in_value_and_gradient(fn: Any, shapes: list[tuple[int, ...]]) -> None:
    xs = [ab.tensor(v.astype(np.float32), requires_grad=True) for v in arrays(*shapes)]
    out = fn(*xs)
    assert out.dtype == np.float32
    grads = ab.grad(out, xs, grad_outputs=ab.ones_like(out))
    assert all(g is not None and g.dtype == np.float32 for g in grads)


@pytest.mark.parametrize(
    ("subscripts", "operands"),
    [
        ("ij->j", [np.array([[1, 255], [3, 4]], np.uint8)]),  # numpy wraps: [4, 3] (torch summed to int64 259)
        ("ij,jk->ik", [np.array([[200, 100]], np.uint8), np.array([[2], [3]], np.uint8)]),
        ("ij->j", [np.array([[100, -128], [100, -1]], np.int8)]),
        ("ij->j", [np.array([[True, True], [False, True]])]),  # an or of ands, in bool (torch counted)
        ("ij,jk->ik", [np.array([[True, False], [False, False]]), np.array([[False, True], [True, False]])]),
        ("i,i->", [np.array([True, False, True]), np.array([True, True, False])]),
    ],
)
def test_einsum_of_integers_and_bools_on_torch_gives_numpys_dtype_and_values(
    subscripts: str, operands: list[np.ndarray]
) -> None:
    torch = pytest.importorskip("torch")
    want = np.einsum(subscripts, *operands)
    got = ab.einsum(subscripts, *[ab.tensor(torch.from_numpy(a)) for a in operands])
    assert got.library == "torch" and str(got.dtype) == f"torch.{want.dtype}"
    np.testing.assert_array_equal(got.numpy(), want)


def test_einsum_refuses_a_malformed_ellipsis() -> None:
    with pytest.raises(ValueError, match="einsum: invalid ellipsis"):
        ab.einsum("i..j.->ij", ab.ones(2, 3))


@pytest.mark.parametrize("name", ["matmul_nt", "matmul_tn"])
@pytest.mark.parametrize(("x_shape", "y_shape"), [((3,), (2, 3)), ((2, 3), (3,))])
def test_transposed_products_need_matrices(name: str, x_shape: tuple[int, ...], y_shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=f"{name}: operands must have at least two dimensions"):
        getattr(linalg_ops, name)(ab.ones(x_shape), ab.ones(y_shape))


def test_transposed_products_take_nested_lists() -> None:
    assert linalg_ops.matmul_nt([[1.0, 2.0]], [[3.0, 4.0]]).tolist() == [[11.0]]
    assert linalg_ops.matmul_tn([[1.0], [2.0]], [[3.0], [4.0]]).tolist() == [[11.0]]
    with pytest.raises(ValueError, match="matmul_tn: operands must have at least two dimensions"):
        linalg_ops.matmul_tn([1.0, 2.0], [[3.0], [4.0]])


def test_batch_axes_that_do_not_broadcast_keep_numpy_s_message_with_the_op_s_name() -> None:
    with pytest.raises(ValueError, match=r"matmul: .*\(inputs: float64\[2, 1, 3\], float64\[3, 3, 2\]\)"):
        ab.matmul(ab.ones((2, 1, 3)), ab.ones((3, 3, 2)))


@pytest.mark.parametrize("lib", ["numpy", "torch", "cupy"])
@pytest.mark.parametrize(
    ("subscripts", "shapes"),
    [
        ("ij->j", [(3000, 2)]),
        ("ijk->ik", [(2, 3000, 2)]),
        ("ij,jk->k", [(2, 3000), (3000, 2)]),
        ("ij,j->j", [(3000, 2), (2,)]),
        ("ij,jk,kl->l", [(2, 3000), (3000, 2), (2, 2)]),
    ],
)
def test_float16_einsum_accumulates_in_float32(lib: str, subscripts: str, shapes: list[tuple[int, ...]]) -> None:
    # numpy's einsum adds along an outer axis one row at a time in float16, which stalls: 3000
    # ones summed to 2048 ("ij->j") or 4096. PyTorch accumulates in float32, as sum does here.
    xp = library_or_skip(lib)
    hosts = [np.random.default_rng(k).uniform(0.5, 1.5, shape).astype(np.float16) for k, shape in enumerate(shapes)]
    leaves = [ab.Tensor(xp.from_numpy(h, None), requires_grad=True) for h in hosts]
    out = ab.einsum(subscripts, *leaves)
    assert ab.backends.namespace(out.data).dtype_name(out.dtype) == "float16"
    want = np.einsum(subscripts, *[h.astype(np.float64) for h in hosts])
    np.testing.assert_allclose(out.numpy().astype(np.float64), want, rtol=1e-3)
    # The gradients are einsums too: each operand's contracts the output's weights with the others.
    weights = np.random.default_rng(9).uniform(0.5, 1.5, want.shape)
    grads = ab.grad(out, leaves, grad_outputs=ab.Tensor(xp.from_numpy(weights.astype(np.float16), None)))
    inputs, output = subscripts.split("->")
    terms = inputs.split(",")
    exact = [h.astype(np.float64) for h in hosts]
    for k, g in enumerate(grads):
        assert g is not None and ab.backends.namespace(g.data).dtype_name(g.dtype) == "float16"
        others = [t for j, t in enumerate(terms) if j != k]  # (ones of x_k's shape: its own labels broadcast)
        spec = ",".join([output, *others, terms[k]]) + "->" + terms[k]
        reference = np.einsum(spec, weights, *[e for j, e in enumerate(exact) if j != k], np.ones(shapes[k]))
        np.testing.assert_allclose(g.numpy().astype(np.float64), reference, rtol=2e-3)


@pytest.mark.parametrize(
    ("x_shape", "y_shape", "message"),
    [
        ((2, 3), (4, 2), r"matmul: shapes \(2, 3\) and \(4, 2\) are not aligned: 3 .*"),
        ((3,), (2,), r"matmul: shapes \(3,\) and \(2,\) are not aligned: .*"),
        ((), (2,), r"matmul: operands must have at least one dimension, got shapes \(\) and \(2,\) "),
    ],
)
def test_matmul_shape_errors_name_the_dtypes_too(
    x_shape: tuple[int, ...], y_shape: tuple[int, ...], message: str
) -> None:
    # numpy's own message names neither; the op's named the shapes only.
    x, y = ab.tensor(np.ones(x_shape, np.float32)), ab.tensor(np.ones(y_shape))
    inputs = rf"\(inputs: float32\[{', '.join(map(str, x_shape))}\], float64\[{', '.join(map(str, y_shape))}\]\)$"
    with pytest.raises(ValueError, match=message + inputs):
        ab.matmul(x, y)


@pytest.mark.parametrize("lib", ["numpy", "torch", "array_api_strict", "cupy"])
@pytest.mark.parametrize(("subscripts", "shape"), [("ii->i", (1, 3)), ("ii", (3, 1)), ("iij->j", (1, 3, 2))])
def test_a_diagonal_of_unequal_sizes_is_one_error_on_every_library(
    lib: str, subscripts: str, shape: tuple[int, ...]
) -> None:
    # A label repeated within one operand takes a diagonal: its sizes must be equal (no
    # broadcasting of a size 1 there, as numpy and PyTorch say); array-api-strict's einsum
    # failed inside a reshape ("cannot reshape array of size 3 into shape (1,)").
    xp = library_or_skip(lib)
    x = ab.Tensor(xp.from_numpy(np.ones(shape), None))
    operand = rf"is repeated in operand 0 \((\w+ )?float64\[{shape[0]}, {shape[1]}"
    with pytest.raises(ValueError, match=rf"^einsum: label 'i' of '{re.escape(subscripts)}' {operand}"):
        ab.einsum(subscripts, x)


@pytest.mark.parametrize(
    ("name", "shapes"),
    [
        ("matmul_nt", [(6, 1), (5, 1)]),
        ("matmul_nt", [(2, 6, 1), (1, 5, 1)]),
        ("matmul_tn", [(1, 6), (1, 5)]),
        ("matmul_tn", [(2, 1, 6), (1, 5)]),
    ],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_product_of_one_term_is_numpys_product_but_for_the_sign_of_zero(name: str, shapes: Any, dtype: Any) -> None:
    # backends.numpy takes a broadcast multiply for k = 1 (W5): the values of numpy's matmul,
    # nan and inf where it has them, and zeros with the product's own sign.
    from autobp.backends import numpy as numpy_backend

    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal(shape).astype(dtype) for shape in shapes)
    x.flat[0], x.flat[1], y.flat[0], y.flat[1] = 0.0, np.inf, -1.0, 0.0  # -0.0, inf * -1, inf * 0
    swap = lambda a: np.swapaxes(a, -1, -2)  # noqa: E731
    with np.errstate(invalid="ignore"):
        want = x @ swap(y) if name == "matmul_nt" else swap(x) @ y
        got = getattr(numpy_backend, name)(x, y)
        product = np.multiply(x, swap(y)) if name == "matmul_nt" else np.multiply(swap(x), y)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # (nan where nan; -0.0 == 0.0)
    assert got.tobytes() == product.tobytes()  # the multiply's zeros, with their signs


def test_complex_and_half_products_of_one_term_stay_numpys_matmul() -> None:
    from autobp.backends import numpy as numpy_backend

    rng = np.random.default_rng(1)
    for dtype in (np.complex128, np.float16):
        x, y = rng.standard_normal((4, 1)).astype(dtype), rng.standard_normal((3, 1)).astype(dtype)
        assert numpy_backend.matmul_nt(x, y).tobytes() == np.matmul(x, y.T).tobytes()
        assert numpy_backend.matmul_tn(x.T, y.T).tobytes() == np.matmul(x, y.T).tobytes()
