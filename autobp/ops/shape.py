"""Shape ops: reshaping, transposing, broadcasting and summing back, joining and splitting.

Shapes are stated in each docstring. These ops move values without arithmetic, so each vjp
moves the gradient back the same way (reshape back, transpose back, sum back).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.ops.registry import Hints, op
from autobp.tensor import Tensor


def normalize_axes(axis: Any, ndim: int, name: str) -> tuple[int, ...]:
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative axes; errors name the op."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int | np.integer) else tuple(axis)
    result = []
    for a in axes:
        if not -ndim <= a < ndim or (ndim == 0 and a not in (0, -1)):
            raise np.exceptions.AxisError(f"{name}: axis {a} is out of bounds for an array of dimension {ndim}")
        result.append(int(a) % ndim if ndim else 0)
    if len(set(result)) != len(result):
        raise ValueError(f"{name}: repeated axis in {axis}")
    return tuple(sorted(result)) if ndim else ()


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with the reduced ``axes`` set to 1: the shape of a reduction with keepdims."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


@op("sum_to", hints=Hints(shapes="sum_to"))
def sum_to(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``x`` down to ``shape``, undoing a numpy broadcast from ``shape`` to ``x.shape``.

    Shapes: x (..., *s) -> shape, where ``shape`` broadcasts to ``x.shape``.
    """
    x = np.asarray(x)
    shape = tuple(shape)
    lead = x.ndim - len(shape)
    if lead < 0 or any(n not in (1, m) for n, m in zip(shape, x.shape[lead:], strict=True)):
        raise ValueError(f"sum_to: cannot sum shape {x.shape} down to {shape}")
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1)
    summed = x.sum(axis=axes, keepdims=True) if axes else x
    return summed.reshape(shape)


sum_to.defvjp(lambda grad, out, x, shape: broadcast_to(grad, x.shape))  # the adjoint of summing is copying


@op("broadcast_to", hints=Hints(shapes="broadcast_to"))
def broadcast_to(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` broadcast to ``shape`` (a read-only view). Shapes: s -> shape, s broadcastable to it."""
    return np.broadcast_to(x, tuple(shape))


broadcast_to.defvjp(lambda grad, out, x, shape: sum_to(grad, x.shape))  # copies sum back


@op("reshape", hints=Hints(shapes="reshape"))
def reshape(x: Any, shape: Any) -> np.ndarray:
    """``x`` with a new shape of the same size (one entry may be -1). Shapes: s -> shape."""
    return np.reshape(x, shape)


reshape.defvjp(lambda grad, out, x, shape: reshape(grad, x.shape))


@op("transpose", hints=Hints(shapes="transpose"))
def transpose(x: Any, axes: Any = None) -> np.ndarray:
    """``x`` with its axes permuted (reversed when ``axes`` is None). Shapes: s -> s[axes]."""
    return np.transpose(x, axes)


def _transpose_back(grad: Tensor, out: Tensor, x: Tensor, axes: Any = None) -> Tensor:
    # The inverse permutation undoes the transpose.
    return transpose(grad, None if axes is None else tuple(np.argsort(axes)))


transpose.defvjp(_transpose_back)


@op("swapaxes", hints=Hints(shapes="swapaxes"))
def swapaxes(x: Any, axis1: int, axis2: int) -> np.ndarray:
    """``x`` with two axes interchanged. Shapes: s -> s with s[axis1], s[axis2] swapped."""
    return np.swapaxes(x, axis1, axis2)


swapaxes.defvjp(lambda grad, out, x, axis1, axis2: swapaxes(grad, axis1, axis2))  # its own inverse
