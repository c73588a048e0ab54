"""How the shape ops (and the reductions and linalg) read their arguments: axes, shapes, arrays."""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from autobp.tensor import Tensor


def normalize_axes(axis: Any, ndim: int, name: str) -> tuple[int, ...]:
    """``axis`` (None, int or tuple) as a sorted tuple of non-negative axes; errors name the op."""
    if axis is None:
        return tuple(range(ndim))
    # (the usual cases inline: this runs on every reduction)
    axes = (axis,) if isinstance(axis, int | np.integer) else axis if type(axis) is tuple else given_axes_of(name, axis)
    result = []
    for a in axes:
        if type(a) is not int:  # each axis read as numpy reads it (a 0-d array, a Tensor: by __index__)
            if isinstance(a, bool | np.bool_) and name not in _BOOL_AXES:
                raise bool_axis_error(name, a)
            try:
                a = operator.index(a)
            except TypeError:
                raise TypeError(f"{name}: axis {a!r} is not an integer or a tuple of integers") from None
        if not -ndim <= a < ndim or (ndim == 0 and a not in (0, -1)):
            raise np.exceptions.AxisError(f"{name}: axis {a} is out of bounds for an array of dimension {ndim}")
        result.append(a % ndim if ndim else 0)
    if len(set(result)) != len(result):
        raise ValueError(f"{name}: repeated axis in {axis}")
    return tuple(sorted(result)) if ndim else ()


def given_axes_of(name: str, axis: Any) -> tuple[Any, ...]:
    """``given_axes``, with an error naming the op for an axis that is no integer (a float)."""
    try:
        return given_axes(axis)
    except TypeError:
        raise TypeError(f"{name}: axis {axis!r} is not an integer or a tuple of integers") from None


# numpy's reductions and squeeze refuse a bool axis (`mean(x, True)` with keepdims meant reduced
# axis 1); its expand_dims, swapaxes and split take True as 1, and so do these.
_BOOL_AXES = frozenset({"expand_dims", "swapaxes", "split", "pad"})


def bool_axis_error(name: str, axis: Any) -> TypeError:
    """The error for a bool given as an axis where numpy refuses it."""
    return TypeError(f"{name}: axis must be an integer, got {axis!r} (a bool is no axis; keepdims is a keyword)")


def given_axes(axis: Any) -> tuple[Any, ...]:
    """``axis`` (an int or a sequence of them) as a tuple. One axis may be any object that is an
    index, as numpy takes it: a numpy integer, a 0-d integer array, a one-element integer Tensor
    (read by its ``__index__``: on a tape, a read guarded by its value)."""
    if isinstance(axis, int | np.integer | np.bool_):  # (a bool: refused or taken by normalize_axes)
        return (axis,)
    if isinstance(axis, tuple | list):
        return tuple(axis)
    try:
        return (operator.index(axis),)
    except TypeError:
        return tuple(axis)  # (an iterable of axes; anything else fails here, as before)


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` with the reduced ``axes`` set to 1: the shape of a reduction with keepdims."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def array_of(value: Any) -> Any:
    """A Tensor's array, or an array as it is: what a vjp rule reads for the parts of its gradient
    that are not differentiated (masks, comparisons, counts), on Tensors or, first order, on arrays."""
    return value.data if isinstance(value, Tensor) else value


def as_shape(shape: Any) -> tuple[int, ...]:
    """A shape argument (an int, a list, a tuple) as a tuple of ints.

    Each size is read as numpy reads it, by ``__index__``: a numpy integer, a 0-d integer array,
    a one-element integer Tensor; a float is a TypeError (``int()`` took ``6.9`` as 6).
    """
    if isinstance(shape, int | np.integer):
        return (int(shape),)
    if not isinstance(shape, tuple | list):
        try:
            return (operator.index(shape),)  # one size as a 0-d integer array, as numpy takes it
        except TypeError:
            pass
    return tuple(operator.index(n) for n in shape)
