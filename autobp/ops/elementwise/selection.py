"""Elementwise selections (clip, maximum, minimum, where), comparisons and logic.

Shapes: inputs broadcast as numpy does; the output has the broadcast shape. A selection passes
each element's gradient to the input it took the element from, so its Jacobian is diagonal and
its vjp rules are its jvp rules too (``elementwise=True``). Comparisons and logic give booleans
and no gradient.
"""

from __future__ import annotations

from typing import Any

from autobp.backends import library_of, namespace
from autobp.ops.elementwise.arithmetic import BINARY, refuse_wrapping_ints
from autobp.ops.registry import Hints, op
from autobp.tensor import Tensor


@op(
    "clip",
    hints=Hints(kwargs={"a_min": (-1.0, None), "a_max": (1.0, None)}, avoid=(-1.0, 1.0)),
    elementwise=True,
)
def clip(x: Any, a_min: Any = None, a_max: Any = None) -> Any:
    """Elementwise clamp of ``x`` into ``[a_min, a_max]`` (either may be None; a_max wins where
    ``a_min > a_max``, as in numpy).

    The gradient passes where ``a_min <= x <= a_max``. Shapes: any -> same.
    """
    if isinstance(a_min, Tensor) or isinstance(a_max, Tensor):  # keywords get no gradient
        raise TypeError(
            "clip: a_min and a_max are numbers or arrays, not Tensors; for Tensor bounds use "
            "ab.minimum(ab.maximum(x, a_min), a_max), which differentiates the bounds too"
        )
    xp = namespace(x, a_min, a_max)
    if a_min is None and a_max is None:
        return xp.asarray(x, copy=True)
    if isinstance(a_min, int | float) and isinstance(a_max, int | float) and a_min > a_max:
        a_min = a_max  # numpy's answer, a_max everywhere; the standard leaves it open (strict refuses)
    return xp.clip(x, a_min, a_max)


def _clip_dx(grad: Tensor, out: Tensor, x: Tensor, a_min: Any = None, a_max: Any = None) -> Tensor:
    # 1 inside the interval, 0 where clamped.
    inside = (x >= a_min) if a_min is not None else None
    if a_max is not None:
        inside = (x <= a_max) if inside is None else inside & (x <= a_max)
    return grad if inside is None else where(inside, grad, 0.0)


clip.defvjp(_clip_dx, plain_arrays=True)


def _tie_share(grad: Tensor, loses: Tensor, ties: Tensor) -> Tensor:
    # None of grad where this input loses, half on ties (shared, as PyTorch does), all elsewhere:
    # where it wins, and where a nan makes the comparison undecided (the output is nan). There both
    # inputs get the gradient, as in PyTorch: the nan input that made the output keeps its path,
    # so a nan gradient reaches it and a backward-only nan check sees it (a 0 hid it). Asking
    # "loses" rather than "wins" costs the same ops.
    return where(loses, 0.0, where(ties, grad * 0.5, grad))


@op("maximum", arity=2, hints=Hints(shapes="broadcast", distinct=True), elementwise=True)
def maximum(x: Any, y: Any) -> Any:
    """Elementwise larger of ``x`` and ``y`` (nan if either is); ties share the gradient equally,
    and where a nan makes the output nan, both inputs receive it (as in PyTorch).

    Shapes: broadcast.
    """
    refuse_wrapping_ints("maximum", x, y)
    return namespace(x, y).maximum(x, y)


maximum.defvjp(
    lambda grad, out, x, y: _tie_share(grad, x < y, x == y),
    lambda grad, out, x, y: _tie_share(grad, y < x, x == y),
    plain_arrays=True,
)


@op("minimum", arity=2, hints=Hints(shapes="broadcast", distinct=True), elementwise=True)
def minimum(x: Any, y: Any) -> Any:
    """Elementwise smaller of ``x`` and ``y`` (nan if either is); ties share the gradient equally,
    and where a nan makes the output nan, both inputs receive it (as in PyTorch).

    Shapes: broadcast.
    """
    refuse_wrapping_ints("minimum", x, y)
    return namespace(x, y).minimum(x, y)


minimum.defvjp(
    lambda grad, out, x, y: _tie_share(grad, x > y, x == y),
    lambda grad, out, x, y: _tie_share(grad, y > x, x == y),
    plain_arrays=True,
)


@op("where", arity=3, hints=Hints(shapes="where"), elementwise=True)
def where(condition: Any, x: Any, y: Any) -> Any:
    """``x`` where ``condition`` holds (nonzero), else ``y``. Shapes: all three broadcast together."""
    xp = namespace(condition, x, y)
    if library_of(x) is None and library_of(y) is None:  # the standard takes at most one scalar
        floats = xp.float64 if isinstance(x, float) else None  # numpy's float64, not torch's default
        x = xp.asarray(x, dtype=floats, device=xp.device(condition))
    condition = _as_bool(xp, condition)
    if type(condition) is bool and xp.name != "numpy":  # (torch and the standard take an array condition)
        condition = xp.asarray(condition, device=xp.device(x if library_of(x) is not None else y))
    return xp.where(condition, x, y)


def _as_bool(xp: Any, value: Any) -> Any:
    """``value`` as booleans, numpy's way (nonzero is true): the standard's logic takes only booleans."""
    if library_of(value) is None:
        return bool(value)
    return value if value.dtype == xp.bool else value != 0


def _no_gradient(grad: Tensor, out: Tensor, *inputs: Any, **kwargs: Any) -> None:  # pragma: no cover
    """The rule of an input that never has a gradient: a boolean condition cannot require grad,
    so the engine never calls it; it fills where's slot in the rule table."""
    return None


where.defvjp(
    _no_gradient,
    lambda grad, out, c, x, y: where(c, grad, 0.0),  # passes where c holds
    lambda grad, out, c, x, y: where(c, 0.0, grad),  # passes elsewhere
    plain_arrays=True,
)


# -- comparisons and logic (results are boolean: no gradient) ---------------------------------------
def _comparison(name: str, symbol: str) -> Any:
    def compare(x: Any, y: Any) -> Any:
        refuse_wrapping_ints(name, x, y)  # (numpy compares such an int exactly; torch wraps it: u8 < -1 was True)
        return getattr(namespace(x, y), name)(x, y)

    compare.__name__ = name
    compare.__doc__ = f"Elementwise ``x {symbol} y`` as a boolean tensor (no gradient). Shapes: broadcast."
    return op(name, arity=2, hints=BINARY, differentiable=False)(compare)


def _logic(name: str, symbol: str) -> Any:
    def combine(x: Any, y: Any) -> Any:
        xp = namespace(x, y)
        return getattr(xp, name)(_as_bool(xp, x), _as_bool(xp, y))

    combine.__name__ = name
    combine.__doc__ = (
        f"Elementwise ``x {symbol} y`` as a boolean tensor, nonzero numbers true (no gradient). Shapes: broadcast."
    )
    return op(name, arity=2, hints=BINARY, differentiable=False)(combine)


equal = _comparison("equal", "==")
not_equal = _comparison("not_equal", "!=")
less = _comparison("less", "<")
less_equal = _comparison("less_equal", "<=")
greater = _comparison("greater", ">")
greater_equal = _comparison("greater_equal", ">=")
logical_and = _logic("logical_and", "and")
logical_or = _logic("logical_or", "or")


@op("logical_not", differentiable=False)
def logical_not(x: Any) -> Any:
    """Elementwise ``not x`` as a boolean tensor, nonzero numbers true (no gradient). Shapes: any -> same."""
    xp = namespace(x)
    return xp.logical_not(_as_bool(xp, x))
