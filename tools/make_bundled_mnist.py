"""Build autobp/data/mnist_subset.npz: a stratified MNIST subset bundled with the package.

Equal counts per digit (1,000 train and 200 test each by default), drawn without replacement by a
seeded generator, kept in the files' original order, stored as uint8 with np.savez_compressed.
Deterministic: the same source files and seed give the same arrays.

    python tools/make_bundled_mnist.py --data ../shared/data/mnist
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from autobp.datasets import load_mnist

OUT = Path(__file__).resolve().parent.parent / "autobp" / "data" / "mnist_subset.npz"
LIMIT_BYTES = 2_100_000


def stratified(labels: np.ndarray, per_digit: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``per_digit`` examples of every digit, sorted. Shapes: (n,) -> (10 * per_digit,)."""
    picks = [rng.choice(np.flatnonzero(labels == digit), per_digit, replace=False) for digit in range(10)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="directory with the four MNIST files")
    parser.add_argument("--train-per-digit", type=int, default=1000)
    parser.add_argument("--test-per-digit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    mnist = load_mnist(args.data)
    rng = np.random.default_rng(args.seed)
    train = stratified(mnist.train_labels, args.train_per_digit, rng)
    test = stratified(mnist.test_labels, args.test_per_digit, rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        train_images=mnist.train_images[train],
        train_labels=mnist.train_labels[train],
        test_images=mnist.test_images[test],
        test_labels=mnist.test_labels[test],
    )
    size = args.out.stat().st_size
    print(f"wrote {args.out}: {len(train)} train + {len(test)} test images, {size:,} bytes")
    if size > LIMIT_BYTES:
        raise SystemExit(f"{args.out} is {size:,} bytes, over the {LIMIT_BYTES:,}-byte budget for package data")


if __name__ == "__main__":
    main()
