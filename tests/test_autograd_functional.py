"""autobp.functional (vjp, jvp, jacobian, hessian, hvp, value_and_grad) against closed forms and finite differences."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autobp as ab
from autobp.functional import hessian, hvp, jacobian, jvp, value_and_grad, vjp

A = np.array([[1.0, 2.0, -1.0], [0.5, -3.0, 2.0]])


def _numeric_jacobian(func: Callable[..., Any], arrays: list[np.ndarray], index: int, eps: float = 1e-6) -> np.ndarray:
    """Central differences of ``func`` (arrays -> array) with respect to ``arrays[index]``."""
    base = arrays[index]
    out = np.asarray(func(*arrays))
    result = np.zeros(out.shape + base.shape)
    for element in np.ndindex(base.shape):
        step = np.zeros_like(base)
        step[element] = eps
        plus = [a + step if i == index else a for i, a in enumerate(arrays)]
        minus = [a - step if i == index else a for i, a in enumerate(arrays)]
        result[(..., *element)] = (np.asarray(func(*plus)) - np.asarray(func(*minus))) / (2 * eps)
    return result


def _two_inputs(x: ab.Tensor, y: ab.Tensor) -> ab.Tensor:
    return ab.sin(x) * ab.matmul(ab.tensor(A), y) + x * x


def _two_inputs_np(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _two_inputs(ab.tensor(x), ab.tensor(y)).data


def test_vjp_closed_form() -> None:
    x = ab.tensor([0.3, -1.2, 2.0])
    v = ab.tensor([1.0, -2.0, 0.5])
    out, g = vjp(lambda t: ab.sin(t) * t, x, v)
    np.testing.assert_allclose(out.data, np.sin(x.data) * x.data)
    np.testing.assert_allclose(g.data, v.data * (np.cos(x.data) * x.data + np.sin(x.data)))


def test_jacobian_tuple_inputs_against_finite_differences() -> None:
    x, y = ab.tensor([0.3, -0.7]), ab.tensor([1.0, 2.0, -0.5])
    jx, jy = jacobian(_two_inputs, (x, y))
    assert jx.shape == (2, 2) and jy.shape == (2, 3)
    arrays = [x.data, y.data]
    np.testing.assert_allclose(jx.data, _numeric_jacobian(_two_inputs_np, arrays, 0), atol=1e-6)
    np.testing.assert_allclose(jy.data, _numeric_jacobian(_two_inputs_np, arrays, 1), atol=1e-6)
    np.testing.assert_allclose(jy.data, np.sin(x.data)[:, None] * A)  # closed form


def test_jacobian_of_tuple_outputs_and_matrix_inputs() -> None:
    w = ab.tensor(A)
    (j_sum,), (j_square,) = jacobian(lambda m: (m.sum(axis=0), m * m), (w,))
    assert j_sum.shape == (3, 2, 3) and j_square.shape == (2, 3, 2, 3)
    np.testing.assert_allclose(j_sum.data, np.broadcast_to(np.eye(3)[:, None, :], (3, 2, 3)))
    np.testing.assert_allclose(j_square.data.reshape(6, 6), np.diag(2 * A.ravel()))


def test_jvp_equals_jacobian_times_v_and_pairs_with_vjp() -> None:
    x, y = ab.tensor([0.3, -0.7]), ab.tensor([1.0, 2.0, -0.5])
    vx, vy = ab.tensor([1.0, -1.0]), ab.tensor([0.5, 0.0, 2.0])
    out, tangent = jvp(_two_inputs, (x, y), (vx, vy))
    jx, jy = jacobian(_two_inputs, (x, y))
    np.testing.assert_allclose(tangent.data, jx.data @ vx.data + jy.data @ vy.data)
    np.testing.assert_allclose(out.data, _two_inputs_np(x.data, y.data))
    u = ab.tensor([2.0, -3.0])
    _, (gx, gy) = vjp(_two_inputs, (x, y), u)
    # <u, J v> == <J^T u, v>
    np.testing.assert_allclose(u.data @ tangent.data, gx.data @ vx.data + gy.data @ vy.data)


def test_jvp_of_a_linear_function_and_of_a_constant_one() -> None:
    x = ab.tensor([1.0, 2.0])
    _, tangent = jvp(lambda t: t, x, ab.tensor([3.0, 4.0]))
    np.testing.assert_allclose(tangent.data, [3.0, 4.0])
    _, tangent = jvp(lambda t: ab.tensor([5.0, 6.0, 7.0]), x, ab.tensor([3.0, 4.0]))
    np.testing.assert_allclose(tangent.data, [0.0, 0.0, 0.0])


def test_hessian_closed_form_quadratic_and_cubic() -> None:
    m = np.array([[2.0, 1.0], [0.0, 3.0]])
    x = ab.tensor([0.5, -1.0])
    h = hessian(lambda t: t @ ab.tensor(m) @ t, x)
    np.testing.assert_allclose(h.data, m + m.T)
    (hxx, hxy), (hyx, hyy) = hessian(lambda a, b: (a * a * b).sum(), (x, ab.tensor([2.0, 3.0])))
    np.testing.assert_allclose(hxx.data, np.diag([4.0, 6.0]))
    np.testing.assert_allclose(hxy.data, np.diag(2 * x.data))
    np.testing.assert_allclose(hyx.data, hxy.data.T)
    np.testing.assert_allclose(hyy.data, np.zeros((2, 2)))


@pytest.mark.parametrize("shape", [(), (1,), (1, 1)])
@pytest.mark.parametrize("create_graph", [False, True])
def test_hessian_of_a_one_element_output_keeps_its_axes_as_jacobian_does(
    shape: tuple[int, ...], create_graph: bool
) -> None:
    # jacobian's rule (out.shape + in.shape), applied twice, as torch.func.hessian: the (1, 1)
    # output's Hessian was (2, 2), shaped as if the output were 0-d.
    x, y = ab.tensor([0.5, -1.0]), ab.tensor([2.0, 3.0, 4.0])
    cubic = np.diag(6 * x.data)
    h = hessian(lambda t: (t**3).sum().reshape(shape), x, create_graph=create_graph)
    assert h.shape == (*shape, 2, 2)
    np.testing.assert_allclose(h.data.reshape(2, 2), cubic)
    twice = jacobian(lambda t: jacobian(lambda u: (u**3).sum().reshape(shape), t, create_graph=True), x)
    assert twice.shape == h.shape
    blocks = hessian(lambda a, b: (a * a * b[:2]).sum().reshape(shape), (x, y), create_graph=create_graph)
    assert [[block.shape for block in row] for row in blocks] == [
        [(*shape, 2, 2), (*shape, 2, 3)],
        [(*shape, 3, 2), (*shape, 3, 3)],
    ]
    np.testing.assert_allclose(blocks[0][1].data.reshape(2, 3), [[2 * x.data[0], 0, 0], [0, 2 * x.data[1], 0]])
    assert hessian(lambda t: t.sum().reshape(shape), ab.zeros(0)).shape == (*shape, 0, 0)


# torch.func's first call scripts a helper with torch.jit.script, which torch 2.13 deprecates itself
@pytest.mark.filterwarnings(r"ignore:.*torch\.jit\.script.* is deprecated:DeprecationWarning")
def test_hessian_shapes_match_torch_func() -> None:
    torch = pytest.importorskip("torch")
    x, y = np.array([0.5, -1.0]), np.array([2.0, 3.0, 4.0])
    for shape in [(), (1,), (1, 1)]:
        ours = hessian(
            lambda a, b, shape=shape: (a * a * b[:2] + a**3).sum().reshape(shape), (ab.tensor(x), ab.tensor(y))
        )
        theirs = torch.func.hessian(
            lambda a, b, shape=shape: (a * a * b[:2] + a**3).sum().reshape(shape), argnums=(0, 1)
        )(torch.tensor(x), torch.tensor(y))
        for row, their_row in zip(ours, theirs, strict=True):
            for block, their_block in zip(row, their_row, strict=True):
                assert block.shape == tuple(their_block.shape)
                np.testing.assert_allclose(block.data, their_block.numpy())


def test_hvp_equals_hessian_times_v() -> None:
    def f(t: ab.Tensor) -> ab.Tensor:
        return ab.logsumexp(ab.matmul(ab.tensor(A), t)) + (t**3).sum()

    x, v = ab.tensor([0.2, -0.4, 1.1]), ab.tensor([1.0, 2.0, -1.0])
    value, product = hvp(f, x, v)
    np.testing.assert_allclose(product.data, hessian(f, x).data @ v.data)
    np.testing.assert_allclose(value.data, f(x).data)


def test_value_and_grad() -> None:
    def loss(w: ab.Tensor, b: ab.Tensor, scale: float) -> ab.Tensor:
        return ((w * 2.0 + b) ** 2).sum() * scale

    value, g = value_and_grad(loss)([1.0, 2.0], ab.tensor(0.5), 3.0)
    assert value.item() == pytest.approx(3.0 * (2.5**2 + 4.5**2))
    np.testing.assert_allclose(g.data, 3.0 * 2 * 2 * np.array([2.5, 4.5]))
    _, (_, gb) = value_and_grad(loss, argnums=(0, 1))(ab.tensor([1.0, 2.0]), ab.tensor(0.5), 1.0)
    np.testing.assert_allclose(gb.data, 2 * (2.5 + 4.5))


def test_inputs_are_untouched_and_results_are_graph_free() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    out, g = vjp(lambda t: t * t, x, ab.tensor([1.0, 1.0]))
    assert x.grad is None and not out.requires_grad and not g.requires_grad
    h = hessian(lambda t: (t**3).sum(), x)
    assert x.grad is None and not h.requires_grad


def test_create_graph_results_differentiate_back_to_the_inputs() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    _, g = vjp(lambda t: (t**3).sum(), x, create_graph=True)  # 3 x^2
    (second,) = ab.grad(g.sum(), [x])
    np.testing.assert_allclose(second.data, 6.0 * x.data)
    j = jacobian(lambda t: t**3, x, create_graph=True)  # diag(3 x^2)
    (third,) = ab.grad(j.sum(), [x])
    np.testing.assert_allclose(third.data, 6.0 * x.data)
    _, tangent = jvp(lambda t: t**3, x, ab.tensor([1.0, 1.0]), create_graph=True)
    (fourth,) = ab.grad(tangent.sum(), [x])
    np.testing.assert_allclose(fourth.data, 6.0 * x.data)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: vjp(lambda t: t, [1.0, 2.0], None), TypeError, r"vjp: inputs\[0\] must be a Tensor, got float"),
        (lambda: vjp(lambda t: t, np.ones(2)), TypeError, "vjp: inputs must be a Tensor, got ndarray"),
        (lambda: vjp(lambda t: t, (ab.tensor(1.0), 2.0)), TypeError, r"vjp: inputs\[1\] must be a Tensor"),
        (lambda: vjp(lambda t: t * 2, ab.tensor([1.0, 2.0])), ValueError, "vjp: v may be omitted only"),
        (lambda: vjp(lambda t: t, ab.tensor([1.0]), ab.tensor([1.0, 2.0])), ValueError, r"v\[0\] has shape \(2,\)"),
        (lambda: vjp(lambda t: 3.0, ab.tensor([1.0])), TypeError, "func's output must be a Tensor, got float"),
        (lambda: jvp(lambda t: t, ab.tensor([1, 2]), ab.tensor([1, 1])), TypeError, "int64; only floating-point"),
        (lambda: jvp(lambda t: t, ab.tensor([1.0]), (ab.tensor([1.0]), ab.tensor([1.0]))), ValueError, "2 entries"),
        (lambda: hessian(lambda t: t * 2, ab.tensor([1.0, 2.0])), ValueError, "hessian: func must return a single"),
        (lambda: hvp(lambda t: t.sum(), ab.tensor([1.0, 2.0]), ab.tensor([1.0])), ValueError, r"hvp: v\[0\]"),
        # jvp's and hvp's v pairs with the inputs (vjp's with func's outputs): the error names them
        (
            lambda: jvp(lambda t: t.sum(), ab.tensor([1.0, 2.0]), ab.tensor([1.0, 2.0, 3.0])),
            ValueError,
            r"jvp: v\[0\] has shape \(3,\), but inputs\[0\] has shape \(2,\)",
        ),
        (
            lambda: hvp(lambda t: t.sum(), ab.tensor([1.0, 2.0]), ab.tensor([1.0])),
            ValueError,
            r"hvp: v\[0\] has shape \(1,\), but inputs\[0\] has shape \(2,\)",
        ),
        (
            lambda: jvp(lambda t: t, ab.tensor([1.0]), (ab.tensor([1.0]), ab.tensor([1.0]))),
            ValueError,
            "jvp: v has 2 entries for 1 inputs",
        ),
        (
            lambda: vjp(lambda t: t, ab.tensor([1.0]), ab.tensor([1.0, 2.0])),
            ValueError,
            r"vjp: v\[0\] has shape \(2,\), but func's output 0 has shape \(1,\)",
        ),
        (lambda: value_and_grad(lambda t: t)(ab.tensor([1.0, 2.0])), ValueError, "value_and_grad: func must"),
        (lambda: value_and_grad(lambda t: t.sum(), argnums=2)(ab.tensor([1.0])), IndexError, "argnums 2 out of range"),
    ],
)
def test_bad_calls_fail_clearly(call: Callable[[], Any], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        call()


@given(
    shape=st.sampled_from([(), (1,), (3,), (2, 2)]),
    seed=st.integers(0, 2**16),
)
def test_transforms_agree_with_finite_differences(shape: tuple[int, ...], seed: int) -> None:
    rng = np.random.default_rng(seed)
    x_data, v_data = rng.uniform(-1.5, 1.5, shape), rng.standard_normal(shape)

    def f(t: ab.Tensor) -> ab.Tensor:
        return ab.tanh(t) * ab.exp(t * 0.5) + t * t

    numeric = _numeric_jacobian(lambda a: f(ab.tensor(a)).data, [x_data], 0)
    size = max(x_data.size, 1)
    numeric_matrix = numeric.reshape(size, size)
    j = jacobian(f, ab.tensor(x_data))
    np.testing.assert_allclose(j.data.reshape(size, size), numeric_matrix, atol=1e-6)
    _, tangent = jvp(f, ab.tensor(x_data), ab.tensor(v_data))
    np.testing.assert_allclose(tangent.data.reshape(-1), numeric_matrix @ v_data.reshape(-1), atol=1e-6)
    _, cotangent = vjp(f, ab.tensor(x_data), ab.tensor(v_data))
    np.testing.assert_allclose(cotangent.data.reshape(-1), numeric_matrix.T @ v_data.reshape(-1), atol=1e-6)
    value, g = value_and_grad(lambda t: f(t).sum())(ab.tensor(x_data))
    np.testing.assert_allclose(g.data.reshape(-1), numeric_matrix.sum(axis=0), atol=1e-6)
    assert value.item() == pytest.approx(f(ab.tensor(x_data)).data.sum())
    hess_numeric = _numeric_jacobian(lambda a: value_and_grad(lambda t: f(t).sum())(ab.tensor(a))[1].data, [x_data], 0)
    np.testing.assert_allclose(hessian(lambda t: f(t).sum(), ab.tensor(x_data)).data, hess_numeric, atol=1e-5)


@pytest.mark.parametrize("argnums", [(0, 0), (0, -2), (1, -1)])
def test_argnums_naming_one_argument_twice_is_refused(argnums: tuple[int, ...]) -> None:
    # Each entry got a fresh input, the later replacing the earlier: (0, 0) gave zeros for the
    # first gradient and the true one for the second, with no error (torch.func refuses it).
    f = lambda a, b: (a * b).sum()  # noqa: E731
    a, b = ab.tensor([1.0, 2.0]), ab.tensor([3.0, 4.0])
    with pytest.raises(ValueError, match=r"names argument \d twice \(of 2\)"):
        ab.functional.value_and_grad(f, argnums=argnums)(a, b)
    with pytest.raises(ValueError, match=r"tape.value_and_grad: argnums .* names argument \d twice"):
        ab.tape.value_and_grad(f, argnums=argnums)(a.data, b.data)
    with pytest.raises(ValueError, match=r"names (an )?argument"):  # (tape.hvp refuses (0, 0) when made)
        ab.tape.hvp(f, argnums=argnums)(a.data, b.data, (a.data, b.data))
