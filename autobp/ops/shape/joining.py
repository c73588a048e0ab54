"""Joining and splitting: ``concatenate``, ``stack`` and ``split``.

Shapes: stated in each docstring. Each input of a join receives the slice of the gradient where
its values went; ``split`` is composed of ``getitem``. The joins are linear (``linear=True``): the
jvp joins the tangents.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import Any

import numpy as np

from autobp.backends import as_array, namespace
from autobp.ops.indexing import getitem
from autobp.ops.registry import Hints, composite, op
from autobp.ops.shape.arguments import normalize_axes
from autobp.ops.shape.reshaping import reshape
from autobp.tensor import Tensor


def _along(axis: int, part: int | slice) -> tuple[Any, ...]:
    """The index that picks ``part`` along ``axis`` and keeps every other axis whole."""
    return (slice(None),) * axis + (part,)


@op("concatenate", arity=None, hints=Hints(shapes="concatenate"), linear=True)
def _concatenate(*xs: Any, axis: int | None = 0) -> Any:
    """The inputs joined along an existing ``axis`` (flattened first when ``axis`` is None)."""
    arrays = [as_array(x) for x in xs]
    return namespace(*arrays).concat(arrays, axis=axis)


def _concatenate_back(
    grad: Tensor, out: Tensor, *xs: Tensor, needs: Sequence[bool], axis: int | None = 0
) -> list[Tensor | None]:
    # Each input receives the slice of the gradient where its values went.
    sizes = [math.prod(x.shape) if axis is None else x.shape[axis] for x in xs]
    ends = list(accumulate(sizes))
    grads: list[Tensor | None] = []
    for x, size, end, needed in zip(xs, sizes, ends, needs, strict=True):
        start = end - size
        if not needed:
            grads.append(None)
        elif axis is None:
            grads.append(reshape(getitem(grad, slice(int(start), int(end))), x.shape))
        else:
            grads.append(getitem(grad, _along(operator.index(axis) % out.ndim, slice(int(start), int(end)))))
    return grads


_concatenate.defvjp_variadic(_concatenate_back, plain_arrays=True)


def concatenate(tensors: Sequence[Any], axis: int | None = 0) -> Tensor:
    """Join a sequence of tensors along an existing axis (numpy's ``concatenate``).

    Shapes: equal except along ``axis`` -> summed along ``axis``; ``axis=None`` flattens first.

    >>> import autobp as ab
    >>> ab.concatenate([ab.zeros(2, 3), ab.ones(1, 3)]).shape
    (3, 3)
    """
    return _concatenate(*tensors, axis=axis)


concatenate.op = _concatenate.op  # type: ignore[attr-defined]


@op("stack", arity=None, hints=Hints(shapes="stack"), linear=True)
def _stack(*xs: Any, axis: int = 0) -> Any:
    """The inputs joined along a new ``axis``."""
    arrays = [as_array(x) for x in xs]
    return namespace(*arrays).stack(arrays, axis=axis)


def _stack_back(grad: Tensor, out: Tensor, *xs: Tensor, needs: Sequence[bool], axis: int = 0) -> list[Tensor | None]:
    # Input i went to position i along the new axis.
    where = operator.index(axis) % out.ndim  # (an axis given as a 0-d array or Tensor too)
    return [getitem(grad, _along(where, i)) if needed else None for i, needed in enumerate(needs)]


_stack.defvjp_variadic(_stack_back, plain_arrays=True)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join a sequence of same-shape tensors along a new axis (numpy's ``stack``).

    Shapes: n tensors of shape s -> s with n inserted at ``axis``.

    >>> import autobp as ab
    >>> ab.stack([ab.zeros(2, 3), ab.ones(2, 3)], axis=-1).shape
    (2, 3, 2)
    """
    return _stack(*tensors, axis=axis)


stack.op = _stack.op  # type: ignore[attr-defined]


@composite("split", hints=Hints(shapes="split"))
def split(x: Any, indices_or_sections: Any, axis: int = 0) -> list[Tensor]:
    """Split ``x`` along ``axis`` into equal sections or at the given indices (numpy's ``split``).

    Shapes: an int n splits s[axis] into n equal parts; indices [i, j] give x[:i], x[i:j], x[j:].

    >>> import autobp as ab
    >>> [t.shape for t in ab.split(ab.zeros(5, 2), [1, 3])]
    [(1, 2), (2, 2), (2, 2)]
    """
    shape = tuple(as_array(x.data if isinstance(x, Tensor) else x).shape)
    if not shape:
        raise ValueError("split: cannot split a 0-d tensor")
    (where,) = normalize_axes(axis, len(shape), "split")
    size = shape[where]
    sections = _sections(indices_or_sections)
    if sections is not None:
        if sections <= 0 or size % sections:
            raise ValueError(
                f"split: axis {axis} of shape {shape} (size {size}) does not divide into {sections} equal sections"
            )
        bounds = list(range(0, size + 1, size // sections)) if size else [0] * (sections + 1)
    else:
        bounds = [0, *(_index(i) for i in indices_or_sections), size]
    return [getitem(x, _along(where, slice(start, end))) for start, end in pairwise(bounds)]


def _sections(given: Any) -> int | None:
    """``split``'s ``indices_or_sections`` as a number of sections, or None for a sequence of
    indices. A number is read by ``__index__`` (an int, a numpy integer, a 0-d integer array or
    Tensor), as numpy reads it; anything else that is not a sequence is refused, naming split."""
    if isinstance(given, int | np.integer):
        return int(given)
    if getattr(given, "ndim", None) == 0 or not hasattr(given, "__iter__"):
        try:
            return operator.index(given)
        except TypeError:
            raise TypeError(f"split: indices_or_sections must be an int or a sequence of ints, got {given!r}") from None
    return None


def _index(i: Any) -> int:
    """One split index, read by ``__index__`` as numpy's slicing reads it (``int()`` took 1.7 as 1)."""
    try:
        return operator.index(i)
    except TypeError:
        raise TypeError(f"split: index {i!r} is not an integer (indices_or_sections must be ints)") from None
