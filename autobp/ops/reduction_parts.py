"""What the reductions (``autobp.ops.reduction``) share besides ops: shapes of reduced axes, the
element count, and the float32 accumulation of narrower floats (float16, bfloat16).

Shapes: x (s) -> s without the reduced axes; ``kept`` gives them back as 1s, so a reduction's
output (or its gradient) broadcasts against ``x``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from autobp.backends import namespace
from autobp.ops.elementwise import astype
from autobp.ops.shape import array_of, broadcast_to, kept_shape, normalize_axes, reshape
from autobp.tensor import Tensor

__all__ = ["expand_reduced", "kept", "as_array", "element_count", "accumulator", "in_float32", "floats", "divided"]


def expand_reduced(grad: Tensor, x: Tensor, axis: Any) -> Tensor:
    """A reduction's output gradient broadcast back to the input's shape."""
    if axis is None or grad.ndim == x.ndim:  # a 0-d total, or keepdims: it broadcasts as it is
        return broadcast_to(grad, x.shape)
    axes = normalize_axes(axis, x.ndim, "reduction")
    return broadcast_to(reshape(grad, kept_shape(x.shape, axes)), x.shape)


def kept(value: Tensor, x: Tensor, axis: Any) -> Tensor:
    """A reduction's output (or its gradient) with the reduced axes as 1s: it broadcasts against x."""
    return reshape(value, kept_shape(x.shape, normalize_axes(axis, x.ndim, "reduction")))


def as_array(xp: Any, x: Any) -> Any:
    """``x`` as an array of ``xp`` (numpy's path also takes lists and scalars)."""
    return x if hasattr(x, "shape") else xp.asarray(x)


def element_count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """How many elements each output element reduces over."""
    return math.prod(shape[a] for a in axes)


# (library, dtype) -> accumulator's answer: asked at every reduction, where a dict read costs a
# fifth of asking the library (finfo).
_ACCUMULATORS: dict[tuple[str, Any], Any] = {}


def accumulator(xp: Any, dtype: Any) -> Any:
    """float32 for a float dtype narrower than it (float16, bfloat16), else None.

    Reductions compute those in float32 and round the result once, as numpy's mean and PyTorch
    do: in float16 a sum of many terms passes 65504 (inf) or stalls (2048 + 1 is 2048), and an
    element count past 65504 is itself inf, so a mean came out 0, inf or nan.
    """
    key = (xp.name, dtype)
    if key not in _ACCUMULATORS:
        _ACCUMULATORS[key] = xp.float32 if xp.float_dtype(dtype) and xp.finfo(dtype).bits < 32 else None
    return _ACCUMULATORS[key]


def in_float32(rule: Any) -> Any:
    """A vjp or jvp rule ``rule(grad or tangent, out, x, ...)`` computed in float32 when ``x`` is a
    narrower float, its result cast back to ``x``'s dtype (see ``accumulator``)."""

    @functools.wraps(rule)
    def widened(first: Any, out: Any, x: Any, *args: Any, **kwargs: Any) -> Any:
        data = array_of(x)
        if accumulator(namespace(data), data.dtype) is None:
            return rule(first, out, x, *args, **kwargs)
        wide = [astype(value, "float32") for value in (first, out, x)]
        return astype(rule(*wide, *args, **kwargs), data.dtype)

    return widened


def floats(xp: Any, x: Any) -> Any:
    """``x``, with integers and booleans as float64 (numpy's mean and var do so; the standard's refuse)."""
    return x if xp.float_dtype(x.dtype) else xp.astype(x, xp.float64)


def divided(value: Tensor, count: int) -> Tensor:
    """``value / count``, in float32 for narrower floats (a count past 65504 is inf in float16)."""
    data = array_of(value)
    if accumulator(namespace(data), data.dtype) is None:
        return value / count
    return astype(astype(value, "float32") / count, data.dtype)
