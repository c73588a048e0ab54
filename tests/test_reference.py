"""The hand-written reference backprop, checked against finite differences and against itself."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autobp import reference


def random_net(sizes: list[int], rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
    weights = [rng.standard_normal((n_out, n_in)) for n_in, n_out in itertools.pairwise(sizes)]
    biases = [rng.standard_normal((n, 1)) for n in sizes[1:]]
    return weights, biases


def cost(weights: list[np.ndarray], biases: list[np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    return 0.5 * float(np.sum((reference.feedforward(weights, biases, x) - y) ** 2))


def numeric_gradient(params: list[np.ndarray], f: object, eps: float = 1e-6) -> list[np.ndarray]:
    grads = []
    for p in params:
        g = np.zeros_like(p)
        for i in np.ndindex(p.shape):
            keep = p[i]
            p[i] = keep + eps
            up = f()  # type: ignore[operator]
            p[i] = keep - eps
            down = f()  # type: ignore[operator]
            p[i] = keep
            g[i] = (up - down) / (2 * eps)
        grads.append(g)
    return grads


sizes_strategy = st.lists(st.integers(1, 5), min_size=2, max_size=5)


@given(sizes=sizes_strategy, m=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_backprop_batch_matches_finite_differences(sizes: list[int], m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights, biases = random_net(sizes, rng)
    x, y = rng.standard_normal((sizes[0], m)), rng.random((sizes[-1], m))
    nabla_b, nabla_w = reference.backprop_batch(weights, biases, x, y)
    numeric = numeric_gradient([*biases, *weights], lambda: cost(weights, biases, x, y))
    for got, want in zip([*nabla_b, *nabla_w], numeric, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@given(sizes=sizes_strategy, m=st.integers(1, 6), seed=st.integers(0, 2**32 - 1))
def test_batch_gradient_is_the_sum_of_per_example_gradients(sizes: list[int], m: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    weights, biases = random_net(sizes, rng)
    x, y = rng.standard_normal((sizes[0], m)), rng.random((sizes[-1], m))
    batch_b, batch_w = reference.backprop_batch(weights, biases, x, y)
    per_example = [reference.backprop(weights, biases, x[:, [j]], y[:, [j]]) for j in range(m)]
    for layer in range(len(weights)):
        np.testing.assert_allclose(batch_b[layer], sum(g[0][layer] for g in per_example), rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(batch_w[layer], sum(g[1][layer] for g in per_example), rtol=1e-12, atol=1e-14)


def test_gradients_are_shaped_like_the_parameters() -> None:
    weights, biases = random_net([4, 3, 2], np.random.default_rng(0))
    nabla_b, nabla_w = reference.backprop(weights, biases, np.ones((4, 1)), np.zeros((2, 1)))
    assert [g.shape for g in nabla_b] == [(3, 1), (2, 1)]
    assert [g.shape for g in nabla_w] == [(3, 4), (2, 3)]


def test_update_mini_batch_steps_against_the_mean_gradient() -> None:
    rng = np.random.default_rng(1)
    weights, biases = random_net([3, 4, 2], rng)
    x, y = rng.random((3, 5)), rng.random((2, 5))
    nabla_b, nabla_w = reference.backprop_batch(weights, biases, x, y)
    new_w, new_b = reference.update_mini_batch(weights, biases, x, y, eta=0.7)
    for old, new, g in zip([*weights, *biases], [*new_w, *new_b], [*nabla_w, *nabla_b], strict=True):
        np.testing.assert_allclose(new, old - 0.7 / 5 * g, rtol=1e-14)
    assert cost(new_w, new_b, x, y) < cost(weights, biases, x, y)


def test_sgd_epoch_visits_the_examples_in_the_given_order() -> None:
    rng = np.random.default_rng(2)
    weights, biases = random_net([3, 2], rng)
    x, y = rng.random((3, 7)), rng.random((2, 7))
    order = np.array([6, 0, 3, 1, 5, 2, 4])
    got_w, got_b = reference.sgd_epoch(weights, biases, x, y, 3, 0.5, order)
    want_w, want_b = weights, biases
    for batch in ([6, 0, 3], [1, 5, 2], [4]):
        want_w, want_b = reference.update_mini_batch(want_w, want_b, x[:, batch], y[:, batch], 0.5)
    for got, want in zip([*got_w, *got_b], [*want_w, *want_b], strict=True):
        np.testing.assert_array_equal(got, want)


def test_sigmoid_is_stable_for_large_inputs() -> None:
    z = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    s = reference.sigmoid(z)
    # Relative accuracy in the far left tail too, where 1 / (1 + e^-z) would overflow first.
    want = [np.exp(-1000.0), np.exp(-30.0) / (1 + np.exp(-30.0)), 0.5, 1 / (1 + np.exp(-30.0)), 1.0]
    np.testing.assert_allclose(s, want, rtol=1e-14, atol=0)
    np.testing.assert_allclose(reference.sigmoid_prime(z), s * (1 - s))


def test_shape_errors_name_the_function_and_the_shapes() -> None:
    weights, biases = random_net([4, 2], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"backprop: x must be \(n_in=4, m\).*x float64\[3, 1\]"):
        reference.backprop(weights, biases, np.ones((3, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="one column"):
        reference.backprop(weights, biases, np.ones((4, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="as many weights as biases"):
        reference.backprop_batch(weights, [], np.ones((4, 1)), np.ones((2, 1)))
