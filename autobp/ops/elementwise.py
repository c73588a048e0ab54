"""Elementwise ops: arithmetic, transcendental functions, selections, comparisons.

Shapes: inputs broadcast as numpy does; the output has the broadcast shape. Each vjp returns
a gradient of the output's shape and the engine sums it back to the input's shape.
At domain edges the ops behave like numpy and PyTorch (``log(0) = -inf``, ``sqrt(-1) = nan``,
and the matching infinite gradients), without raising or warning.
Each input's Jacobian is diagonal, so the vjp rules are the jvp rules too (``elementwise=True``:
the tangent takes the gradient's place).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.backends import library_of, namespace
from autobp.backends.numpy import quiet
from autobp.graph import WeakScalar
from autobp.ops.registry import Hints, op
from autobp.tensor import Tensor

BINARY = Hints(shapes="broadcast")
POSITIVE = Hints(domain=(0.1, 3.0))
# ``quiet``: numpy, and array_api_strict (which computes with numpy), warn at domain edges, where
# torch and cupy are silent; the general forwards below give inf and nan quietly on every library.


# -- arithmetic --------------------------------------------------------------------------------
@op("add", arity=2, hints=BINARY, elementwise=True)
def add(x: Any, y: Any) -> Any:
    """Elementwise ``x + y``. Shapes: broadcastable -> broadcast shape."""
    return namespace(x, y).add(x, y)


add.defvjp(
    lambda grad, out, x, y: grad,  # d(x+y)/dx = 1
    lambda grad, out, x, y: grad,  # d(x+y)/dy = 1
    plain_arrays=True,
)


@op("sub", arity=2, hints=BINARY, elementwise=True)
def sub(x: Any, y: Any) -> Any:
    """Elementwise ``x - y``. Shapes: broadcastable -> broadcast shape."""
    return namespace(x, y).subtract(x, y)


sub.defvjp(
    lambda grad, out, x, y: grad,  # d(x-y)/dx = 1
    lambda grad, out, x, y: -grad,  # d(x-y)/dy = -1
    plain_arrays=True,
)


@op("mul", arity=2, hints=BINARY, elementwise=True)
def mul(x: Any, y: Any) -> Any:
    """Elementwise ``x * y``. Shapes: broadcastable -> broadcast shape."""
    return namespace(x, y).multiply(x, y)


mul.defvjp(
    lambda grad, out, x, y: grad * y,  # d(xy)/dx = y
    lambda grad, out, x, y: grad * x,  # d(xy)/dy = x
    plain_arrays=True,
)


@op("div", arity=2, hints=Hints(shapes="broadcast", domain=((-2.0, 2.0), (0.5, 2.0))), elementwise=True)
@quiet
def div(x: Any, y: Any) -> Any:
    """Elementwise ``x / y`` (true division). Shapes: broadcastable -> broadcast shape."""
    return namespace(x, y).divide(x, y)


div.defvjp(
    lambda grad, out, x, y: grad / y,  # d(x/y)/dx = 1/y
    lambda grad, out, x, y: -grad * out / y,  # d(x/y)/dy = -x/y^2 = -out/y
    plain_arrays=True,
)


@op("pow", arity=2, hints=Hints(shapes="broadcast", domain=((0.5, 2.0), (-2.0, 2.0))), elementwise=True)
@quiet
def pow(x: Any, y: Any) -> Any:
    """Elementwise ``x ** y``. Shapes: broadcastable -> broadcast shape."""
    return namespace(x, y).pow(x, y)


def _pow_dx(grad: Tensor, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    # d(x^y)/dx = y x^(y-1); at x = y = 0 that is 0 * inf: take 0, PyTorch's convention.
    exponent = y.value if type(y) is WeakScalar else y  # (a number, as rules on Tensors see it)
    if isinstance(exponent, int | float) and exponent != 0:
        # A constant nonzero exponent (`x ** 2`) never meets that mask, and x ** 1 == x exactly
        # (nan and inf included): the same numbers with fewer ops (a taped HVP of a squared error
        # runs this rule and its derivatives: W5).
        if exponent == 2:
            return grad * y * x
        return grad * y * x ** (y - 1)
    return where((x == 0) & (y == 0), 0.0, grad * y * x ** (y - 1))


def _pow_dy(grad: Tensor, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    # d(x^y)/dy = x^y log x; 0 at x == 0 with y >= 0, where x^y log x -> 0.
    return where((x == 0) & (y >= 0), 0.0, grad * out * log(x))


pow.defvjp(_pow_dx, _pow_dy, plain_arrays=True)


@op("neg", elementwise=True)
def neg(x: Any) -> Any:
    """Elementwise ``-x``. Shapes: any -> same."""
    return namespace(x).negative(x)


neg.defvjp(lambda grad, out, x: -grad, plain_arrays=True)  # d(-x)/dx = -1


@op("copy", elementwise=True)
def copy(x: Any) -> Any:
    """A copy of ``x``, differentiable. Shapes: any -> same."""
    return namespace(x).asarray(x, copy=True)


copy.defvjp(lambda grad, out, x: grad, plain_arrays=True)  # identity


@op("astype", hints=Hints(kwargs={"dtype": ("float64",)}), elementwise=True)
def astype(x: Any, dtype: Any) -> Any:
    """``x`` converted to ``dtype``; the gradient is converted back to ``x``'s dtype.

    ``dtype`` is a name (``"float32"``), a numpy dtype or the library's own. Shapes: any -> same.
    """
    xp = namespace(x)
    return xp.astype(xp.asarray(x), _library_dtype(xp, dtype))


def _library_dtype(xp: Any, dtype: Any) -> Any:
    """``dtype`` in library ``xp``: a name, numpy dtype or Python type, read as numpy reads it."""
    if xp.name == "numpy":
        return dtype
    try:
        name = np.dtype(dtype).name  # only the dtype's spelling goes through numpy, no data
    except TypeError:
        return dtype  # the library's own dtype (torch.float32)
    return getattr(xp, name)


astype.defvjp(lambda grad, out, x, dtype: grad, plain_arrays=True)  # the engine casts to x's dtype


# -- transcendental functions --------------------------------------------------------------------
@op("exp", elementwise=True)
@quiet
def exp(x: Any) -> Any:
    """Elementwise ``e ** x``. Shapes: any -> same."""
    return namespace(x).exp(x)


exp.defvjp(lambda grad, out, x: grad * out, plain_arrays=True)  # d(e^x)/dx = e^x


@op("log", hints=POSITIVE, elementwise=True)
@quiet
def log(x: Any) -> Any:
    """Elementwise natural logarithm (``-inf`` at 0, ``nan`` below). Shapes: any -> same."""
    return namespace(x).log(x)


log.defvjp(lambda grad, out, x: grad / x, plain_arrays=True)  # d(log x)/dx = 1/x


@op("log1p", hints=Hints(domain=(-0.5, 3.0)), elementwise=True)
@quiet
def log1p(x: Any) -> Any:
    """Elementwise ``log(1 + x)``, accurate for small x. Shapes: any -> same."""
    return namespace(x).log1p(x)


log1p.defvjp(lambda grad, out, x: grad / (1 + x), plain_arrays=True)  # d log(1+x)/dx = 1/(1+x)


@op("expm1", elementwise=True)
@quiet
def expm1(x: Any) -> Any:
    """Elementwise ``e ** x - 1``, accurate for small x. Shapes: any -> same."""
    return namespace(x).expm1(x)


expm1.defvjp(lambda grad, out, x: grad * (out + 1), plain_arrays=True)  # d(e^x - 1)/dx = e^x


@op("sqrt", hints=POSITIVE, elementwise=True)
@quiet
def sqrt(x: Any) -> Any:
    """Elementwise square root (``nan`` below 0; infinite gradient at 0). Shapes: any -> same."""
    return namespace(x).sqrt(x)


sqrt.defvjp(lambda grad, out, x: grad / (2 * out), plain_arrays=True)  # d(sqrt x)/dx = 1/(2 sqrt x)


@op("square", elementwise=True)
def square(x: Any) -> Any:
    """Elementwise ``x ** 2``. Shapes: any -> same."""
    return namespace(x).square(x)


square.defvjp(lambda grad, out, x: (grad * 2) * x, plain_arrays=True)  # d(x^2)/dx = 2x (grad * 2 folds on a tape)


@op("sign", hints=Hints(avoid=(0.0,)), elementwise=True)
def sign(x: Any) -> Any:
    """Elementwise sign (-1, 0 or 1; nan for nan); its gradient is 0. Shapes: any -> same."""
    return namespace(x).sign(x)


sign.defvjp(lambda grad, out, x: grad * 0, plain_arrays=True)  # piecewise constant


@op("abs", hints=Hints(avoid=(0.0,)), elementwise=True)
def abs(x: Any) -> Any:
    """Elementwise ``|x|``; its gradient at 0 is 0. Shapes: any -> same."""
    return namespace(x).abs(x)


abs.defvjp(lambda grad, out, x: grad * sign(x), plain_arrays=True)  # d|x|/dx = sign(x)


@op("sin", elementwise=True)
def sin(x: Any) -> Any:
    """Elementwise sine. Shapes: any -> same."""
    return namespace(x).sin(x)


@op("cos", elementwise=True)
def cos(x: Any) -> Any:
    """Elementwise cosine. Shapes: any -> same."""
    return namespace(x).cos(x)


sin.defvjp(lambda grad, out, x: grad * cos(x), plain_arrays=True)  # d(sin x)/dx = cos x
cos.defvjp(lambda grad, out, x: -grad * sin(x), plain_arrays=True)  # d(cos x)/dx = -sin x


@op("tan", hints=Hints(domain=(-1.2, 1.2)), elementwise=True)
def tan(x: Any) -> Any:
    """Elementwise tangent. Shapes: any -> same."""
    return namespace(x).tan(x)


tan.defvjp(lambda grad, out, x: grad * (1 + out * out), plain_arrays=True)  # d(tan x)/dx = 1 + tan^2 x


# -- piecewise selections --------------------------------------------------------------------------
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


def _tie_share(grad: Tensor, wins: Tensor, ties: Tensor) -> Tensor:
    # All of grad where this input wins, half on ties (shared, as PyTorch does), none where it loses.
    return where(wins, grad, where(ties, grad * 0.5, 0.0))


@op("maximum", arity=2, hints=Hints(shapes="broadcast", distinct=True), elementwise=True)
def maximum(x: Any, y: Any) -> Any:
    """Elementwise larger of ``x`` and ``y`` (nan if either is); ties share the gradient equally.

    Shapes: broadcast.
    """
    return namespace(x, y).maximum(x, y)


maximum.defvjp(
    lambda grad, out, x, y: _tie_share(grad, x > y, x == y),
    lambda grad, out, x, y: _tie_share(grad, y > x, x == y),
    plain_arrays=True,
)


@op("minimum", arity=2, hints=Hints(shapes="broadcast", distinct=True), elementwise=True)
def minimum(x: Any, y: Any) -> Any:
    """Elementwise smaller of ``x`` and ``y`` (nan if either is); ties share the gradient equally.

    Shapes: broadcast.
    """
    return namespace(x, y).minimum(x, y)


minimum.defvjp(
    lambda grad, out, x, y: _tie_share(grad, x < y, x == y),
    lambda grad, out, x, y: _tie_share(grad, y < x, x == y),
    plain_arrays=True,
)


@op("where", arity=3, hints=Hints(shapes="where"), elementwise=True)
def where(condition: Any, x: Any, y: Any) -> Any:
    """``x`` where ``condition`` holds (nonzero), else ``y``. Shapes: all three broadcast together."""
    xp = namespace(condition, x, y)
    if library_of(x) is None and library_of(y) is None:  # the standard takes at most one scalar
        floats = xp.float64 if isinstance(x, float) else None  # numpy's float64, not torch's default
        x = xp.asarray(x, dtype=floats, device=xp.device(condition))
    return xp.where(_as_bool(xp, condition), x, y)


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
