"""Reductions over ``axis=None|int|tuple`` with ``keepdims``.

Shapes: x (s) -> s without the reduced axes (or with them set to 1 under ``keepdims``).
Each vjp reshapes the gradient to the kept shape and broadcasts it back over ``x``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.ops.registry import Hints, op
from autobp.ops.shape import broadcast_to, kept_shape, normalize_axes, reshape
from autobp.tensor import Tensor

REDUCTION = Hints(shapes="reduction", kwargs={"keepdims": (False, True)})


def expand_reduced(grad: Tensor, x: Tensor, axis: Any) -> Tensor:
    """A reduction's output gradient broadcast back to the input's shape."""
    axes = normalize_axes(axis, x.ndim, "reduction")
    return broadcast_to(reshape(grad, kept_shape(x.shape, axes)), x.shape)


@op("sum", hints=REDUCTION)
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """Sum of elements over ``axis``. Shapes: see the module docstring."""
    x = np.asarray(x)
    return np.sum(x, axis=normalize_axes(axis, x.ndim, "sum"), keepdims=keepdims)


sum.defvjp(lambda grad, out, x, axis=None, keepdims=False: expand_reduced(grad, x, axis))  # d sum/dx_i = 1
