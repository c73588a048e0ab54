"""Activations: tanh, sigmoid, relu, softplus, and the vjps of tanh and sigmoid as ops of their own.

Shapes: any -> same; the ``*_backward`` ops broadcast their two inputs. The vjps of ``tanh`` and
``sigmoid`` are written from the output (``1 - t^2``, ``s (1 - s)``) as one op each: one call in
the eager backward and on a tape instead of three, and second derivatives through their own rules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.ops.elementwise import quiet
from autobp.ops.registry import Hints, op


@op("tanh", ufunc=np.tanh, elementwise=True)
def tanh(x: Any) -> Any:
    """Elementwise hyperbolic tangent. Shapes: any -> same."""


@op("tanh_backward", arity=2, hints=Hints(shapes="broadcast", domain=((-2.0, 2.0), (-0.95, 0.95))), elementwise=True)
def tanh_backward(grad: Any, out: Any) -> np.ndarray:
    """``grad * (1 - out ** 2)``: tanh's vjp from its output, as one op (one call, not three).

    Shapes: broadcastable -> broadcast shape.
    """
    factor = np.square(out)
    if type(factor) is not np.ndarray:  # 0-d inputs give numpy scalars
        return grad * (1 - factor)
    # The same three steps written into one buffer: the same values, one allocation fewer.
    np.subtract(1, factor, out=factor)
    return np.multiply(grad, factor, out=factor) if factor.shape == np.shape(grad) else grad * factor


tanh_backward.defvjp(
    lambda g2, res, grad, out: tanh_backward(g2, out),  # linear in grad
    lambda g2, res, grad, out: g2 * grad * out * -2,  # d(1 - t^2)/dt = -2t
    plain_arrays=True,
)


tanh.defvjp(lambda grad, out, x: tanh_backward(grad, out), plain_arrays=True)  # d(tanh x)/dx = 1 - tanh^2 x


@op("sigmoid", hints=Hints(domain=(-4.0, 4.0)), elementwise=True)
@quiet
def sigmoid(x: Any) -> np.ndarray:
    """Elementwise logistic ``1 / (1 + e^-x)``, stable for large |x|. Shapes: any -> same."""
    # Accurate in both tails (4.7e-20 at x = -44.5, where 0.5 * (1 + tanh(x / 2)) rounds to 0);
    # below x = -709, e^-x overflows to inf and the result is 0, the right limit. Twice as fast
    # as exp(-logaddexp(0, -x)), which gives the same values.
    t = np.negative(x)
    if type(t) is not np.ndarray or t.dtype.kind != "f":  # a scalar, or ints that exp makes floats
        return 1.0 / (1.0 + np.exp(t))
    # The same three steps written into one buffer: the same values, two allocations fewer.
    np.exp(t, out=t)
    np.add(1.0, t, out=t)
    return np.divide(1.0, t, out=t)


@op("sigmoid_backward", arity=2, hints=Hints(shapes="broadcast", domain=((-2.0, 2.0), (0.05, 0.95))), elementwise=True)
def sigmoid_backward(grad: Any, out: Any) -> np.ndarray:
    """``grad * out * (1 - out)``: the sigmoid's vjp from its output, as one op (one call, not three).

    Shapes: broadcastable -> broadcast shape.
    """
    product = np.multiply(grad, out)
    if type(product) is not np.ndarray:
        return product * (1 - out)
    return np.multiply(product, np.subtract(1, out), out=product)  # no third array for the product


sigmoid_backward.defvjp(
    lambda g2, res, grad, out: sigmoid_backward(g2, out),  # linear in grad
    lambda g2, res, grad, out: g2 * grad * (1 - 2 * out),  # d(s - s^2)/ds = 1 - 2s
    plain_arrays=True,
)


sigmoid.defvjp(lambda grad, out, x: sigmoid_backward(grad, out), plain_arrays=True)  # s' = s (1 - s)


@op("relu", hints=Hints(avoid=(0.0,)), elementwise=True)
def relu(x: Any) -> np.ndarray:
    """Elementwise ``max(x, 0)``; its gradient at 0 is 0. Shapes: any -> same."""
    return np.maximum(x, 0)


relu.defvjp(lambda grad, out, x: grad * (x > 0), plain_arrays=True)  # 1 where x > 0


@op("softplus", hints=Hints(domain=(-4.0, 4.0)), elementwise=True)
def softplus(x: Any) -> np.ndarray:
    """Elementwise ``log(1 + e^x)``, stable for large |x|. Shapes: any -> same."""
    return np.logaddexp(0, x)


softplus.defvjp(lambda grad, out, x: grad * sigmoid(x), plain_arrays=True)  # d softplus/dx = sigmoid(x)
