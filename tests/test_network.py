"""The seed's Network on autobp: autograd gradients and training equal the hand-written reference."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import autobp as ab
from autobp import reference
from autobp.datasets import MNIST_FILES, write_idx
from autobp.models import Network, one_hot


def params(net: Network) -> tuple[list[np.ndarray], list[np.ndarray]]:
    return [w.data.copy() for w in net.weights], [b.data.copy() for b in net.biases]


def assert_relative(got: list[np.ndarray], want: list[np.ndarray], rtol: float, atol: float = 0.0) -> None:
    """Each array equal to ``rtol`` relative to its largest entry, plus ``atol`` (for sums that cancel)."""
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, np.ndarray)
        assert g.shape == w.shape and g.dtype == np.float64
        assert np.max(np.abs(g - w)) <= rtol * np.max(np.abs(w)) + atol, (g, w)


def toy_data(n: int, sizes: list[int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Inputs whose class is the argmax of a fixed random projection, so the task is learnable."""
    x = rng.random((sizes[0], n))
    labels = (rng.standard_normal((sizes[-1], sizes[0])) @ x).argmax(axis=0)
    return x, labels


@given(
    sizes=st.lists(st.integers(1, 6), min_size=2, max_size=5),
    m=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([0.1, 1.0, 3.0]),
)
# A single bias gradient that cancels to 1.7e-5 from terms near 1e-2: two summation orders differ by
# 2e-17 there, 1.2e-12 relative. An absolute 1e-15 (about 5 ulps of the terms) admits that, no more.
@example(sizes=[6, 5, 1], m=3, seed=844, scale=1.0)
def test_autograd_gradients_equal_the_reference(sizes: list[int], m: int, seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    net = Network(sizes, rng=rng)
    x, y = scale * rng.standard_normal((sizes[0], m)), rng.random((sizes[-1], m))
    weights, biases = params(net)
    nabla_b, nabla_w = net.backprop(x, y)
    ref_b, ref_w = reference.backprop_batch(weights, biases, x, y)
    assert_relative([*nabla_b, *nabla_w], [*ref_b, *ref_w], 1e-12, atol=1e-15)


def test_one_example_backprop_is_the_seed_backprop() -> None:
    rng = np.random.default_rng(3)
    net = Network([5, 4, 3], rng=rng)
    x, y = rng.random((5, 1)), one_hot(np.array([2]), 3)
    weights, biases = params(net)
    nabla_b, nabla_w = net.backprop(x, y)
    ref_b, ref_w = reference.backprop(weights, biases, x, y)
    assert_relative([*nabla_b, *nabla_w], [*ref_b, *ref_w], 1e-12)


def test_gradients_match_finite_differences_of_the_cost() -> None:
    rng = np.random.default_rng(4)
    net = Network([3, 4, 2], rng=rng)
    x, y = rng.random((3, 5)), rng.random((2, 5))
    # Independent of the reference: central differences of Network.cost itself.
    (nabla_w0,) = net.backprop(x, y)[1][:1]
    w0 = net.weights[0].data
    numeric = np.zeros_like(w0)
    for i in np.ndindex(w0.shape):
        keep = w0[i]
        w0[i] = keep + 1e-6
        up = float(net.cost(x, y).data)
        w0[i] = keep - 1e-6
        down = float(net.cost(x, y).data)
        w0[i] = keep
        numeric[i] = (up - down) / 2e-6
    np.testing.assert_allclose(nabla_w0, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(("sizes", "n", "batch", "epochs"), [([6, 5, 3], 23, 5, 1), ([4, 3, 3, 2], 30, 10, 2)])
def test_sgd_epochs_equal_a_reference_driven_loop(sizes: list[int], n: int, batch: int, epochs: int) -> None:
    rng = np.random.default_rng(5)
    x, labels = toy_data(n, sizes, rng)
    x_test, labels_test = toy_data(40, sizes, rng)
    net = Network(sizes, rng=7)
    weights, biases = params(net)
    shuffler = copy.deepcopy(net.rng)  # replays the permutations SGD will draw
    # The seed's layout: lists of column pairs, one-hot targets for training, int labels for testing.
    training = [(x[:, [j]], one_hot(labels[[j]], sizes[-1])) for j in range(n)]
    testing = [(x_test[:, [j]], int(labels_test[j])) for j in range(40)]
    history = net.SGD(training, epochs, batch, 3.0, test_data=testing)
    for epoch in range(epochs):
        order = shuffler.permutation(n)
        weights, biases = reference.sgd_epoch(weights, biases, x, one_hot(labels, sizes[-1]), batch, 3.0, order)
        ref_correct = int((reference.feedforward(weights, biases, x_test).argmax(axis=0) == labels_test).sum())
        assert history[epoch]["correct"] == ref_correct and history[epoch]["total"] == 40
    got_w, got_b = params(net)
    for got, want in zip([*got_w, *got_b], [*weights, *biases], strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)
    assert not np.allclose(got_w[0], Network(sizes, rng=7).weights[0].data)  # training did move the weights


def test_stacked_arrays_train_exactly_like_pairs() -> None:
    rng = np.random.default_rng(6)
    x, labels = toy_data(20, [4, 3, 2], rng)
    pairs, stacked = Network([4, 3, 2], rng=1), Network([4, 3, 2], rng=1)
    pairs.SGD([(x[:, [j]], one_hot(labels[[j]], 2)) for j in range(20)], 2, 4, 1.0)
    stacked.SGD((x, labels), 2, 4, 1.0)
    for a, b in zip(pairs.parameters(), stacked.parameters(), strict=True):
        np.testing.assert_array_equal(a.data, b.data)
    assert pairs.evaluate((x, labels)) == stacked.evaluate([(x[:, [j]], int(labels[j])) for j in range(20)])


def test_training_learns_a_learnable_task() -> None:
    rng = np.random.default_rng(8)
    x, labels = toy_data(300, [5, 8, 3], rng)
    net = Network([5, 8, 3], rng=2)
    before = net.evaluate((x, labels))
    history = net.SGD((x, labels), 20, 10, 3.0, test_data=(x, labels))
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["correct"] > max(before, 0.6 * 300)


def test_update_mini_batch_applies_the_seed_rule() -> None:
    rng = np.random.default_rng(9)
    net = Network([3, 2], rng=0)
    x, y = rng.random((3, 4)), rng.random((2, 4))
    weights, biases = params(net)
    cost = net.update_mini_batch([(x[:, [j]], y[:, [j]]) for j in range(4)], eta=2.0)
    assert cost == pytest.approx(0.5 * np.sum((reference.feedforward(weights, biases, x) - y) ** 2), rel=1e-12)
    new_w, new_b = reference.update_mini_batch(weights, biases, x, y, 2.0)
    assert_relative([*params(net)[0], *params(net)[1]], [*new_w, *new_b], 1e-12)


def test_evaluate_counts_correct_argmax_predictions() -> None:
    net = Network([2, 2], rng=0)
    net.weights[0].data[...] = [[10.0, 0.0], [0.0, 10.0]]  # predicts the larger input
    net.biases[0].data[...] = 0.0
    x = np.array([[1.0, 0.0, 0.9, 0.2], [0.0, 1.0, 0.1, 0.8]])
    assert net.evaluate([(x[:, [j]], label) for j, label in enumerate([0, 1, 1, 1])]) == 3
    assert net.evaluate((x, np.array([1, 1, 1, 1]))) == 2
    assert net.predict(x).tolist() == [0, 1, 0, 1]
    one_hot_columns = one_hot(np.array([0, 1, 1, 1]), 2)  # the training layout is accepted too
    assert net.evaluate((x, one_hot_columns)) == 3
    assert net.evaluate([(x[:, [j]], one_hot_columns[:, [j]]) for j in range(4)]) == 3


def test_seeds_make_runs_reproducible_and_init_is_normal() -> None:
    a, b, c = (
        Network([784, 30, 10], rng=3),
        Network([784, 30, 10], rng=np.random.default_rng(3)),
        Network([784, 30, 10]),
    )
    np.testing.assert_array_equal(a.weights[0].data, b.weights[0].data)
    assert not np.array_equal(a.weights[0].data, c.weights[0].data)
    assert abs(a.weights[0].data.std() - 1.0) < 0.05
    scaled = Network([784, 30, 10], rng=3, init="scaled")
    assert abs(scaled.weights[0].data.std() * np.sqrt(784) - 1.0) < 0.05
    assert all(p.requires_grad for p in a.parameters())
    assert [b.shape for b in a.biases] == [(30, 1), (10, 1)]


def test_feedforward_records_a_graph_only_when_asked() -> None:
    net = Network([3, 2], rng=0)
    out = net.feedforward(np.ones((3, 5)))
    assert isinstance(out, ab.Tensor) and out.shape == (2, 5) and out.requires_grad
    with ab.no_grad():
        assert not net.feedforward(np.ones((3, 5))).requires_grad


def test_sgd_reports_progress_and_calls_back() -> None:
    rng = np.random.default_rng(10)
    x, labels = toy_data(12, [3, 2], rng)
    seen, wrapped = [], []

    def progress(starts: object, total: int) -> object:
        wrapped.append(total)
        return starts

    history = Network([3, 2], rng=0).SGD((x, labels), 2, 5, 1.0, callback=seen.append, progress=progress)
    assert seen == history and [r["epoch"] for r in history] == [0, 1] and wrapped == [3, 3]
    assert "correct" not in history[0] and history[0]["loss"] > 0


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="at least two positive layer sizes"):
        Network([3])
    with pytest.raises(ValueError, match="init must be 'book' or 'scaled'"):
        Network([3, 2], init="xavier")
    net = Network([3, 2], rng=0)
    with pytest.raises(ValueError, match=r"Network.backprop: x must be \(3, m\).*float64\[4, 1\]"):
        net.backprop(np.ones((4, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="training data must give"):
        net.SGD((np.ones((3, 4)), np.ones((5, 4))), 1, 2, 1.0)
    with pytest.raises(ValueError, match=r"one_hot: labels must lie in \[0, 2\)"):
        net.SGD((np.ones((3, 4)), np.array([0, 1, 2, 0])), 1, 2, 1.0)
    with pytest.raises(ValueError, match="mini_batch_size >= 1"):
        net.SGD((np.ones((3, 4)), np.array([0, 1, 1, 0])), 1, 0, 1.0)
    with pytest.raises(ValueError, match="training data is empty"):
        net.SGD([], 1, 2, 1.0)
    with pytest.raises(ValueError, match=r"test data must give x \(n_in, n\) and labels \(n,\)"):
        net.evaluate((np.ones((3, 4)), np.array([0, 1])))
    assert repr(net) == "Network([3, 2])"


def test_reproduction_script_gives_the_same_accuracies_with_either_engine(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    for field, name in MNIST_FILES.items():
        n = 80 if field.startswith("train") else 30
        shape = (n, 28, 28) if field.endswith("images") else (n,)
        write_idx(tmp_path / name, rng.integers(0, 256 if field.endswith("images") else 10, shape, dtype=np.uint8))
    script = Path(__file__).resolve().parent.parent / "examples" / "reproduce_nielsen.py"
    results = {}
    for engine in ("autobp", "reference"):
        out = tmp_path / f"{engine}.json"
        subprocess.run(
            [sys.executable, str(script), "--data", str(tmp_path), "--sizes", "784,6,10", "--seeds", "0", "--epochs",
             "3", "--validation", "20", "--engine", engine, "--json", str(out), "--out", str(tmp_path / engine)],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        (results[engine],) = json.loads(out.read_text())
    for key in ("test_accuracy", "validation_accuracy", "best_epoch"):
        assert results["autobp"][key] == results["reference"][key]
    assert len(results["autobp"]["test_accuracy"]) == 3


@pytest.mark.parametrize(
    "labels",
    [np.array([[0, 1, 2, 1]]), np.array([[0.2, 0.7, 0.1, 0.0], [0.8, 0.3, 0.9, 1.0]]), np.array([0.5, 1, 2, 1])],
    ids=["row-of-labels", "scores", "fractional"],
)
def test_evaluate_refuses_labels_it_would_misread(labels: np.ndarray) -> None:
    # argmax over a (1, n) row gave every label 0; 1.7 was truncated to 1: wrong counts, no error.
    net = Network([3, 4, 3], rng=0)
    with pytest.raises(ValueError, match="labels"):
        net.evaluate((np.zeros((3, 4)), labels))
    assert net.evaluate((np.zeros((3, 4)), np.array([0.0, 1.0, 2.0, 1.0]))) >= 0  # integral floats are labels


def test_a_pairs_label_held_in_a_one_element_array_is_that_class() -> None:
    # evaluate took argmax of np.array([2]): class 0, and a count of 0 where every guess was right.
    net = Network([2, 3, 3], rng=0)
    x = np.random.default_rng(0).standard_normal((2, 6))
    guesses = net.predict(x)
    for wrap in (int, lambda c: np.array([c]), lambda c: np.array([[c]]), lambda c: np.eye(3)[:, [c]]):
        assert net.evaluate([(x[:, j : j + 1], wrap(int(guesses[j]))) for j in range(6)]) == 6
    with pytest.raises(ValueError, match="class index or a one-hot column"):
        net.evaluate([(x[:, :1], np.array([0.2, 0.7, 0.1]))])  # scores: refused, as in the matrix layout


def test_bool_labels_are_classes_0_and_1_in_training() -> None:
    # one_hot indexed with a bool array, which numpy reads as a mask: [True, False] made targets
    # [[1, 1], [0, 0]] and the network trained on them without a word.
    assert one_hot(np.array([True, False]), 2).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    x = np.array([[0.5, -1.0], [2.0, 0.3]])
    by_bool, by_int = Network([2, 3, 2], rng=0), Network([2, 3, 2], rng=0)
    by_bool.update_mini_batch((x, np.array([True, False])), 1.0)
    by_int.update_mini_batch((x, np.array([1, 0])), 1.0)
    assert all(np.array_equal(p.data, q.data) for p, q in zip(by_bool.parameters(), by_int.parameters(), strict=True))


def test_a_hook_on_a_parameter_runs_taped_as_eagerly() -> None:
    # The tape differentiates fresh leaves: a hook on a weight (gradient clipping, freezing) was
    # skipped by the default taped network and run by taped=False, two trainings with no error.
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((2, 7)), rng.integers(0, 2, 7)

    def hooked(net: Network) -> Callable[[], None]:
        frozen = net.weights[0].data.copy()
        net.weights[0].register_hook(lambda g: g * 0.0)
        net.biases[1].register_hook(lambda g: g * 2.0)
        return lambda: np.testing.assert_array_equal(net.weights[0].data, frozen)

    trained = _trained_taped_and_eager([2, 3, 2], 0, (x, labels), (2, 3, 0.5), hooked)
    for taped, eager in zip(*trained, strict=True):
        np.testing.assert_allclose(taped, eager, rtol=0, atol=1e-15)
    net = Network([2, 3, 2], rng=0)
    handle = net.weights[0].register_hook(lambda g: g * 0.0)
    handle.remove()  # removed: the tape runs again, and the weight moves
    frozen = net.weights[0].data.copy()
    net.SGD((x, labels), 1, 3, 0.5)
    assert not np.array_equal(net.weights[0].data, frozen)


def test_a_taped_network_trains_to_the_eager_networks_weights_bit_for_bit() -> None:
    # Network's docstring and docs/reproduction.md: taped=True (the default) replays each
    # mini-batch "bit for bit what the eager engine computes"; a last mini-batch of another size too.
    rng = np.random.default_rng(0)
    x, labels = rng.random((20, 197)), rng.integers(0, 5, 197)
    trained = _trained_taped_and_eager([20, 7, 5], 3, (x, labels), (2, 10, 3.0), lambda net: lambda: None)
    for taped_values, eager_values in zip(*trained, strict=True):
        np.testing.assert_array_equal(taped_values, eager_values)


def _trained_taped_and_eager(
    sizes: list[int], seed: int, data: Any, schedule: tuple[int, int, float], prepare: Any
) -> list[list[np.ndarray]]:
    """The parameters after ``Network(sizes, rng=seed).SGD(data, *schedule)``, taped then eager;
    ``prepare(net)`` runs before training and returns a check run after it."""
    trained = []
    for taped in (True, False):
        net = Network(sizes, rng=seed, taped=taped)
        check = prepare(net)
        net.SGD(data, *schedule)
        check()
        trained.append([p.data.copy() for p in net.parameters()])
    return trained
