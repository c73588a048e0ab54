"""Linear algebra: matrix products.

``matmul`` follows numpy: 1-D operands are promoted to a row (left) or a column (right) and the
promoted axis is removed from the result; leading batch axes broadcast. Its vjps work on the
promoted shapes and the engine sums broadcast batch axes back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.ops.registry import Hints, op
from autobp.ops.shape import reshape, sum_to, swapaxes
from autobp.tensor import Tensor


def _check_aligned(x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(f"matmul: operands must have at least one dimension, got shapes {x.shape} and {y.shape}")
    k_x = x.shape[-1]
    k_y = y.shape[-2] if y.ndim > 1 else y.shape[0]
    if k_x != k_y:
        dim_y = -2 if y.ndim > 1 else -1
        raise ValueError(
            f"matmul: shapes {x.shape} and {y.shape} are not aligned: {k_x} (dim -1 of x) != {k_y} (dim {dim_y} of y)"
        )


@op("matmul", arity=2, hints=Hints(shapes="matmul"))
def matmul(x: Any, y: Any) -> np.ndarray:
    """Matrix product ``x @ y``. Shapes: (..., m, k) @ (..., k, n) -> (..., m, n); 1-D as numpy."""
    x, y = np.asarray(x), np.asarray(y)
    _check_aligned(x, y)
    return np.matmul(x, y)


def _promoted(grad: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Operands and output gradient with 1-D operands promoted to matrices."""
    if y.ndim == 1:
        y = reshape(y, (y.shape[0], 1))
        grad = reshape(grad, (*grad.shape, 1))
    if x.ndim == 1:
        x = reshape(x, (1, x.shape[0]))
        grad = reshape(grad, (*grad.shape[:-1], 1, grad.shape[-1]))
    return grad, x, y


def _matmul_dx(grad: Tensor, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    # d(xy)/dx: grad @ y^T
    g, x2, y2 = _promoted(grad, x, y)
    dx = g @ swapaxes(y2, -1, -2)
    return reshape(sum_to(dx, x2.shape), x.shape) if x.ndim == 1 else dx


def _matmul_dy(grad: Tensor, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    # d(xy)/dy: x^T @ grad
    g, x2, y2 = _promoted(grad, x, y)
    dy = swapaxes(x2, -1, -2) @ g
    return reshape(sum_to(dy, y2.shape), y.shape) if y.ndim == 1 else dy


matmul.defvjp(_matmul_dx, _matmul_dy)
