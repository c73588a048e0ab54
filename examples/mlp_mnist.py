"""Train a ReLU MLP on MNIST with softmax cross-entropy and Adam, built from ``autobp.nn``.

Quick run on the bundled subset (seconds)::

    python examples/mlp_mnist.py

Full MNIST (see docs/models.md for the measured accuracy and time)::

    OPENBLAS_NUM_THREADS=1 python examples/mlp_mnist.py --data ../shared/data/mnist --epochs 10

The same model on a GPU through PyTorch (or CuPy: ``--library cupy``)::

    python examples/mlp_mnist.py --library torch --device cuda
"""

from __future__ import annotations

import argparse

import numpy as np
from mnist_common import add_common_arguments, check_library, load, train

import autobp as ab
from autobp import nn


def build(hidden: int, seed: int) -> nn.Module:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, hidden, rng=seed, dtype=np.float32),
        nn.ReLU(),
        nn.Linear(hidden, hidden // 2, rng=seed + 1, dtype=np.float32),
        nn.ReLU(),
        nn.Linear(hidden // 2, 10, rng=seed + 2, dtype=np.float32),
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, batch_size=128, lr=1e-3)
    parser.add_argument(
        "--hidden", type=int, default=256, help="width of the first hidden layer; the second is half (default: 256)"
    )
    args = parser.parse_args(argv)
    check_library(parser, args)
    return args


def main(argv: list[str] | None = None) -> float:
    args = parse(argv)
    data = load(args, "mlp_mnist.py")
    model = build(args.hidden, args.seed)
    print(model)
    test_accuracy = train(model, args, data, decay_every=args.epochs // 2)
    print(f"test accuracy: {100 * test_accuracy:.2f}%")
    if args.save:
        ab.save({"model": model.state_dict()}, args.save)
    return test_accuracy


if __name__ == "__main__":
    main()
