"""Reproduce the seed network's published MNIST results with autobp.

Runs the sigmoid network with the quadratic cost, mini-batch SGD as in the book: train on the
training images minus the last ``--validation`` ones (the book: 50,000 of full MNIST, the last
10,000 held out), test on the test images, several seeds per size. Shows a progress bar per run,
prints per-epoch test accuracy, the best epoch and the wall time, plots test accuracy per epoch
for every seed next to the book's figure, and optionally writes everything as JSON.

    python examples/reproduce_nielsen.py --epochs 3 --seeds 0       # the bundled subset, seconds
    python examples/reproduce_nielsen.py --data ../shared/data/mnist  # the book's runs (minutes per seed)
    python examples/reproduce_nielsen.py --data ../shared/data/mnist --sizes 784,100,10 --init scaled

``--engine reference`` trains with the hand-written numpy backprop (``autobp.reference``) from the
same initial weights and shuffling instead, for comparison of results and time. ``--library torch``
(with ``--device cuda``) trains autobp's network with another array library.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from mnist_common import add_library_arguments, check_library

from autobp import reference
from autobp.commandline import Progress, add_data_flags, load_data, plural, positive, seed_number
from autobp.datasets import to_columns
from autobp.models import Network, one_hot

BOOK = {(784, 30, 10): 95.42, (784, 100, 10): 96.59}  # the book's best test accuracy (%), best of three runs
PROGRAM = "reproduce_nielsen.py"


def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(n) for n in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"sizes must be comma-separated integers, got {text!r}") from None
    if len(sizes) < 2 or sizes[0] != 784 or sizes[-1] != 10 or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"sizes must start with 784 and end with 10, got {text!r}")
    return sizes


def run_one(
    sizes: list[int], seed: int, args: argparse.Namespace, data: dict[str, Any], progress: Progress
) -> dict[str, Any]:
    """Train one network; return its per-epoch accuracies and wall time."""
    net = Network(sizes, rng=seed, init=args.init)
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data["train"], data["validation"], data["test"]
    steps = len(range(0, x_train.shape[1], args.batch))
    test_acc: list[float] = []
    val_acc: list[float] = []
    weights = [w.data.copy() for w in net.weights]
    biases = [b.data.copy() for b in net.biases]
    if args.library is not None:
        net.to(args.library, args.device)
    targets = one_hot(y_train, 10)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        if args.engine == "autobp":
            net.SGD((x_train, y_train), 1, args.batch, args.eta, progress=lambda starts, _: progress.iterate(starts))
            test_acc.append(net.evaluate((x_test, y_test)) / len(y_test))
            val_acc.append(net.evaluate((x_val, y_val)) / len(y_val))
        else:
            order = net.rng.permutation(x_train.shape[1])  # the same draws Network.SGD makes
            weights, biases = reference.sgd_epoch(weights, biases, x_train, targets, args.batch, args.eta, order)
            progress.advance(steps)
            test_acc.append(float(np.mean(reference.feedforward(weights, biases, x_test).argmax(0) == y_test)))
            val_acc.append(float(np.mean(reference.feedforward(weights, biases, x_val).argmax(0) == y_val)))
        progress.postfix(f"epoch {epoch}/{args.epochs}, test accuracy {100 * test_acc[-1]:.2f}%")
        progress.note(f"{sizes} seed={seed} epoch {epoch}/{args.epochs}: test accuracy {100 * test_acc[-1]:.2f}%")
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


def plot(results: list[dict[str, Any]], path: Path, where: str) -> Path | None:
    """Test accuracy per epoch, one line per seed and one panel per size, with the book's figure as a line."""
    if importlib.util.find_spec("matplotlib") is None:
        print("plot: not drawn; it needs matplotlib: pip install 'autobp[demo]'")
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    sizes = list(dict.fromkeys(tuple(r["sizes"]) for r in results))
    figure = Figure(figsize=(6.5 * len(sizes), 4.2), layout="constrained")
    FigureCanvasAgg(figure)
    panels = figure.subplots(1, len(sizes), squeeze=False)[0]
    for axes, size in zip(panels, sizes, strict=True):
        for r in (r for r in results if tuple(r["sizes"]) == size):
            epochs = range(1, len(r["test_accuracy"]) + 1)
            axes.plot(epochs, [100 * a for a in r["test_accuracy"]], marker=".", label=f"seed {r['seed']}")
        if size in BOOK:
            axes.axhline(BOOK[size], color="black", linestyle="--", linewidth=1, label=f"the book: {BOOK[size]}%")
        axes.set(xlabel="epoch", ylabel="test accuracy (%)", title=f"{list(size)}, init {results[0]['init']}")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # whole epochs only
        axes.grid(alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(f"Nielsen's network, engine {results[0]['engine']}, on {where}", fontsize="medium")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    print(f"plot: wrote {path}")
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_flags(parser)
    parser.add_argument(
        "--sizes",
        type=parse_sizes,
        nargs="+",
        default=[[784, 30, 10], [784, 100, 10]],
        help="layer sizes, one or more, each starting with 784 and ending with 10 (default: 784,30,10 784,100,10)",
    )
    parser.add_argument(
        "--seeds", type=seed_number, nargs="+", default=[0, 1, 2, 3, 4], help="seeds (default: 0 1 2 3 4)"
    )
    parser.add_argument("--epochs", type=positive(int), default=30, help="epochs per run (default: 30, as the book)")
    parser.add_argument("--batch", type=positive(int), default=10, help="mini-batch size (default: 10, as the book)")
    parser.add_argument("--eta", type=positive(float), default=3.0, help="learning rate (default: 3.0, as the book)")
    parser.add_argument(
        "--init", choices=["book", "scaled"], default="book", help="book: N(0,1); scaled: N(0,1/n_in) (default: book)"
    )
    parser.add_argument(
        "--engine",
        choices=["autobp", "reference"],
        default="autobp",
        help="train with autobp's autograd or with the hand-written backprop of autobp.reference (default: autobp)",
    )
    parser.add_argument(
        "--validation",
        type=int,
        help="hold out the last N training images (default: 10000 with --data, as the book; 1000 of the bundled)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("autobp-reproduction"),
        help="directory for the plot test_accuracy.png (default: ./autobp-reproduction)",
    )
    parser.add_argument("--json", help="write all results to this file (default: not written)")
    add_library_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_library(parser, args)
    if args.engine == "reference" and args.library is not None:
        parser.error("argument --library: the reference engine is numpy only; use --engine autobp")
    if args.validation is None:
        args.validation = 1_000 if args.data is None else 10_000
    mnist, where = load_data(args, PROGRAM)
    x_all, y_all = to_columns(mnist.train_images, mnist.train_labels)
    split = len(y_all) - args.validation
    if not 0 < split < len(y_all):
        parser.error(f"argument --validation: must be between 1 and {len(y_all) - 1}, got {args.validation}")
    data = {
        "train": (np.ascontiguousarray(x_all[:, :split]), y_all[:split]),
        "validation": (np.ascontiguousarray(x_all[:, split:]), y_all[split:]),
        "test": to_columns(mnist.test_images, mnist.test_labels),
    }
    print(
        f"{PROGRAM}: {where}: training on {split:,} images, validating on {args.validation:,}, "
        f"testing on {len(data['test'][1]):,}; engine {args.engine}",
        flush=True,
    )
    steps = len(range(0, split, args.batch))
    results = []
    for sizes in args.sizes:
        for seed in args.seeds:
            with Progress(args.epochs * steps, f"{sizes} seed {seed}", unit="batch") as progress:
                result = run_one(sizes, seed, args, data, progress)
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
        book = f" (the book: {BOOK[tuple(sizes)]}%)" if tuple(sizes) in BOOK else ""
        print(
            f"SUMMARY {sizes} init={args.init} engine={args.engine}: "
            f"best of {plural(len(args.seeds), 'seed')} {100 * best:.2f}%{book}"
        )
    plot(results, args.out / "test_accuracy.png", where)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return results


if __name__ == "__main__":
    main()
