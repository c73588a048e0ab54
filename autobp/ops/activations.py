"""Activations: tanh, sigmoid, relu, softplus, and the vjps of tanh and sigmoid as ops of their own.

Shapes: any -> same; the ``*_backward`` ops broadcast their two inputs. The vjps of ``tanh`` and
``sigmoid`` are written from the output (``1 - t^2``, ``s (1 - s)``) as one op each: one call in
the eager backward and on a tape instead of three, and second derivatives through their own rules.
"""

from __future__ import annotations

from typing import Any

from autobp.backends import namespace
from autobp.ops.elementwise import quiet, where
from autobp.ops.registry import Hints, op


@op("tanh", elementwise=True)
def tanh(x: Any) -> Any:
    """Elementwise hyperbolic tangent. Shapes: any -> same."""
    return namespace(x).tanh(x)


@op("tanh_backward", arity=2, hints=Hints(shapes="broadcast", domain=((-2.0, 2.0), (-0.95, 0.95))), elementwise=True)
def tanh_backward(grad: Any, out: Any) -> Any:
    """``grad * (1 - out ** 2)``: tanh's vjp from its output, as one op (one call, not three).

    Shapes: broadcastable -> broadcast shape.
    """
    namespace(grad, out)  # arrays of one library (operators alone might mix two)
    return grad * (1 - out * out)


tanh_backward.defvjp(
    lambda g2, res, grad, out: tanh_backward(g2, out),  # linear in grad
    lambda g2, res, grad, out: g2 * grad * out * -2,  # d(1 - t^2)/dt = -2t
    plain_arrays=True,
)


tanh.defvjp(lambda grad, out, x: tanh_backward(grad, out), plain_arrays=True)  # d(tanh x)/dx = 1 - tanh^2 x


def exp_float_dtype(xp: Any, dtype: Any) -> Any:
    """The floating dtype ``xp.exp`` gives an array of ``dtype``: ``dtype`` itself when it is
    floating; for integers and booleans the library's (numpy: float16 for 8 bits, float32 for
    16, float64 above; torch: its default float). Ops that compute in the input's dtype before
    their exp convert integers to it first: ``-x`` and ``x - max`` wrap around in uint8."""
    if xp.float_dtype(dtype):
        return dtype
    return xp.exp(xp.zeros((), dtype=dtype)).dtype


@op("sigmoid", hints=Hints(domain=(-4.0, 4.0)), elementwise=True)
@quiet
def sigmoid(x: Any) -> Any:
    """Elementwise logistic ``1 / (1 + e^-x)``, stable for large |x|; float16 (and PyTorch's
    bfloat16) is computed in float32 and rounded once, as PyTorch does. Shapes: any -> same."""
    # Accurate in both tails (4.7e-20 at x = -44.5, where 0.5 * (1 + tanh(x / 2)) rounds to 0);
    # below x = -709, e^-x overflows to inf and the result is 0, the right limit. Twice as fast
    # as exp(-logaddexp(0, -x)), which gives the same values.
    xp = namespace(x)
    x = xp.asarray(x)
    x = xp.astype(x, exp_float_dtype(xp, x.dtype))  # (the sigmoid of a uint8 3 was 0: -x wrapped around)
    if xp.dtype_name(x.dtype) in ("float16", "bfloat16"):
        # e^-x overflows float16 below x = -11.1, where the sigmoid is still a subnormal (6e-6
        # at -12, PyTorch's value): computed in float32 and rounded once, as PyTorch does. So is
        # PyTorch's bfloat16, whose three roundings in 1 / (1 + e^-x) were up to 0.84% off.
        return xp.astype(1.0 / (1.0 + xp.exp(-xp.astype(x, xp.float32))), x.dtype)
    return 1.0 / (1.0 + xp.exp(-x))


@op("sigmoid_backward", arity=2, hints=Hints(shapes="broadcast", domain=((-2.0, 2.0), (0.05, 0.95))), elementwise=True)
def sigmoid_backward(grad: Any, out: Any) -> Any:
    """``grad * out * (1 - out)``: the sigmoid's vjp from its output, as one op (one call, not three).

    Shapes: broadcastable -> broadcast shape.
    """
    namespace(grad, out)  # arrays of one library (operators alone might mix two)
    return grad * out * (1 - out)


sigmoid_backward.defvjp(
    lambda g2, res, grad, out: sigmoid_backward(g2, out),  # linear in grad
    lambda g2, res, grad, out: g2 * grad * (1 - 2 * out),  # d(s - s^2)/ds = 1 - 2s
    plain_arrays=True,
)


sigmoid.defvjp(lambda grad, out, x: sigmoid_backward(grad, out), plain_arrays=True)  # s' = s (1 - s)


@op("relu", hints=Hints(avoid=(0.0,)), elementwise=True)
def relu(x: Any) -> Any:
    """Elementwise ``max(x, 0)`` (nan stays nan); its gradient at 0 is 0, at nan 1 (the gradient
    passes to the nan, as in PyTorch). Shapes: any -> same."""
    return namespace(x).maximum(x, 0)


# 1 where x > 0, 0 where x <= 0; "not x <= 0" also passes the gradient where x is nan (as PyTorch
# does: a nan gradient then reaches the nan input, where a 0 hid it), with the same ops.
relu.defvjp(lambda grad, out, x: where(x <= 0, 0.0, grad), plain_arrays=True)


@op("softplus", hints=Hints(domain=(-4.0, 4.0)), elementwise=True)
@quiet
def softplus(x: Any) -> Any:
    """Elementwise ``log(1 + e^x)``, stable for large |x|. Shapes: any -> same."""
    return namespace(x).logaddexp(0.0, x)


softplus.defvjp(lambda grad, out, x: grad * sigmoid(x), plain_arrays=True)  # d softplus/dx = sigmoid(x)
