"""Train a small CNN (Conv2d, MaxPool2d, ReLU) on MNIST with Adam, built from ``autobp.nn``.

Quick run on 2,000 images of the bundled subset (seconds)::

    python examples/cnn_mnist.py

Full MNIST (see docs/models.md for the measured accuracy and time; one BLAS thread is much
faster for these small matrices on a busy machine)::

    OPENBLAS_NUM_THREADS=1 python examples/cnn_mnist.py --data ../shared/data/mnist --epochs 3

``--library torch --device cuda`` (or ``--library cupy``) runs the same model on a GPU.
"""

from __future__ import annotations

import argparse

import numpy as np
from mnist_common import add_common_arguments, check_library, load, train

import autobp as ab
from autobp import nn


def build(channels: int, seed: int) -> nn.Module:
    """conv(3x3) -> relu -> pool(2) twice, then a 64-unit hidden layer: (N, 1, 28, 28) -> (N, 10)."""
    c1, c2 = channels, 2 * channels
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1, rng=seed, dtype=np.float32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3, padding=1, rng=seed + 1, dtype=np.float32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * 7 * 7, 64, rng=seed + 2, dtype=np.float32),
        nn.ReLU(),
        nn.Linear(64, 10, rng=seed + 3, dtype=np.float32),
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(
        parser,
        batch_size=64,
        lr=2e-3,
        limit_help="use only the first LIMIT training images (default: 2000 of the bundled subset, all of --data)",
    )
    parser.add_argument(
        "--channels",
        type=int,
        default=8,
        help="channels of the first convolution; the second has twice as many (default: 8)",
    )
    args = parser.parse_args(argv)
    check_library(parser, args)
    if args.data is None and args.limit is None:
        args.limit = 2000  # keeps the default run to seconds
    return args


def main(argv: list[str] | None = None) -> float:
    args = parse(argv)
    data = load(args, "cnn_mnist.py", channel_axis=True)
    model = build(args.channels, args.seed)
    print(model)
    test_accuracy = train(model, args, data, decay_every=args.epochs - 1)
    print(f"test accuracy: {100 * test_accuracy:.2f}%")
    if args.save:
        ab.save({"model": model.state_dict()}, args.save)
    return test_accuracy


if __name__ == "__main__":
    main()
