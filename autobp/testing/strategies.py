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
]

MAX_DIMS = 3
MAX_SIDE = 4


def shapes(min_dims: int = 0, max_dims: int = MAX_DIMS, min_side: int = 1, max_side: int = MAX_SIDE) -> Any:
    """Array shapes: tuples of ``min_dims..max_dims`` sides in ``min_side..max_side``."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side)


def elements_in(low: float, high: float, dtype: Any = np.float64) -> Any:
    """Finite floats in ``[low, high]``, representable in ``dtype``."""
    width = np.dtype(dtype).itemsize * 8
    return st.floats(low, high, allow_nan=False, allow_infinity=False, width=width)


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


def tensors(
    shape: Any = None, dtype: Any = np.float64, elements: Any = None, requires_grad: bool = False
) -> Any:
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
    choices = []
    if allow_none:
        choices.append(st.none())
    if ndim > 0:
        choices.append(st.integers(-ndim, ndim - 1))
        if allow_tuple:
            choices.append(
                st.lists(st.integers(0, ndim - 1), unique=True, max_size=ndim).map(
                    lambda axes: tuple(a - ndim if i % 2 else a for i, a in enumerate(axes))
                )
            )
    else:
        choices.append(st.just(()))
    return draw(st.one_of(*choices))
