"""One epoch of examples/mlp_mnist.py's model (784-256-128-10 ReLU MLP, float32, Adam, batch 128)
with autobp computing on each array library asked for: the time of the epoch and the test
accuracy after it.

    python -m benchmarks.gpu_mnist --data DIR                 # full MNIST from DIR; cupy, torch cuda, numpy
    python -m benchmarks.gpu_mnist --libraries numpy --device cpu   # the bundled 10,000-image subset

The model is built once on the host by examples/mlp_mnist.py's ``build`` (same seed, same
weights), moved with ``Module.to``; the images and labels are moved to the device once, and each
batch is gathered there. Same seed, same batches: the libraries should end within a few tenths of
a percent of each other (float32 summation orders differ). A library that fails prints its error
and the others still run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.gpu_w3 import synchronizer

BATCH, LR, HIDDEN, SEED = 128, 1e-3, 256, 0


def load(directory: str | None) -> tuple[np.ndarray, ...]:
    """(train_x, train_y, test_x, test_y): float32 images in [0, 1], int64 labels."""
    from autobp.datasets import load_bundled, load_mnist

    data = load_mnist(directory) if directory else load_bundled()
    scale = np.float32(1 / 255)
    return (
        data.train_images.astype(np.float32) * scale,
        data.train_labels.astype(np.int64),
        data.test_images.astype(np.float32) * scale,
        data.test_labels.astype(np.int64),
    )


def epoch(library: str, device: str, data: tuple[np.ndarray, ...]) -> tuple[float, float]:
    """Seconds for one training epoch on ``library``/``device`` and the test accuracy after it."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    from mlp_mnist import build  # the model the example trains

    import autobp as ab
    from autobp.nn import functional as F

    train_x, train_y, test_x = (ab.tensor(a).to(library, device) for a in data[:3])
    model = build(HIDDEN, SEED)
    if library != "numpy":
        model = model.to(library, device)
    optimizer = ab.optim.Adam(model.parameters(), lr=LR)
    order = np.random.default_rng(SEED).permutation(len(data[0]))
    sync = synchronizer(library, device)
    sync()
    start = time.perf_counter()
    for first in range(0, len(order), BATCH):
        index: Any = ab.tensor(order[first : first + BATCH]).to(library, device).data
        loss = F.cross_entropy(model(train_x[index]), train_y.data[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sync()
    seconds = time.perf_counter() - start
    model.eval()
    with ab.no_grad():
        predicted = model(test_x).numpy().argmax(axis=1)
    return seconds, float(np.mean(predicted == data[3]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libraries", nargs="+", default=["cupy", "torch", "numpy"])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu; numpy always runs on the cpu")
    parser.add_argument("--data", default=None, help="a folder of the four MNIST files (default: the bundled subset)")
    args = parser.parse_args(argv)
    data = load(args.data)
    what = f"{len(data[0])} training images" + ("" if args.data else " (bundled subset)")
    failed = 0
    for library in args.libraries:
        device = "cpu" if library == "numpy" else args.device
        try:
            seconds, accuracy = epoch(library, device, data)
            print(f"MNIST mlp, one epoch of {what}, autobp on {library} ({device}): "
                  f"{seconds:.1f} s, test accuracy {100 * accuracy:.2f}%", flush=True)  # fmt: skip
        except Exception as error:  # report and go on: one broken library must not hide the others
            failed += 1
            print(f"MNIST mlp on {library}: FAILED {type(error).__name__}: {str(error)[:300]}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
