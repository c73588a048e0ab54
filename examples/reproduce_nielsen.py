"""Reproduce the seed network's published MNIST results with autobp.

Runs the sigmoid network with the quadratic cost, mini-batch SGD as in the book: 50,000 training
images (the last 10,000 of the training file are held out as validation), test on the 10,000 test
images, several seeds per size. Prints per-epoch test accuracy, the best epoch and the wall time,
and optionally writes everything as JSON.

    python examples/reproduce_nielsen.py --data ../shared/data/mnist
    python examples/reproduce_nielsen.py --data ../shared/data/mnist --sizes 784,100,10 --init scaled

``--engine reference`` trains with the hand-written numpy backprop (``autobp.reference``) from the
same initial weights and shuffling instead, for comparison of results and time.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from autobp import reference
from autobp.datasets import load_mnist, to_columns
from autobp.models import Network, one_hot


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be comma-separated integers, got {text!r}") from None
    if len(sizes) < 2 or sizes[0] != 784 or sizes[-1] != 10 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must start with 784 and end with 10, got {text!r}")
    return sizes


def run_one(sizes: list[int], seed: int, args: argparse.Namespace, data: dict[str, Any]) -> dict[str, Any]:
    """Train one network; return its per-epoch accuracies and wall time."""
    net = Network(sizes, rng=seed, init=args.init)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data["train"], data["validation"], data["test"]
    test_acc, val_acc = [], []
    start = time.perf_counter()
    if args.engine == "autobp":
        for _ in range(args.epochs):
            net.SGD((x_train, y_train), 1, args.batch, args.eta)
            test_acc.append(net.evaluate((x_test, y_test)) / len(y_test))
            val_acc.append(net.evaluate((x_val, y_val)) / len(y_val))
    else:
        weights = [w.data.copy() for w in net.weights]
        biases = [b.data.copy() for b in net.biases]
        targets = one_hot(y_train, 10)
        for _ in range(args.epochs):
            order = net.rng.permutation(x_train.shape[1])  # the same draws Network.SGD makes
            weights, biases = reference.sgd_epoch(weights, biases, x_train, targets, args.batch, args.eta, order)
            test_acc.append(float(np.mean(reference.feedforward(weights, biases, x_test).argmax(0) == y_test)))
            val_acc.append(float(np.mean(reference.feedforward(weights, biases, x_val).argmax(0) == y_val)))
    wall = time.perf_counter() - start
    best = int(np.argmax(test_acc))
    by_val = int(np.argmax(val_acc))
    return {
        "sizes": sizes,
        "seed": seed,
        "init": args.init,
        "engine": args.engine,
        "test_accuracy": test_acc,
        "validation_accuracy": val_acc,
        "best_epoch": best + 1,
        "best_test_accuracy": test_acc[best],
        "test_at_best_validation": test_acc[by_val],
        "final_test_accuracy": test_acc[-1],
        "wall_seconds": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="Reproduce the seed network's MNIST results with autobp.")
    parser.add_argument("--data", required=True, help="directory with the four MNIST files")
    parser.add_argument("--sizes", type=parse_sizes, nargs="+", default=[[784, 30, 10], [784, 100, 10]])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--eta", type=float, default=3.0)
    parser.add_argument("--init", choices=["book", "scaled"], default="book", help="book: N(0,1); scaled: N(0,1/n_in)")
    parser.add_argument("--engine", choices=["autobp", "reference"], default="autobp")
    parser.add_argument("--validation", type=int, default=10_000, help="hold out the last N training images")
    parser.add_argument("--json", help="write all results to this file")
    args = parser.parse_args()

    mnist = load_mnist(args.data)
    x_all, y_all = to_columns(mnist.train_images, mnist.train_labels)
    split = len(y_all) - args.validation  # the book: 50,000 to train on, the last 10,000 held out
    if not 0 < split < len(y_all):
        parser.error(f"argument --validation: must be between 1 and {len(y_all) - 1}, got {args.validation}")
    data = {
        "train": (np.ascontiguousarray(x_all[:, :split]), y_all[:split]),
        "validation": (np.ascontiguousarray(x_all[:, split:]), y_all[split:]),
        "test": to_columns(mnist.test_images, mnist.test_labels),
    }
    results = []
    for sizes in args.sizes:
        for seed in args.seeds:
            result = run_one(sizes, seed, args, data)
            results.append(result)
            per_epoch = " ".join(f"{100 * a:.2f}" for a in result["test_accuracy"])
            print(f"{sizes} init={args.init} seed={seed}: test accuracy per epoch (%): {per_epoch}")
            print(
                f"{sizes} init={args.init} seed={seed}: best epoch {result['best_epoch']} "
                f"{100 * result['best_test_accuracy']:.2f}%, at best validation "
                f"{100 * result['test_at_best_validation']:.2f}%, final {100 * result['final_test_accuracy']:.2f}%, "
                f"wall {result['wall_seconds']:.1f} s",
                flush=True,
            )
        best = max(r["best_test_accuracy"] for r in results if r["sizes"] == sizes)
        print(
            f"SUMMARY {sizes} init={args.init} engine={args.engine}: best of {len(args.seeds)} seeds {100 * best:.2f}%"
        )
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)


if __name__ == "__main__":
    main()
