"""Shape ops: reshaping, transposing, broadcasting and summing back, joining and splitting.

Shapes are stated in each docstring. These ops move values without arithmetic, so each vjp
moves the gradient back the same way (reshape back, transpose back, sum back). They are linear
(``linear=True``): the jvp moves the tangent the way the op moves the values.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from autobp.ops.indexing import getitem, scatter_add
from autobp.ops.registry import Hints, composite, describe, op
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


@op("sum_to", hints=Hints(shapes="sum_to"), linear=True)
def sum_to(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``x`` down to ``shape``, undoing a numpy broadcast from ``shape`` to ``x.shape``.

    Shapes: x (..., *s) -> shape, where ``shape`` broadcasts to ``x.shape``.
    """
    if type(x) is not np.ndarray:
        x = np.asarray(x)
    shape = shape if type(shape) is tuple else tuple(shape)
    axes = _summed_axes(x.shape, shape)
    summed = np.add.reduce(x, axes, keepdims=True) if axes else x  # x.sum(...) without its wrapper
    return summed if summed.shape == shape else summed.reshape(shape)


@functools.lru_cache(maxsize=1024)
def _summed_axes(have: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes ``sum_to`` sums over (cached: backward asks for the same few shapes every step)."""
    lead = len(have) - len(shape)
    if lead < 0 or any(n not in (1, m) for n, m in zip(shape, have[lead:], strict=True)):
        raise ValueError(f"sum_to: cannot sum shape {have} down to {shape}")
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and have[lead + i] != 1)


@op("broadcast_to", hints=Hints(shapes="broadcast_to"), linear=True)
def broadcast_to(x: Any, shape: tuple[int, ...]) -> np.ndarray:
    """``x`` broadcast to ``shape`` (a read-only view). Shapes: s -> shape, s broadcastable to it."""
    x = np.asarray(x)
    shape = tuple(shape)
    if x.ndim == 0 and x.flags.c_contiguous:
        # The view np.broadcast_to makes of a 0-d array (all strides 0), at a fifth of its cost:
        # this runs in the backward of every full sum and mean.
        view = np.ndarray(shape, x.dtype, x, 0, (0,) * len(shape))
        view.setflags(write=False)
        return view
    return np.broadcast_to(x, shape)


broadcast_to.defvjp(lambda grad, out, x, shape: sum_to(grad, x.shape), plain_arrays=True)  # copies sum back
sum_to.defvjp(
    lambda grad, out, x, shape: broadcast_to(grad, x.shape), plain_arrays=True
)  # the adjoint of summing is copying


@op("reshape", hints=Hints(shapes="reshape"), linear=True)
def reshape(x: Any, shape: Any) -> np.ndarray:
    """``x`` with a new shape of the same size (one entry may be -1). Shapes: s -> shape."""
    return np.reshape(x, shape)


reshape.defvjp(lambda grad, out, x, shape: grad.reshape(x.shape), plain_arrays=True)


@op("transpose", hints=Hints(shapes="transpose"), linear=True)
def transpose(x: Any, axes: Any = None) -> np.ndarray:
    """``x`` with its axes permuted (reversed when ``axes`` is None). Shapes: s -> s[axes]."""
    return np.transpose(x, axes)


def _transpose_back(grad: Tensor, out: Tensor, x: Tensor, axes: Any = None) -> Tensor:
    # The inverse permutation undoes the transpose.
    return grad.transpose(None if axes is None else tuple(np.argsort(axes)))


transpose.defvjp(_transpose_back, plain_arrays=True)


@op("swapaxes", hints=Hints(shapes="swapaxes"), linear=True)
def swapaxes(x: Any, axis1: int, axis2: int) -> np.ndarray:
    """``x`` with two axes interchanged. Shapes: s -> s with s[axis1], s[axis2] swapped."""
    return x.swapaxes(axis1, axis2) if type(x) is np.ndarray else np.swapaxes(x, axis1, axis2)


swapaxes.defvjp(lambda grad, out, x, axis1, axis2: grad.swapaxes(axis1, axis2), plain_arrays=True)  # its own inverse


@op("expand_dims", hints=Hints(shapes="expand_dims"), linear=True)
def expand_dims(x: Any, axis: Any) -> np.ndarray:
    """``x`` with new axes of size 1 at ``axis`` (int or tuple, positions in the result).

    Shapes: s -> s with a 1 inserted at each of ``axis``.

    >>> import autobp as ab
    >>> ab.expand_dims(ab.zeros(2, 3), (0, -1)).shape
    (1, 2, 3, 1)
    """
    x = np.asarray(x)
    count = 1 if isinstance(axis, int | np.integer) else len(tuple(axis))
    axes = normalize_axes(axis, x.ndim + count, "expand_dims")
    return np.expand_dims(x, axes)


expand_dims.defvjp(lambda grad, out, x, axis: grad.reshape(x.shape), plain_arrays=True)  # same values, old shape


@op("squeeze", hints=Hints(shapes="squeeze"), linear=True)
def squeeze(x: Any, axis: Any = None) -> np.ndarray:
    """``x`` without axes of size 1 (all of them, or those in ``axis``, which must have size 1).

    Shapes: s -> s without the squeezed axes.

    >>> import autobp as ab
    >>> ab.squeeze(ab.zeros(1, 3, 1), axis=0).shape
    (3, 1)
    """
    x = np.asarray(x)
    if axis is None:
        return np.squeeze(x)
    axes = normalize_axes(axis, x.ndim, "squeeze")
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"squeeze: cannot squeeze axis {a} of shape {x.shape}: its size is {x.shape[a]}, not 1")
    return np.squeeze(x, axis=axes)


squeeze.defvjp(lambda grad, out, x, axis=None: grad.reshape(x.shape), plain_arrays=True)  # same values, old shape


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
def _concatenate(*xs: Any, axis: int | None = 0) -> np.ndarray:
    """The inputs joined along an existing ``axis`` (flattened first when ``axis`` is None)."""
    return np.concatenate(xs, axis=axis)


def _concatenate_back(grad: Tensor, out: Tensor, *xs: Tensor, axis: int | None = 0) -> list[Tensor | None]:
    # Each input receives the slice of the gradient where its values went.
    sizes = [x.size if axis is None else x.shape[axis] for x in xs]
    ends = np.cumsum(sizes)
    grads: list[Tensor | None] = []
    for x, start, end in zip(xs, ends - sizes, ends, strict=True):
        if not x.requires_grad:
            grads.append(None)
        elif axis is None:
            grads.append(reshape(getitem(grad, slice(int(start), int(end))), x.shape))
        else:
            grads.append(getitem(grad, _along(axis % out.ndim, slice(int(start), int(end)))))
    return grads


_concatenate.defvjp_variadic(_concatenate_back, plain_arrays=False)  # reads .requires_grad


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
def _stack(*xs: Any, axis: int = 0) -> np.ndarray:
    """The inputs joined along a new ``axis``."""
    return np.stack(xs, axis=axis)


def _stack_back(grad: Tensor, out: Tensor, *xs: Tensor, axis: int = 0) -> list[Tensor | None]:
    # Input i went to position i along the new axis.
    where = axis % out.ndim
    return [getitem(grad, _along(where, i)) if x.requires_grad else None for i, x in enumerate(xs)]


_stack.defvjp_variadic(_stack_back, plain_arrays=False)  # reads .requires_grad


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
    shape = np.shape(x.data if isinstance(x, Tensor) else x)
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
def pad(x: Any, pad_width: Any, mode: str = "constant", constant_values: Any = 0) -> np.ndarray:
    """``x`` padded along each axis (numpy's ``pad``; modes constant, edge, reflect, symmetric, wrap).

    Shapes: s -> s[i] + before[i] + after[i] per axis.

    >>> import autobp as ab
    >>> ab.pad(ab.ones(2), (1, 2)).tolist()
    [0.0, 1.0, 1.0, 0.0, 0.0]
    """
    x = np.asarray(x)
    if isinstance(constant_values, Tensor) and constant_values.requires_grad:
        # A keyword gets no gradient: the fill value's would be lost without a word.
        raise TypeError(
            f"pad: constant_values is a Tensor that requires grad ({describe(constant_values)}); pad "
            "differentiates x only. Pad with zeros and add the fill through an op, e.g. "
            "ab.pad(x, w) + ab.pad(ab.zeros_like(x), w, constant_values=1.0) * value"
        )
    if mode not in PAD_MODES:
        raise ValueError(f"pad: mode {mode!r} is not supported; use one of {PAD_MODES}")
    widths = pad_widths(pad_width, x.ndim)
    if x.ndim == 0:  # nothing to pad (numpy's own pad fails on an empty width table)
        return x.copy()
    if mode == "constant":
        return np.pad(x, widths, "constant", constant_values=constant_values)
    return _pad_array(x, widths, mode)


def _pad_array(array: np.ndarray, widths: Any, mode: str) -> np.ndarray:
    # numpy's stubs type the mode as a Literal; ours was checked against PAD_MODES.
    return np.pad(array, widths, mode)  # type: ignore[call-overload,no-any-return]


def _pad_back(grad: Tensor, out: Tensor, x: Tensor, pad_width: Any, mode: str = "constant", **_: Any) -> Tensor:
    widths = pad_widths(pad_width, x.ndim)
    if mode == "constant":  # the padding is constant: only the inner block depends on x
        return getitem(grad, tuple(slice(int(b), int(b) + n) for (b, _a), n in zip(widths, x.shape, strict=True)))
    # Other modes copy elements of x (padding an index range the same way says which): add the copies back.
    sources = [_pad_array(np.arange(n), ((b, a),), mode) for (b, a), n in zip(widths, x.shape, strict=True)]
    return scatter_add(grad, np.ix_(*sources), x.shape)


pad.defvjp(_pad_back, plain_arrays=True)
# Padding is affine: the tangent is padded the same way, with zeros where constants went in.
pad.defjvp(
    lambda tangent, out, x, pad_width, mode="constant", constant_values=0: pad(tangent, pad_width, mode),
    plain_arrays=True,
)
