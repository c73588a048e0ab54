"""A hand-written numpy backprop of the seed's sigmoid network: the oracle autobp's autograd is checked against.

This module imports nothing from autobp's autograd: it is the seed's algorithm written out by hand,
with the seed's names. The forward pass records every weighted input ``z`` and activation; the
backward pass starts from ``delta = (a - y) * sigmoid_prime(z)`` at the output layer and carries
``delta = W^T delta * sigmoid_prime(z)`` down, layer by layer. The cost of one example is the
quadratic ``0.5 * ||a - y||^2``; a mini-batch's cost is the sum over its examples.

Shapes: ``weights[l]`` (n_out, n_in), ``biases[l]`` (n_out, 1); an input is a column (n_in, 1),
a mini-batch is a matrix (n_in, m) whose columns are examples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autobp.backends import describe  # (formats error messages; no autograd)

__all__ = [
    "sigmoid",
    "sigmoid_prime",
    "feedforward",
    "backprop",
    "backprop_batch",
    "update_mini_batch",
    "sgd_epoch",
]

Arrays = list[np.ndarray]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + e^-z)``, elementwise. Shapes: any -> same.

    >>> float(sigmoid(np.array(0.0)))
    0.5
    """
    # Accurate in both tails; below z = -709, e^-z overflows to inf and the result is 0 (the limit).
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def sigmoid_prime(z: np.ndarray) -> np.ndarray:
    """Derivative of the sigmoid, ``s (1 - s)``. Shapes: any -> same.

    >>> float(sigmoid_prime(np.array(0.0)))
    0.25
    """
    s = sigmoid(z)
    return s * (1.0 - s)


def feedforward(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], a: np.ndarray) -> np.ndarray:
    """The network's output for input ``a``. Shapes: a (n_in, m) -> (n_out, m).

    >>> w, b = [np.zeros((2, 3))], [np.zeros((2, 1))]
    >>> feedforward(w, b, np.ones((3, 1))).ravel().tolist()
    [0.5, 0.5]
    """
    for w, b in zip(weights, biases, strict=True):
        a = sigmoid(w @ a + b)
    return a


def _check(weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray) -> None:
    if len(weights) != len(biases) or not weights:
        raise ValueError(
            f"backprop: need as many weights as biases (at least one), got {len(weights)} and {len(biases)}"
        )
    n_in, n_out = weights[0].shape[1], weights[-1].shape[0]
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != n_in or y.shape[0] != n_out or x.shape[1] != y.shape[1]:
        raise ValueError(
            f"backprop: x must be (n_in={n_in}, m) and y (n_out={n_out}, m) with the same m; "
            f"got x {describe(x)} and y {describe(y)}"
        )


def backprop(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[Arrays, Arrays]:
    """Gradients of ``0.5 * ||a - y||^2`` for one example, exactly the seed's algorithm.

    Shapes: x (n_in, 1), y (n_out, 1) -> (nabla_b, nabla_w) shaped like the biases and the weights.

    >>> w, b = [np.zeros((1, 2))], [np.zeros((1, 1))]
    >>> nabla_b, nabla_w = backprop(w, b, np.array([[1.0], [2.0]]), np.array([[1.0]]))
    >>> nabla_b[0].tolist(), nabla_w[0].tolist()
    ([[-0.125]], [[-0.125, -0.25]])
    """
    x, y = np.asarray(x), np.asarray(y)
    _check(weights, biases, x, y)
    if x.shape[1] != 1:
        raise ValueError(f"backprop: x must be one column (n_in, 1), got {list(x.shape)}; use backprop_batch")
    return backprop_batch(weights, biases, x, y)


def backprop_batch(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[Arrays, Arrays]:
    """The seed's backprop on a mini-batch matrix; gradients are summed over the examples (columns).

    Shapes: x (n_in, m), y (n_out, m) -> (nabla_b, nabla_w) shaped like the biases and the weights.

    >>> w, b = [np.zeros((1, 2))], [np.zeros((1, 1))]
    >>> x, y = np.array([[1.0, 1.0], [2.0, 2.0]]), np.array([[1.0, 1.0]])
    >>> backprop_batch(w, b, x, y)[0][0].tolist()
    [[-0.25]]
    """
    x, y = np.asarray(x), np.asarray(y)
    _check(weights, biases, x, y)
    # Forward: keep every weighted input z and every activation; the backward pass needs both.
    activation = x
    activations = [x]
    zs = []
    for w, b in zip(weights, biases, strict=True):
        z = w @ activation + b
        zs.append(z)
        activation = sigmoid(z)
        activations.append(activation)
    nabla_b: Arrays = [np.empty_like(b) for b in biases]
    nabla_w: Arrays = [np.empty_like(w) for w in weights]
    # Output layer: the cost derivative (a - y) times the sigmoid's slope at z.
    delta = (activations[-1] - y) * sigmoid_prime(zs[-1])
    nabla_b[-1] = delta.sum(axis=1, keepdims=True)
    nabla_w[-1] = delta @ activations[-2].T
    # Hidden layers: pull delta back through the next layer's weights, then through the sigmoid.
    for layer in range(2, len(weights) + 1):
        delta = (weights[-layer + 1].T @ delta) * sigmoid_prime(zs[-layer])
        nabla_b[-layer] = delta.sum(axis=1, keepdims=True)
        nabla_w[-layer] = delta @ activations[-layer - 1].T
    return nabla_b, nabla_w


def update_mini_batch(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray, eta: float
) -> tuple[Arrays, Arrays]:
    """One step of gradient descent on a mini-batch: ``w - (eta / m) * nabla_w`` (and the same for b).

    Shapes: x (n_in, m), y (n_out, m) -> (new weights, new biases), shaped like the old ones.
    """
    nabla_b, nabla_w = backprop_batch(weights, biases, x, y)
    step = eta / x.shape[1]
    new_weights = [w - step * nw for w, nw in zip(weights, nabla_w, strict=True)]
    new_biases = [b - step * nb for b, nb in zip(biases, nabla_b, strict=True)]
    return new_weights, new_biases


def sgd_epoch(
    weights: Sequence[np.ndarray],
    biases: Sequence[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    mini_batch_size: int,
    eta: float,
    order: np.ndarray,
) -> tuple[Arrays, Arrays]:
    """One epoch of the seed's SGD, visiting the examples in ``order`` in consecutive mini-batches.

    Shapes: x (n_in, n) and y (n_out, n) hold one example per column; order (n,) is a permutation.
    Returns the new (weights, biases).
    """
    weights, biases = list(weights), list(biases)
    # Gathering rows of a C-ordered array is cheaper than gathering columns.
    rows_x, rows_y = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
    for start in range(0, len(order), mini_batch_size):
        batch = order[start : start + mini_batch_size]
        weights, biases = update_mini_batch(weights, biases, rows_x[batch].T, rows_y[batch].T, eta)
    return weights, biases
