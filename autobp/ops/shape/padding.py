"""Padding: ``pad``, numpy's modes (constant, edge, reflect, symmetric, wrap), differentiable.

Shapes: s -> s[i] + before[i] + after[i] per axis. Libraries without a ``pad`` of their own take
the array-API route of ``autobp/ops/padding.py``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autobp.backends import as_array, describe, namespace
from autobp.ops.indexing import getitem, scatter_add
from autobp.ops.padding import pad_by_copies, pad_sources
from autobp.ops.registry import Hints, op
from autobp.ops.shape.arguments import normalize_axes
from autobp.tensor import Tensor

PAD_MODES = ("constant", "edge", "reflect", "symmetric", "wrap")


def pad_widths(pad_width: Any, ndim: int) -> np.ndarray:
    """``pad_width`` (int, (before, after), one pair per axis, or {axis: int or pair}) as an (ndim, 2) array."""
    if isinstance(pad_width, dict):
        table = np.zeros((ndim, 2), dtype=np.intp)
        for axis, width in pad_width.items():
            given = np.asarray(width)
            if given.dtype.kind not in "iu":  # (the table is integers: 1.5 was written as 1)
                raise TypeError(f"pad: pad_width must be integers, got {pad_width!r}")
            table[normalize_axes(axis, ndim, "pad")] = given
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
    non_finite = isinstance(constant_values, float) and not math.isfinite(constant_values)
    if non_finite and mode == "constant" and xp.isdtype(x.dtype, "integral"):
        # numpy's pad raises; a fill of another library cast nan into int32 as -2147483648.
        try:
            int(constant_values)
        except (ValueError, OverflowError) as error:
            raise type(error)(f"pad: {error} (constant_values {constant_values} for {describe(x)})") from None
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
