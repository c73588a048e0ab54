"""Data loading, batching and evaluation shared by the MNIST examples (mlp_mnist.py, cnn_mnist.py)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

import autobp as ab
from autobp import nn
from autobp.datasets import load_bundled, load_mnist


def load(
    data: str | None, limit: int | None, channel_axis: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images as float32 in [0, 1] and int64 labels: (train_x, train_y, test_x, test_y).

    Shapes: images (n, 28, 28), or (n, 1, 28, 28) with ``channel_axis``; labels (n,). ``data``
    names a folder of the four MNIST files; None reads the subset bundled with autobp.
    """
    mnist = load_mnist(data) if data else load_bundled()

    def scale(images: np.ndarray) -> np.ndarray:
        images = images[:, None] if channel_axis else images
        return (images / np.float32(255.0)).astype(np.float32)

    return (
        scale(mnist.train_images[:limit]),
        mnist.train_labels[:limit].astype(np.int64),
        scale(mnist.test_images),
        mnist.test_labels.astype(np.int64),
    )


def batches(n: int, size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
    """Index batches over ``n`` examples, shuffled when ``rng`` is given."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, size):
        yield order[start : start + size]


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, batch_size: int = 500) -> float:
    """The fraction of ``x`` whose argmax prediction equals ``y`` (model in eval mode, no graph)."""
    model.eval()
    correct = 0
    with ab.no_grad():
        for index in batches(len(x), batch_size, None):
            correct += int((model(ab.tensor(x[index])).numpy().argmax(axis=1) == y[index]).sum())
    model.train()
    return correct / len(x)
