"""Flags, data loading, batching, evaluation and training shared by the MNIST examples (mlp_mnist.py, cnn_mnist.py).

The ``--data``/``--download`` flags, their one-line errors and the progress bar come from
``autobp.commandline``, which ``autobp demo`` and ``reproduce_nielsen.py`` use too.
``--library torch --device cuda`` runs the same model code with another array library: the model
moves there once (``model.to``), each mini-batch is copied there, and the same seed gives the same
numbers as numpy's run up to rounding.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

import autobp as ab
from autobp import backends, nn
from autobp.commandline import Progress, add_data_flags, load_data, positive, seed_number
from autobp.nn import functional as F


def add_common_arguments(
    parser: argparse.ArgumentParser,
    batch_size: int,
    lr: float,
    limit_help: str = "use only the first LIMIT training images (default: all)",
) -> None:
    """The flags both MNIST examples take: data, download, epochs, batch size, learning rate, limit, seed, save."""
    add_data_flags(parser)
    parser.add_argument("--epochs", type=positive(int), default=1, help="passes over the training images (default: 1)")
    parser.add_argument(
        "--batch-size", type=positive(int), default=batch_size, help=f"mini-batch size (default: {batch_size})"
    )
    parser.add_argument("--lr", type=positive(float), default=lr, help=f"Adam's learning rate (default: {lr:g})")
    parser.add_argument("--limit", type=positive(int), default=None, help=limit_help)
    parser.add_argument(
        "--seed", type=seed_number, default=0, help="seed of the initial weights and the shuffling (default: 0)"
    )
    parser.add_argument("--save", help="write the trained state dict to this .npz file (default: not saved)")
    add_library_arguments(parser)


def add_library_arguments(parser: argparse.ArgumentParser) -> None:
    """``--library`` and ``--device``: where the model computes (default: numpy on the cpu)."""
    parser.add_argument(
        "--library",
        choices=list(backends.LIBRARIES),
        default=None,
        help="the array library to compute with: numpy, torch, cupy, array_api_strict (default: numpy)",
    )
    parser.add_argument("--device", default=None, help="the library's device, e.g. cuda or cuda:1 (default: cpu)")


def check_library(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """End with a one-line error naming the flag when ``--library`` is not installed."""
    if args.library is None and args.device is not None:
        parser.error("argument --device: give --library too, e.g. --library torch --device cuda")
    if args.library is not None:
        try:
            backends.library(args.library)
        except ImportError as error:
            parser.error(f"argument --library: {error}")


def to_library(array: np.ndarray, args: argparse.Namespace) -> ab.Tensor:
    """A host array as a Tensor in ``args.library`` on ``args.device`` (numpy: as it is)."""
    x = ab.tensor(array)
    return x if args.library is None else x.to(args.library, args.device)


def load(
    args: argparse.Namespace, program: str, channel_axis: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images as float32 in [0, 1] and int64 labels: (train_x, train_y, test_x, test_y).

    Shapes: images (n, 28, 28), or (n, 1, 28, 28) with ``channel_axis``; labels (n,). ``args.data``
    names a folder of the four MNIST files (``--download`` fetches missing ones); None reads the
    subset bundled with autobp. A data problem ends the program with one line naming the flag.
    """
    mnist, where = load_data(args, program)
    limit = args.limit
    print(f"{program}: MNIST images from {where}", flush=True)

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


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray, args: Any = None, batch_size: int = 500) -> float:
    """The fraction of ``x`` whose argmax prediction equals ``y`` (model in eval mode, no graph)."""
    model.eval()
    correct = 0
    with ab.no_grad():
        for index in batches(len(x), batch_size, None):
            logits = model(ab.tensor(x[index]) if args is None else to_library(x[index], args))
            correct += int((logits.numpy().argmax(axis=1) == y[index]).sum())
    model.train()
    return correct / len(x)


def train(model: nn.Module, args: argparse.Namespace, data: tuple[np.ndarray, ...], decay_every: int) -> float:
    """Train with Adam and softmax cross-entropy, multiplying the learning rate by 0.3 every
    ``decay_every`` epochs; prints one line per epoch and returns the final test accuracy."""
    train_x, train_y, test_x, test_y = data
    if args.library is not None:
        model.to(args.library, args.device)  # before the optimizer, so that its state is made there
    optimizer = ab.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = ab.optim.StepLR(optimizer, step_size=max(decay_every, 1), gamma=0.3)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    test_accuracy = 0.0
    steps = len(range(0, len(train_x), args.batch_size))
    with Progress(args.epochs * steps, "training", unit="batch") as progress:
        for epoch in range(1, args.epochs + 1):
            total = 0.0
            for index in progress.iterate(batches(len(train_x), args.batch_size, rng)):
                loss = F.cross_entropy(model(to_library(train_x[index], args)), to_library(train_y[index], args))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(index)
            scheduler.step()
            test_accuracy = accuracy(model, test_x, test_y, args)
            progress.postfix(f"epoch {epoch}/{args.epochs}, test accuracy {100 * test_accuracy:.2f}%")
            progress.line(
                f"epoch {epoch}: train loss {total / len(train_x):.4f}, test accuracy {100 * test_accuracy:.2f}%, "
                f"{time.perf_counter() - start:.1f} s"
            )
    return test_accuracy
