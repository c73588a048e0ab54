"""``autobp explain``: the seed network's backward pass on one training example, step by step.

Builds ``Network(sizes, rng=seed)``, records the cost of one example, and explains its backward
pass with ``autobp.viz.explain``: a self-contained page ``OUT/index.html`` (or plain text with
``--text``), every step checked against ``autobp.reference``. The example is image ``--example``
of the MNIST training set (the bundled subset, or full MNIST with ``--data``) when the network
reads 784 pixels and outputs 10 digits. For other sizes it is synthetic and deterministic:
``x`` is drawn uniformly from [0, 1) by ``numpy.random.default_rng([seed, example])`` and the
target is the one-hot column of class ``example % n_out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from autobp.commandline import layer_sizes, positive, seed_number

__all__ = ["add_parser", "example", "run"]


def add_parser(commands: Any) -> None:
    """Register the ``explain`` subcommand on the ``autobp`` command's subparsers."""
    parser = commands.add_parser(
        "explain",
        help="the seed network's backward pass on one example, step by step (an offline HTML page or --text)",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    )
    parser.add_argument(
        "--sizes",
        type=layer_sizes("2,3,2"),
        default=[2, 3, 2],
        help="layer sizes (default 2,3,2; 784,...,10 reads MNIST)",
    )
    parser.add_argument(
        "--seed",
        type=seed_number,
        default=0,
        help="seed of the initial weights (and of a synthetic example); default 0",
    )
    parser.add_argument("--example", type=seed_number, default=0, help="which training example (default 0)")
    parser.add_argument(
        "--eta",
        type=positive(float),
        default=3.0,
        help="learning rate of the closing gradient-descent step (default 3.0)",
    )
    parser.add_argument("--data", type=Path, help="directory with the four MNIST files (default: the bundled subset)")
    parser.add_argument(
        "--out", type=Path, default=Path("autobp-explain"), help="output directory (default ./autobp-explain)"
    )
    parser.add_argument("--text", action="store_true", help="print the explanation as text instead of writing the page")


def example(sizes: list[int], seed: int, index: int, data: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """One training example for the network and what it is. Shapes: -> x (sizes[0], 1), y (sizes[-1], 1) one-hot.

    >>> x, y, what = example([2, 3, 2], seed=0, index=3, data=None)
    >>> x.shape, y.ravel().tolist(), what.startswith("a synthetic example")
    ((2, 1), [0.0, 1.0], True)
    """
    from autobp.datasets import load_bundled, load_mnist
    from autobp.models import one_hot

    n_in, n_out = sizes[0], sizes[-1]
    if n_in == 784 and n_out == 10:
        mnist = load_mnist(data) if data is not None else load_bundled()
        images, labels = mnist.train_images, mnist.train_labels
        if index >= len(labels):
            raise ValueError(f"--example {index}: the training set has {len(labels)} images (0 to {len(labels) - 1})")
        x = images[index].reshape(784, 1) / 255.0
        label = int(labels[index])
        source = f"MNIST in {data}" if data is not None else "the bundled MNIST subset"
        return x, one_hot(np.array([label]), 10), f"training image {index} of {source} (a {label})"
    if data is not None:
        raise ValueError(f"--data: MNIST needs --sizes 784,...,10; got {','.join(map(str, sizes))}")
    x = np.random.default_rng([seed, index]).uniform(0.0, 1.0, (n_in, 1))
    label = index % n_out
    return x, one_hot(np.array([label]), n_out), f"a synthetic example (x uniform in [0, 1), class {label})"


def run(args: argparse.Namespace) -> int:
    """Run ``autobp explain`` with parsed arguments; returns the exit status (1 if a check fails)."""
    from autobp.models import Network
    from autobp.viz.explainer import explain

    try:
        x, y, what = example(args.sizes, args.seed, args.example, args.data)
    except (OSError, ValueError) as error:
        print(f"autobp explain: {error}", file=sys.stderr)
        return 2
    net = Network(args.sizes, rng=args.seed, taped=False)
    title = f"Network({args.sizes}), seed {args.seed}, on {what}"
    explanation = explain(net.cost(x, y), eta=args.eta, title=title)
    failed = [check for check in explanation.checks if not check.ok]
    if args.text:
        print(explanation)
    else:
        path = explanation.save_html(args.out)
        checks = explanation.checks
        worst = max(check.max_diff for check in checks)
        print(f"wrote {path}: {len(explanation.steps)} steps; {len(checks)} checks against autobp.reference, ", end="")
        print("all equal" if not failed else f"{len(failed)} MISMATCH", f"(max |diff| {worst:.3g})")
    return 1 if failed else 0
