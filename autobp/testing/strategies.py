"""Hypothesis strategies for property-testing code written with autobp.

Requires hypothesis (``pip install "autobp[test]"``); ``import autobp`` never imports it.

>>> from hypothesis import given
>>> import autobp as ab
>>> from autobp.testing.strategies import tensors
>>> @given(tensors(shape=(3,), elements=(-1.0, 1.0), requires_grad=True))
... def test_square_grad(x):
...     assert ab.gradcheck(lambda t: (t * t).sum(), x)
>>> test_square_grad()
"""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autobp.tensor import Tensor

__all__ = [
    "shapes",
    "arrays",
    "tensors",
    "broadcastable_shapes",
    "valid_axes",
    "elements_in",
    "basic_indices",
    "advanced_indices",
]

MAX_DIMS = 3
MAX_SIDE = 4


def shapes(min_dims: int = 0, max_dims: int = MAX_DIMS, min_side: int = 1, max_side: int = MAX_SIDE) -> Any:
    """Array shapes: tuples of ``min_dims..max_dims`` sides in ``min_side..max_side``."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def elements_in(low: float, high: float, dtype: Any = np.float64) -> Any:
    """Finite floats in ``[low, high]``, representable in ``dtype``.

    Bounds that ``dtype`` cannot represent (0.1 in float32) are rounded inward to the nearest
    values it can: hypothesis refuses them as they are.
    """
    kind = np.dtype(dtype).type
    width = np.dtype(dtype).itemsize * 8
    inner_low, inner_high = kind(low), kind(high)
    # (compared as Python floats: numpy 2 compares a float32 with a Python float in float32, where
    # 0.2 and float32(0.2) are equal, though the latter is above 0.2)
    if float(inner_low) < low:
        inner_low = np.nextafter(inner_low, kind(np.inf))
    if float(inner_high) > high:
        inner_high = np.nextafter(inner_high, kind(-np.inf))
    return st.floats(float(inner_low), float(inner_high), allow_nan=False, allow_infinity=False, width=width)


def _elements(elements: Any, dtype: Any) -> Any:
    if elements is None:
        return elements_in(-2.0, 2.0, dtype)
    if isinstance(elements, tuple):
        return elements_in(elements[0], elements[1], dtype)
    return elements


def arrays(shape: Any = None, dtype: Any = np.float64, elements: Any = None) -> Any:
    """numpy arrays of ``shape`` (a tuple, a strategy of tuples, or None for small shapes).

    ``elements`` is a strategy, a ``(low, high)`` range, or None for ``[-2, 2]``.
    """
    return hnp.arrays(np.dtype(dtype), shapes() if shape is None else shape, elements=_elements(elements, dtype))


def tensors(shape: Any = None, dtype: Any = np.float64, elements: Any = None, requires_grad: bool = False) -> Any:
    """autobp Tensors; arguments as for ``arrays``.

    Shapes: ``shape`` (drawn when a strategy or None).
    """
    return arrays(shape, dtype, elements).map(lambda a: Tensor(a, requires_grad=requires_grad))


@st.composite
def broadcastable_shapes(draw: Any, num_shapes: int = 2, min_dims: int = 0, max_dims: int = MAX_DIMS) -> tuple:
    """``num_shapes`` shapes that broadcast together as numpy does (sides of 1, missing leading axes)."""
    result = draw(
        hnp.mutually_broadcastable_shapes(
            num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=1, max_side=MAX_SIDE
        )
    )
    return tuple(result.input_shapes)


@st.composite
def valid_axes(draw: Any, ndim: int, allow_none: bool = True, allow_tuple: bool = True) -> Any:
    """An ``axis`` argument valid for an array of ``ndim`` dimensions: None, an int or a tuple
    (negative values included)."""
    choices: list[Any] = []
    if allow_none:
        choices.append(st.none())
    if ndim > 0:
        choices.append(st.integers(-ndim, ndim - 1))
        if allow_tuple:
            # Each axis drawn with its own sign: (-1,), (-1, 0) and (-2, -1) were never drawn when
            # the sign followed the position, and a rule wrong only for them passed every run.
            choices.append(
                st.lists(
                    st.tuples(st.integers(0, ndim - 1), st.booleans()), unique_by=lambda p: p[0], max_size=ndim
                ).map(lambda axes: tuple(a - ndim if negative else a for a, negative in axes))
            )
    else:
        choices.append(st.just(()))
    return draw(st.one_of(*choices))


def _slices(side: int) -> Any:
    """Slices of an axis of length ``side``: any start and stop (out of range too), steps of either sign."""
    bound = st.none() | st.integers(-side - 1, side + 1)
    step = st.sampled_from([None, 1, 2, -1, -2, -3])
    return st.builds(slice, bound, bound, step)


def _axis_part(side: int) -> Any:
    """An int (any valid value, negative included) or a slice for one axis."""
    return _slices(side) | st.integers(-side, side - 1) if side else _slices(side)


@st.composite
def basic_indices(draw: Any, shape: tuple[int, ...], allow_newaxis: bool = True, allow_ellipsis: bool = True) -> Any:
    """Basic numpy indices for an array of ``shape``: ints, slices (negative steps), None, Ellipsis.

    Shapes: the index is valid for ``shape``; it may select nothing (empty slices).

    >>> from hypothesis import given
    >>> import autobp as ab
    >>> @given(basic_indices((3, 4)))
    ... def test_index(index):
    ...     assert ab.zeros(3, 4)[index].shape == ab.zeros(3, 4).numpy()[index].shape
    >>> test_index()
    """
    ndim = len(shape)
    used = draw(st.integers(0, ndim))
    split = draw(st.integers(0, used)) if allow_ellipsis and draw(st.booleans()) else None
    axes = list(range(used)) if split is None else [*range(split), *range(ndim - used + split, ndim)]
    parts: list[Any] = [draw(_axis_part(shape[a])) for a in axes]
    if split is not None:
        parts.insert(split, Ellipsis)
    for _ in range(draw(st.integers(0, 2)) if allow_newaxis else 0):
        parts.insert(draw(st.integers(0, len(parts))), None)
    if len(parts) == 1 and draw(st.booleans()):
        return parts[0]  # a bare component, as in x[1:3]
    return tuple(parts)


@st.composite
def advanced_indices(draw: Any, shape: tuple[int, ...]) -> Any:
    """Advanced numpy indices for an array of ``shape``: integer arrays (repeats and negative values
    included, sometimes as lists) on one or more axes, or a boolean mask over consecutive axes,
    mixed with slices and ints on the other axes.

    Shapes: the index is valid for ``shape``.

    >>> from hypothesis import given
    >>> import autobp as ab
    >>> @given(advanced_indices((3, 4)))
    ... def test_index(index):
    ...     assert ab.zeros(3, 4)[index].shape == ab.zeros(3, 4).numpy()[index].shape
    >>> test_index()
    """
    ndim = len(shape)
    if ndim == 0:
        return np.array(draw(st.booleans()))  # a 0-d mask: x[True] adds an axis, x[False] selects nothing
    indexable = [a for a in range(ndim) if shape[a] > 0]
    if indexable and draw(st.booleans()):
        chosen = sorted(draw(st.lists(st.sampled_from(indexable), min_size=1, max_size=len(indexable), unique=True)))
        index_shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=len(chosen), max_dims=2, max_side=3))
        parts: list[Any] = []
        for axis in range(ndim if draw(st.booleans()) else chosen[-1] + 1):
            if axis in chosen:
                side = shape[axis]
                values = hnp.arrays(
                    np.intp, index_shapes.input_shapes[chosen.index(axis)], elements=st.integers(-side, side - 1)
                )
                array = draw(values)
                parts.append(array.tolist() if array.ndim == 1 and draw(st.booleans()) else array)
            else:
                parts.append(draw(_axis_part(shape[axis])))
        return tuple(parts)
    start = draw(st.integers(0, ndim - 1))
    stop = draw(st.integers(start + 1, ndim))
    mask = draw(hnp.arrays(np.bool_, shape[start:stop], elements=st.booleans()))
    return (*(draw(_slices(shape[a])) for a in range(start)), mask)
