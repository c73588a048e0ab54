"""Broadcasting and summing back: ``broadcast_to`` and its adjoint ``sum_to``, each the other's vjp.

Shapes: stated in each docstring. Both are linear (``linear=True``): the jvp moves the tangent
the way the op moves the values.
"""

from __future__ import annotations

from typing import Any

from autobp.backends import as_array, namespace
from autobp.backends.shapes import summed_axes
from autobp.ops.registry import Hints, op
from autobp.ops.shape.arguments import as_shape


# numpy's fast forwards of the shape ops (np.add.reduce, a hand-strided view, the array methods) are
# in backends/numpy.py; the forwards here use the array API standard only.
@op("sum_to", hints=Hints(shapes="sum_to"), linear=True)
def sum_to(x: Any, shape: tuple[int, ...]) -> Any:
    """Sum ``x`` down to ``shape``, undoing a numpy broadcast from ``shape`` to ``x.shape``.

    Shapes: x (..., *s) -> shape, where ``shape`` broadcasts to ``x.shape``.
    """
    if not hasattr(x, "shape"):  # (a Python number; the engine calls this forward on arrays, often)
        x = as_array(x)
    xp = namespace(x)
    shape = shape if type(shape) is tuple else as_shape(shape)
    axes = summed_axes(tuple(x.shape), shape)
    if not axes:  # (a new array object even so: the registry gives an op's returned input a numpy view)
        return xp.reshape(x, shape)
    summed = xp.sum_kept(x, axes)
    return summed if tuple(summed.shape) == shape else xp.reshape(summed, shape)


@op("broadcast_to", hints=Hints(shapes="broadcast_to"), linear=True)
def broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
    """``x`` broadcast to ``shape`` (a read-only view). Shapes: s -> shape, s broadcastable to it."""
    x = as_array(x)
    return namespace(x).broadcast_to(x, as_shape(shape))


broadcast_to.defvjp(lambda grad, out, x, shape: sum_to(grad, x.shape), plain_arrays=True)  # copies sum back
sum_to.defvjp(
    lambda grad, out, x, shape: broadcast_to(grad, x.shape), plain_arrays=True
)  # the adjoint of summing is copying
