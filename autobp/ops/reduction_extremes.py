"""The reductions that pick elements: ``max``, ``min`` (differentiable) and ``argmax``, ``argmin``.

Shapes: as ``autobp.ops.reduction``'s: x (s) -> s without the reduced axes (or with them set to 1
under ``keepdims``). Conventions at the edges:

- ``max``/``min``: tied extremes split the gradient equally, so its mass still sums to one; a
  nan extreme's gradient goes to the nan elements (PyTorch's ``torch.max(x)`` does so; its
  ``amax(x, dim)`` gives nan to the whole slice), over any axes, all of them included. Floats
  narrower than float32 count their ties in float32.
- ``argmax``/``argmin``: the first index on ties; bools as numpy answers them on every library.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from autobp import graph
from autobp.backends import namespace
from autobp.ops.elementwise import quiet
from autobp.ops.reduction import DISTINCT_REDUCTION, reduction_jvp
from autobp.ops.reduction_parts import accumulator, as_array, kept
from autobp.ops.registry import Hints, op
from autobp.ops.shape import array_of, kept_shape, normalize_axes
from autobp.ops.shape.arguments import bool_axis_error
from autobp.tensor import Tensor

__all__ = ["max", "min", "argmax", "argmin"]


def _extreme(name: str) -> Any:
    def forward(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        xp = namespace(x)
        x = as_array(xp, x)
        axes = normalize_axes(axis, x.ndim, name)
        if xp.name != "numpy" and x.dtype == xp.bool:  # (an or, an and: as numpy answers, in uint8)
            return xp.astype(getattr(xp, name)(xp.astype(x, xp.uint8), axis=axes, keepdims=keepdims), xp.bool)
        return getattr(xp, name)(x, axis=axes, keepdims=keepdims)

    forward.__name__ = name
    forward.__doc__ = (
        f"The {name}imum over ``axis``; tied elements share the gradient equally (it sums to one).\n\n"
        "    Shapes: see the module docstring.\n\n"
        "    >>> import autobp as ab\n"
        f"    >>> x = ab.tensor({[1.0, 3.0, 3.0] if name == 'max' else [3.0, 1.0, 1.0]}, requires_grad=True)\n"
        f"    >>> ab.{name}(x).backward()\n"
        "    >>> x.grad.tolist()\n"
        "    [0.0, 0.5, 0.5]\n"
    )
    public = op(name, hints=DISTINCT_REDUCTION)(forward)

    def vjp(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        # 1/k at each of the k elements that reach the extreme, 0 elsewhere: piecewise constant.
        axes = normalize_axes(axis, x.ndim, name)
        graph.mark_untapeable(f"{name}'s gradient reads which elements reach the {name}imum")
        values = array_of(x)
        xp = namespace(values)
        extreme = xp.reshape(array_of(out), kept_shape(x.shape, axes))
        hits = xp.astype(values == extreme, values.dtype)
        # counts, exact in float32 and float64; float16 counts past 2048 stall (and past 65504 are inf)
        wide = accumulator(xp, values.dtype)
        ties = xp.sum(hits, axis=axes, keepdims=True, dtype=wide)
        if xp.all(ties == 1):  # the common case, no ties: skip the division
            return kept(grad, x, axis) * hits
        if not xp.all(ties):  # a nan extreme (it equals no element): the nans that made it share it
            made = xp.logical_and(xp.isnan(values), xp.isnan(extreme))
            hits = xp.astype(xp.logical_or(values == extreme, made), values.dtype)
            ties = xp.sum(hits, axis=axes, keepdims=True, dtype=wide)
        return kept(grad, x, axis) * _share(hits, ties)

    public.defvjp(vjp, plain_arrays=True)
    public.defjvp(reduction_jvp(vjp, picks=True), plain_arrays=True)
    return public


@quiet
def _share(hits: Any, ties: Any) -> Any:
    # (every slice has a hit: a nan extreme's hits are its nans.) Float16 counts are float32: the
    # share is rounded to the elements' dtype.
    return namespace(hits).astype(hits / ties, hits.dtype, copy=False)


max = _extreme("max")
min = _extreme("min")


def _arg_extreme(name: str) -> Any:
    def forward(x: Any, axis: int | None = None, keepdims: bool = False) -> Any:
        if axis is not None:
            if isinstance(axis, bool | np.bool_):
                raise bool_axis_error(name, axis)
            try:
                axis = operator.index(axis)  # Python and numpy integers
            except TypeError:
                raise TypeError(f"{name}: axis must be an int or None, got {axis!r}") from None
        xp = namespace(x)
        x = as_array(xp, x)
        if xp.name != "numpy" and x.dtype == xp.bool:  # (PyTorch and the standard refuse bools; numpy
            x = xp.astype(x, xp.uint8)  # answers the first True or False, as uint8's index does)
        return getattr(xp, name)(x, axis=axis, keepdims=keepdims)

    forward.__name__ = name
    forward.__doc__ = (
        f"Index of the {name[3:]}imum along ``axis`` (of the flattened array when None); the first on ties.\n\n"
        "    Integer result, no gradient. Shapes: x (s) -> s without ``axis`` (as 1 under keepdims).\n"
    )
    return op(name, hints=Hints(shapes="argreduction", kwargs={"keepdims": (False, True)}), differentiable=False)(
        forward
    )


argmax = _arg_extreme("argmax")
argmin = _arg_extreme("argmin")
