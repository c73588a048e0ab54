"""Shape ops, by family: ``broadcasting`` (broadcast_to, sum_to), ``reshaping`` (reshape, transpose,
swapaxes, expand_dims, squeeze, flatten), ``joining`` (concatenate, stack, split) and ``padding``
(pad); ``arguments`` reads their axes and shapes.

These ops move values without arithmetic, so each vjp moves the gradient back the same way. The
registry lists the families in the order above (``joining`` imports ``reshaping``), which the op
tables and the generated tests follow. numpy's fast forwards of these ops (np.add.reduce, a
hand-strided view, the array methods) are in backends/numpy.py; the forwards here use the array
API standard only. ``autobp.ops`` re-exports every op.
"""

from autobp.ops.shape.arguments import array_of as array_of  # (reductions and linalg import these from here)
from autobp.ops.shape.arguments import kept_shape as kept_shape
from autobp.ops.shape.arguments import normalize_axes as normalize_axes
from autobp.ops.shape.broadcasting import broadcast_to, sum_to
from autobp.ops.shape.joining import concatenate, split, stack
from autobp.ops.shape.padding import pad
from autobp.ops.shape.reshaping import expand_dims, flatten, reshape, squeeze, swapaxes, transpose

__all__ = [
    "broadcast_to",
    "concatenate",
    "expand_dims",
    "flatten",
    "pad",
    "reshape",
    "split",
    "squeeze",
    "stack",
    "sum_to",
    "swapaxes",
    "transpose",
]
