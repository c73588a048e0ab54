"""The equalities docs/reproduction.md states between autograd training and the hand-written backprop.

The page says: one mini-batch's gradients differ from the reference's only in the order of one
product (the sigmoid's vjp multiplies ``(grad * s) * (1 - s)``, the seed ``grad * (s * (1 - s))``),
so they agree to the last bit or two; and an epoch of 1,000 examples ends at the reference's
weights to 1e-12. These tests hold the page to the code: if either changes, a test here fails.
"""

from __future__ import annotations

import copy

import numpy as np

from autobp import reference
from autobp.models import Network, one_hot


def mnist_like(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Generated stand-ins for MNIST columns: pixels in [0, 1], digit labels. Shapes: (784, n), (n,)."""
    rng = np.random.default_rng(seed)
    return rng.random((784, n)), rng.integers(0, 10, n)


def backprop_in_autobps_order(
    weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray, y: np.ndarray
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``reference.backprop_batch`` with the one product reordered as autobp's sigmoid vjp computes it."""
    activations, zs = [x], []
    for w, b in zip(weights, biases, strict=True):
        zs.append(w @ activations[-1] + b)
        activations.append(reference.sigmoid(zs[-1]))
    nabla_b: list[np.ndarray] = [np.empty(0)] * len(biases)
    nabla_w: list[np.ndarray] = [np.empty(0)] * len(weights)
    grad = activations[-1] - y
    for layer in range(len(weights), 0, -1):
        s = activations[layer]
        delta = (grad * s) * (1.0 - s)  # autobp's order; the seed writes grad * (s * (1 - s))
        nabla_b[layer - 1] = delta.sum(axis=1, keepdims=True)
        nabla_w[layer - 1] = delta @ activations[layer - 1].T
        grad = weights[layer - 1].T @ delta
    return nabla_b, nabla_w


def test_gradients_differ_from_the_seeds_only_in_the_order_of_one_product() -> None:
    x, labels = mnist_like(10, seed=0)
    y = one_hot(labels, 10)
    net = Network([784, 30, 10], rng=0)
    weights, biases = [w.data for w in net.weights], [b.data for b in net.biases]
    auto_b, auto_w = net.backprop(x, y)
    reordered_b, reordered_w = backprop_in_autobps_order(weights, biases, x, y)
    for got, want in zip(auto_b + auto_w, reordered_b + reordered_w, strict=True):
        np.testing.assert_array_equal(got, want)  # bit for bit
    seed_b, seed_w = reference.backprop_batch(weights, biases, x, y)
    for got, want in zip(auto_b + auto_w, seed_b + seed_w, strict=True):
        assert np.max(np.abs(got - want)) <= 4 * np.finfo(np.float64).eps * np.max(np.abs(want))


def test_an_epoch_of_1000_examples_ends_at_the_references_weights_to_1e_12() -> None:
    x, labels = mnist_like(1000, seed=1)
    net = Network([784, 30, 10], rng=0)
    start = [p.data.copy() for p in [*net.weights, *net.biases]]
    weights, biases = start[:2], start[2:]
    order = copy.deepcopy(net.rng).permutation(1000)  # the shuffle Network.SGD is about to draw
    net.SGD((x, labels), 1, 10, 3.0)
    weights, biases = reference.sgd_epoch(weights, biases, x, one_hot(labels, 10), 10, 3.0, order)
    for param, want in zip([*net.weights, *net.biases], [*weights, *biases], strict=True):
        assert np.max(np.abs(param.data - want)) <= 1e-12
    moved = max(float(np.max(np.abs(want - before))) for want, before in zip([*weights, *biases], start, strict=True))
    assert moved > 1e-3  # the epoch did train: the claim is not about weights that stayed put
