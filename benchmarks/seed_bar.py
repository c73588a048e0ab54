"""The seed issue's speed bar taken literally: a whole 30-epoch [784, 30, 10] training run.

    OPENBLAS_NUM_THREADS=1 python -m benchmarks.seed_bar --data ../shared/data/mnist

W1 times one epoch over pre-gathered mini-batches; the bar itself speaks of "a 30-epoch run".
This runs it: ``autobp.models.Network.SGD`` against W1's hand-written numpy epoch, 30 epochs over
50,000 images, mini-batches of 10, eta 3.0, from the same initial weights. Each epoch shuffles
with the same generator on both sides and gathers the mini-batches the way ``Network.SGD`` does,
inside the timed run (so the numpy side pays for gathering too, as any real training loop does).
The two runs alternate ``--repeats`` times; the ratio is of the medians. Both sides must end with
the same weights (to 1e-10, the seed issue's other bar): a faster run that trained differently
would not count.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks import w1_network
from benchmarks.w1_network import BATCH, ETA, SIZES, numpy_epoch

Params = list[np.ndarray]


def numpy_run(weights: Params, biases: Params, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> Params:
    """W1's hand-written epoch, ``epochs`` times, each over a fresh shuffle gathered as SGD does."""
    rows_x, rows_y = np.ascontiguousarray(x.T), np.ascontiguousarray(y.T)
    rng = np.random.default_rng(seed)
    n = rows_x.shape[0]
    for _ in range(epochs):
        order = rng.permutation(n)
        # Gathered one mini-batch at a time, as SGD does: a list of the whole epoch's batches
        # would allocate the training set again (313 MB for 50,000 images) and slow this side.
        batches = ((rows_x[order[i : i + BATCH]].T, rows_y[order[i : i + BATCH]].T) for i in range(0, n, BATCH))
        numpy_epoch(weights, biases, batches)
    return [*weights, *biases]


def autobp_run(weights: Params, biases: Params, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> Params:
    """``Network.SGD`` for ``epochs`` epochs (taped, as built by default), shuffled by the same generator."""
    import autobp as ab
    from autobp.models import Network

    net = Network(SIZES)
    net.weights = [ab.tensor(w, requires_grad=True) for w in weights]
    net.biases = [ab.tensor(b, requires_grad=True) for b in biases]
    net.rng = np.random.default_rng(seed)
    net.SGD((x, y), epochs, BATCH, ETA)
    return [p.data for p in [*net.weights, *net.biases]]


RUNS = {"numpy": numpy_run, "autobp": autobp_run}


def measure(images: int, epochs: int, repeats: int) -> dict[str, Any]:
    """Alternate the two runs ``repeats`` times; their times, medians, ratio and final difference."""
    x, y = w1_network.load_images(images)
    rng = np.random.default_rng(1)
    biases = [rng.standard_normal((n, 1)) for n in SIZES[1:]]
    weights = [rng.standard_normal((n_out, n_in)) for n_in, n_out in pairwise(SIZES)]
    runs = RUNS
    times: dict[str, list[float]] = {name: [] for name in runs}
    finals: dict[str, Params] = {}
    for repeat in range(repeats):
        for name in list(runs)[repeat % 2 :] + list(runs)[: repeat % 2]:
            start = time.perf_counter()
            finals[name] = runs[name]([w.copy() for w in weights], [b.copy() for b in biases], x, y, epochs, 2)
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    difference = max(float(np.max(np.abs(a - b))) for a, b in zip(finals["autobp"], finals["numpy"], strict=True))
    return {
        "images": x.shape[1],
        "epochs": epochs,
        "times": times,
        "medians": medians,
        "ratio": medians["autobp"] / medians["numpy"],
        "difference": difference,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="", help="a folder with MNIST (default: random data of MNIST's shape)")
    parser.add_argument("--images", type=int, default=50_000, help="training images (default 50,000, the book's)")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each side, alternating (default 3)")
    args = parser.parse_args(argv)
    w1_network.DATA_DIR[:] = [args.data] if args.data else []
    result = measure(args.images, args.epochs, args.repeats)
    for name, runs in result["times"].items():
        shown = ", ".join(f"{t:.2f}" for t in runs)
        print(f"{name:7s} median {result['medians'][name]:.2f} s  (runs: {shown})")
    print(
        f"autobp / numpy: {result['ratio']:.3f}x over {result['epochs']} epochs of {result['images']} images; "
        f"final weights differ by {result['difference']:.2g}"
    )
    return 0 if result["difference"] <= 1e-10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
