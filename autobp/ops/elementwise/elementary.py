"""Elementary functions, elementwise: exponentials, logarithms, roots, sign and absolute value,
trigonometry.

Shapes: any -> same. At domain edges they behave like numpy and PyTorch (``log(0) = -inf``,
``sqrt(-1) = nan``, and the matching infinite gradients), without raising or warning. Each
Jacobian is diagonal, so the vjp rules are the jvp rules too (``elementwise=True``).
"""

from __future__ import annotations

from typing import Any

from autobp.backends import namespace
from autobp.backends.numpy import quiet
from autobp.ops.elementwise.arithmetic import zero_gradient
from autobp.ops.registry import Hints, op

POSITIVE = Hints(domain=(0.1, 3.0))
# ``quiet``: numpy, and array_api_strict (which computes with numpy), warn at domain edges, where
# torch and cupy are silent; the general forwards below give inf and nan quietly on every library.


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
    xp = namespace(x)
    if _is_bool(xp, x):  # numpy squares bools in int8 (torch in int64; the standard refuses them)
        x = xp.astype(x, xp.int8)
    return xp.square(x)


# d(x^2)/dx = 2x; grad times the partial, as PyTorch: (grad * 2) * x overflowed where the
# gradient fits (float16 x = 1e-3, cotangent 40000: inf, not 80). (x * 2 is exact: same bits.)
square.defvjp(lambda grad, out, x: grad * (x * 2), plain_arrays=True)


@op("sign", hints=Hints(avoid=(0.0,)), elementwise=True)
def sign(x: Any) -> Any:
    """Elementwise sign (-1, 0 or 1; nan for nan); its gradient is 0. Shapes: any -> same."""
    xp = namespace(x)
    if _is_bool(xp, x):  # numpy has no sign of bools; torch answered with the bools themselves
        raise TypeError("sign of bools is not defined (numpy has no bool loop for sign)")
    return xp.sign(x)


def _is_bool(xp: Any, x: Any) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and dtype == xp.bool


# Piecewise constant: zeros, also where grad is inf or nan (grad * 0 was nan there; PyTorch: 0).
sign.defvjp(lambda grad, out, x: zero_gradient(grad), plain_arrays=True)


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
