"""Reshaping and transposing: ``reshape``, ``transpose``, ``swapaxes``, ``expand_dims``, ``squeeze``,
``flatten``.

Shapes: stated in each docstring. These ops move values without arithmetic, so each vjp moves the
gradient back the same way (reshape back, transpose back). They are linear (``linear=True``): the
jvp moves the tangent the way the op moves the values.
"""

from __future__ import annotations

import operator
from typing import Any

from autobp.backends import as_array, namespace
from autobp.ops.registry import Hints, composite, op
from autobp.ops.shape.arguments import as_shape, given_axes_of, normalize_axes
from autobp.tensor import Tensor


@op("reshape", hints=Hints(shapes="reshape"), linear=True)
def reshape(x: Any, shape: Any) -> Any:
    """``x`` with a new shape of the same size (one entry may be -1). Shapes: s -> shape."""
    x = as_array(x)
    return namespace(x).reshape(x, as_shape(shape))


reshape.defvjp(lambda grad, out, x, shape: reshape(grad, x.shape), plain_arrays=True)


@op("transpose", hints=Hints(shapes="transpose"), linear=True)
def transpose(x: Any, axes: Any = None) -> Any:
    """``x`` with its axes permuted (reversed when ``axes`` is None). Shapes: s -> s[axes]."""
    x = as_array(x)
    return namespace(x).permute_dims(x, _permutation(axes, x.ndim))


def _permutation(axes: Any, ndim: int) -> tuple[int, ...]:
    """``axes`` (None: reversed) as a permutation of ``range(ndim)``; errors name ``transpose``."""
    if axes is None:
        return tuple(range(ndim - 1, -1, -1))
    # Each axis read by __index__, as numpy reads it (int() took 1.5 as axis 1).
    given = tuple(operator.index(a) for a in axes)
    order = tuple(a % ndim if ndim and -ndim <= a < ndim else -1 for a in given)
    if sorted(order) != list(range(ndim)):
        raise ValueError(f"transpose: axes {tuple(axes)} are not a permutation of the {ndim} axes of the input")
    return order


def _transpose_back(grad: Tensor, out: Tensor, x: Tensor, axes: Any = None) -> Tensor:
    # The inverse permutation undoes the transpose.
    order = _permutation(axes, x.ndim)
    return transpose(grad, tuple(sorted(range(x.ndim), key=order.__getitem__)))


transpose.defvjp(_transpose_back, plain_arrays=True)


@op("swapaxes", hints=Hints(shapes="swapaxes"), linear=True)
def swapaxes(x: Any, axis1: int, axis2: int) -> Any:
    """``x`` with two axes interchanged. Shapes: s -> s with s[axis1], s[axis2] swapped."""
    x = as_array(x)
    (first,), (second,) = normalize_axes(axis1, x.ndim, "swapaxes"), normalize_axes(axis2, x.ndim, "swapaxes")
    order = list(range(x.ndim))
    order[first], order[second] = second, first
    return namespace(x).permute_dims(x, tuple(order))


swapaxes.defvjp(lambda grad, out, x, axis1, axis2: swapaxes(grad, axis1, axis2), plain_arrays=True)  # its own inverse


@op("expand_dims", hints=Hints(shapes="expand_dims"), linear=True)
def expand_dims(x: Any, axis: Any) -> Any:
    """``x`` with new axes of size 1 at ``axis`` (int or tuple, positions in the result).

    Shapes: s -> s with a 1 inserted at each of ``axis``.

    >>> import autobp as ab
    >>> ab.expand_dims(ab.zeros(2, 3), (0, -1)).shape
    (1, 2, 3, 1)
    """
    x = as_array(x)
    count = len(given_axes_of("expand_dims", axis))
    axes = normalize_axes(axis, x.ndim + count, "expand_dims")
    sizes = iter(x.shape)
    return namespace(x).reshape(x, tuple(1 if i in axes else next(sizes) for i in range(x.ndim + count)))


expand_dims.defvjp(lambda grad, out, x, axis: reshape(grad, x.shape), plain_arrays=True)  # same values, old shape


@op("squeeze", hints=Hints(shapes="squeeze"), linear=True)
def squeeze(x: Any, axis: Any = None) -> Any:
    """``x`` without axes of size 1 (all of them, or those in ``axis``, which must have size 1).

    Shapes: s -> s without the squeezed axes.

    >>> import autobp as ab
    >>> ab.squeeze(ab.zeros(1, 3, 1), axis=0).shape
    (3, 1)
    """
    x = as_array(x)
    shape = tuple(x.shape)
    if axis is None:
        axes = tuple(i for i, n in enumerate(shape) if n == 1)
    else:
        axes = normalize_axes(axis, x.ndim, "squeeze")
        for a in axes:
            if shape[a] != 1:
                raise ValueError(f"squeeze: cannot squeeze axis {a} of shape {shape}: its size is {shape[a]}, not 1")
    return namespace(x).reshape(x, tuple(n for i, n in enumerate(shape) if i not in axes))


squeeze.defvjp(lambda grad, out, x, axis=None: reshape(grad, x.shape), plain_arrays=True)  # same values, old shape


@composite("flatten", hints=Hints(shapes="unary"))
def flatten(x: Any) -> Tensor:
    """``x`` as a 1-D tensor in C order. Shapes: s -> (prod(s),).

    >>> import autobp as ab
    >>> ab.flatten(ab.zeros(2, 3)).shape
    (6,)
    """
    return reshape(x, (-1,))
