"""Shape ops: reshaping, transposing, broadcasting and summing back, joining and splitting.

Shapes are stated in each docstring. These ops move values without arithmetic, so each vjp
moves the gradient back the same way (reshape back, transpose back, sum back). They are linear
(``linear=True``): the jvp moves the tangent the way the op moves the values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import accumulate, pairwise
from typing import Any

import numpy as np

from autobp.backends import as_array, describe, namespace
from autobp.backends.shapes import summed_axes
from autobp.ops.indexing import getitem, scatter_add
from autobp.ops.padding import pad_by_copies, pad_sources
from autobp.ops.registry import Hints, composite, op
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


def array_of(value: Any) -> Any:
    """A Tensor's array, or an array as it is: what a vjp rule reads for the parts of its gradient
    that are not differentiated (masks, comparisons, counts), on Tensors or, first order, on arrays."""
    return value.data if isinstance(value, Tensor) else value


def _shape(shape: Any) -> tuple[int, ...]:
    """A shape argument (an int, a list, a tuple) as a tuple of ints."""
    return (int(shape),) if isinstance(shape, int | np.integer) else tuple(int(n) for n in shape)


# numpy's fast forwards of these ops (np.add.reduce, a hand-strided view, the array methods) are
# in backends/numpy.py; the forwards here use the array API standard only.
@op("sum_to", hints=Hints(shapes="sum_to"), linear=True)
def sum_to(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``x`` down to ``shape``, undoing a numpy broadcast from ``shape`` to ``x.shape``.

    Shapes: x (..., *s) -> shape, where ``shape`` broadcasts to ``x.shape``.
    """
    if not hasattr(x, "shape"):  # (a Python number; the engine calls this forward on arrays, often)
        x = as_array(x)
    xp = namespace(x)
    shape = shape if type(shape) is tuple else _shape(shape)
    axes = summed_axes(tuple(x.shape), shape)
    if not axes:  # (a new array object even so: the registry gives an op's returned input a numpy view)
        return xp.reshape(x, shape)
    summed = xp.sum_kept(x, axes)
    return summed if tuple(summed.shape) == shape else xp.reshape(summed, shape)


@op("broadcast_to", hints=Hints(shapes="broadcast_to"), linear=True)
def broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` broadcast to ``shape`` (a read-only view). Shapes: s -> shape, s broadcastable to it."""
    x = as_array(x)
    return namespace(x).broadcast_to(x, _shape(shape))


broadcast_to.defvjp(lambda grad, out, x, shape: sum_to(grad, x.shape), plain_arrays=True)  # copies sum back
sum_to.defvjp(
    lambda grad, out, x, shape: broadcast_to(grad, x.shape), plain_arrays=True
)  # the adjoint of summing is copying


@op("reshape", hints=Hints(shapes="reshape"), linear=True)
def reshape(x: Any, shape: Any) -> Any:
    """``x`` with a new shape of the same size (one entry may be -1). Shapes: s -> shape."""
    x = as_array(x)
    return namespace(x).reshape(x, _shape(shape))


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
    order = tuple(int(a) % ndim if ndim and -ndim <= a < ndim else -1 for a in axes)
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
    count = 1 if isinstance(axis, int | np.integer) else len(tuple(axis))
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
            grads.append(getitem(grad, _along(axis % out.ndim, slice(int(start), int(end)))))
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
    where = axis % out.ndim
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
    if isinstance(indices_or_sections, int | np.integer):
        sections = int(indices_or_sections)
        if sections <= 0 or size % sections:
            raise ValueError(
                f"split: axis {axis} of shape {shape} (size {size}) does not divide into {sections} equal sections"
            )
        bounds = list(range(0, size + 1, size // sections)) if size else [0] * (sections + 1)
    else:
        bounds = [0, *(int(i) for i in indices_or_sections), size]
    return [getitem(x, _along(where, slice(start, end))) for start, end in pairwise(bounds)]


PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad_widths(pad_width: Any, ndim: int) -> np.ndarray:
    """``pad_width`` (int, (before, after), one pair per axis, or {axis: int or pair}) as an (ndim, 2) array."""
    if isinstance(pad_width, dict):
        table = np.zeros((ndim, 2), dtype=np.intp)
        for axis, width in pad_width.items():
            table[normalize_axes(axis, ndim, "pad")] = width
        pad_width = table
    widths = np.asarray(pad_width)
    if widths.dtype.kind not in "iu" and widths.size:
        raise TypeError(f"pad: pad_width must be integers, got {pad_width!r}")
    try:
        widths = np.broadcast_to(widths.astype(np.intp).reshape(-1, 2) if widths.size == 0 else widths, (ndim, 2))
    except ValueError:
        raise ValueError(
            f"pad: pad_width {pad_width!r} does not fit a {ndim}-d array: give an int, a (before, after) pair "
            "or one pair per axis"
        ) from None
    if (widths < 0).any():
        raise ValueError(f"pad: pad widths must be non-negative, got {pad_width!r}")
    return widths


@op("pad", hints=Hints(shapes="pad"))
def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> Any:
    """``x`` padded along each axis (numpy's ``pad``; modes constant, edge, reflect, symmetric, wrap).

    numpy and CuPy pad with their own ``pad``; other libraries copy elements with ``take`` and
    join constants with ``concat``. Shapes: s -> s[i] + before[i] + after[i] per axis.

    >>> import autobp as ab
    >>> ab.pad(ab.ones(2), (1, 2)).tolist()
    [0.0, 1.0, 1.0, 0.0, 0.0]
    """
    x = as_array(x)
    if isinstance(constant_values, Tensor) and constant_values.requires_grad:
        # A keyword gets no gradient: the fill value's would be lost without a word.
        raise TypeError(
            f"pad: constant_values is a Tensor that requires grad ({describe(constant_values)}); pad "
            "differentiates x only. Pad with zeros and add the fill through an op, e.g. "
            "ab.pad(x, w) + ab.pad(ab.zeros_like(x), w, constant_values=1.0) * value"
        )
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode {mode!r} is not supported; use one of {PAD_MODES}")
    widths = [(int(b), int(a)) for b, a in pad_widths(pad_width, x.ndim)]
    xp = namespace(x)
    if x.ndim == 0:  # nothing to pad (numpy's own pad fails on an empty width table)
        return xp.asarray(x, copy=True)
    if xp.pad is not None:
        if mode == "constant":
            return xp.pad(x, widths, "constant", constant_values=constant_values)
        return xp.pad(x, widths, mode)
    return pad_by_copies(xp, x, widths, mode, constant_values)


def _pad_back(grad: Tensor, out: Tensor, x: Tensor, pad_width: Any, mode: str = "constant", **_: Any) -> Tensor:
    widths = pad_widths(pad_width, x.ndim)
    if mode == "constant":  # the padding is constant: only the inner block depends on x
        return getitem(grad, tuple(slice(int(b), int(b) + n) for (b, _a), n in zip(widths, x.shape, strict=True)))
    # Other modes copy elements of x: add each copy back to its source, one axis at a time.
    shape = list(grad.shape)
    for axis, ((before, after), size) in enumerate(zip(widths, x.shape, strict=True)):
        if before or after:
            shape[axis] = size
            index = (slice(None),) * axis + (pad_sources(size, int(before), int(after), mode),)
            grad = scatter_add(grad, index, tuple(shape))
    return grad


pad.defvjp(_pad_back, plain_arrays=True)
# Padding is affine: the tangent is padded the same way, with zeros where constants went in.
pad.defjvp(
    lambda tangent, out, x, pad_width, mode="constant", constant_values=0: pad(tangent, pad_width, mode),
    plain_arrays=True,
)
