"""W1: one epoch of the seed's sigmoid network [784, 30, 10], float64, mini-batches of 10, eta 3.0.

Each step takes one (784, 10) mini-batch matrix, runs the network, and descends on the quadratic
cost ``0.5 * sum ||a - y||^2`` with ``w <- w - (eta / m) * nabla_w``. The data are random, of
MNIST's shape (pixels in [0, 1), labels 0..9, a fixed seed), so the benchmark needs no dataset;
``load_images`` reads real MNIST when ``--data`` names a folder. The mini-batches are gathered
once, outside the timed call, and every call starts from the same initial weights. The autobp
side is the project's ``autobp.models.Network`` (its ``update_mini_batch``), the same network a user
trains (on a tape; the ``autobp-eager`` row builds and walks the graph every step), built once
per run like the numpy side's code, so that a call times one epoch of a longer run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any

import numpy as np

from benchmarks.harness import PEERS, Run, Workload

SIZES = [784, 30, 10]
ETA = 3.0
BATCH = 10

Params = list[np.ndarray]
Batch = tuple[np.ndarray, np.ndarray]  # inputs (784, m), one-hot targets (10, m)
Batches = list[Batch]
Epoch = Callable[[Params, Params, Batches], Params]

# Set by ``--data DIR``: a folder holding MNIST, read by autobp.datasets.
DATA_DIR: list[str] = []


def load_images(images: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Training inputs and one-hot targets, one example per column. Shapes: -> (784, n), (10, n)."""
    rng = np.random.default_rng(seed)
    if DATA_DIR:
        from autobp.datasets import load_mnist, to_columns

        mnist = load_mnist(DATA_DIR[0])
        x, labels = to_columns(mnist.train_images, mnist.train_labels, limit=images)
    else:
        x = rng.random((SIZES[0], images))
        labels = rng.integers(0, SIZES[-1], size=images)
    y = np.zeros((SIZES[-1], x.shape[1]))
    y[labels, np.arange(x.shape[1])] = 1.0
    return x, y


def _setup(images: int) -> tuple[Params, Params, Batches]:
    rng = np.random.default_rng(1)
    biases = [rng.standard_normal((n, 1)) for n in SIZES[1:]]
    weights = [rng.standard_normal((n_out, n_in)) for n_in, n_out in pairwise(SIZES)]
    x, y = load_images(images)
    order = rng.permutation(x.shape[1])
    batches = [(x[:, order[i : i + BATCH]], y[:, order[i : i + BATCH]]) for i in range(0, len(order), BATCH)]
    return weights, biases, batches


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # The seed's form: what a hand-written version computes (exp overflows only below z = -709).
    return 1.0 / (1.0 + np.exp(-z))


def numpy_epoch(weights: Params, biases: Params, batches: Iterable[Batch]) -> Params:
    """Hand-written vectorized backprop; updates the lists in place and returns all parameters."""
    for x, y in batches:
        activations = [x]
        for w, b in zip(weights, biases, strict=True):
            activations.append(_sigmoid(w @ activations[-1] + b))
        # delta = dC/dz: the cost's slope (a - y) times the sigmoid's slope a (1 - a).
        a = activations[-1]
        delta = (a - y) * a * (1.0 - a)
        step = ETA / x.shape[1]
        for layer in range(len(weights) - 1, -1, -1):
            below = activations[layer]
            nabla_w = delta @ below.T
            nabla_b = delta.sum(axis=1, keepdims=True)
            if layer:
                delta = (weights[layer].T @ delta) * below * (1.0 - below)
            weights[layer] -= step * nabla_w
            biases[layer] -= step * nabla_b
    return [*weights, *biases]


def autobp_epochs(taped: bool = True) -> Epoch:
    """The same epoch with ``autobp.models.Network``, whose gradients come from autobp's engine:
    replayed from a tape (the default, ``autobp.tape``) or recorded and walked anew each step.

    The network is built once, as a training run builds it once for all its epochs: its tape is
    traced on the first (untimed, checked) call, about a millisecond once per run."""
    import autobp as ab
    from autobp.models import Network

    net = Network(SIZES, taped=taped)

    def epoch(weights: Params, biases: Params, batches: Batches) -> Params:
        net.weights = [ab.tensor(w, requires_grad=True) for w in weights]
        net.biases = [ab.tensor(b, requires_grad=True) for b in biases]
        for batch in batches:
            net.update_mini_batch(batch, ETA)
        return [p.data for p in [*net.weights, *net.biases]]

    return epoch


def torch_epoch(weights: Params, biases: Params, batches: Batches) -> Params:
    import torch

    params = [torch.tensor(p, requires_grad=True) for p in [*weights, *biases]]
    ws, bs = params[: len(weights)], params[len(weights) :]
    data = [(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(y))) for x, y in batches]
    for x, y in data:
        a = x
        for w, b in zip(ws, bs, strict=True):
            a = torch.sigmoid(w @ a + b)
        cost = ((a - y) ** 2).sum() * 0.5
        grads = torch.autograd.grad(cost, params)
        step = ETA / x.shape[1]
        with torch.no_grad():
            for p, g in zip(params, grads, strict=True):
                p -= step * g
    return [p.detach().numpy() for p in params]


def mygrad_epoch(weights: Params, biases: Params, batches: Batches) -> Params:
    import mygrad as mg

    params = [mg.tensor(p) for p in [*weights, *biases]]
    ws, bs = params[: len(weights)], params[len(weights) :]
    for x, y in batches:
        a: Any = x
        for w, b in zip(ws, bs, strict=True):
            a = 1 / (1 + mg.exp(-(mg.matmul(w, a) + b)))
        cost = mg.sum((a - y) ** 2) * 0.5
        cost.backward()
        step = ETA / x.shape[1]
        for p in params:
            p.data -= step * np.asarray(p.grad)
    return [np.asarray(p.data) for p in params]


EPOCHS: dict[str, Callable[[], Epoch]] = {
    "numpy": lambda: numpy_epoch,
    "autobp": autobp_epochs,
    "autobp-eager": lambda: autobp_epochs(taped=False),
    "torch": lambda: torch_epoch,
    "mygrad": lambda: mygrad_epoch,
}


def make(impl: str, images: int) -> Run:
    """One epoch over ``images`` examples, from the same initial weights every call."""
    weights, biases, batches = _setup(images)
    epoch = EPOCHS[impl]()

    def run() -> Params:
        return epoch([w.copy() for w in weights], [b.copy() for b in biases], batches)

    return run


WORKLOAD = Workload(
    key="W1",
    title="seed network [784,30,10] float64, mini-batch 10, one epoch",
    sizes={"full": {"images": 10_000}, "quick": {"images": 2_000}, "tiny": {"images": 40}},
    make=make,
    impls=("numpy", "autobp", "autobp-eager", *PEERS),
)
