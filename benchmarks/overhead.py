"""Per-op overhead of autobp on a small elementwise chain, next to plain numpy (a plain script).

    python benchmarks/overhead.py [--ops 1000] [--elements 10] [--repeats 7]

The chain is W2's (``sin``, ``* 0.9``, ``+ 0.1``, ``tanh`` repeated) on 10 numbers, so the numpy
kernels cost little and the times are mostly Python overhead. Three lines, each next to numpy:
forward + backward (numpy with hand-written derivatives), forward while recording the graph, and
forward under ``no_grad`` (inference). Times are medians of interleaved repeats, in µs per op.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

import autobp as ab
from autobp.ops import sin, tanh
from benchmarks.harness import check_close, interleaved_medians
from benchmarks.w2_elementwise import WORKLOAD, _framework_chain, _input, make


def _numpy_forward(x: np.ndarray, ops: int) -> np.ndarray:
    return _framework_chain(x, ops, np.sin, np.tanh)  # type: ignore[no-any-return]


def overhead(ops: int = 1000, elements: int = 10, repeats: int = 7) -> list[tuple[str, float, float]]:
    """Rows (what, autobp µs per op, numpy µs per op), after checking autobp's results equal numpy's."""
    x0 = _input(elements)
    numpy_both, autobp_both = make("numpy", elements=elements, ops=ops), make("autobp", elements=elements, ops=ops)
    check_close(WORKLOAD, "autobp", autobp_both(), numpy_both())
    leaf = ab.tensor(x0, requires_grad=True)
    constant = ab.tensor(x0)

    def inference() -> Any:
        with ab.no_grad():
            return _framework_chain(leaf, ops, sin, tanh)

    runs = {
        "numpy fwd+bwd": numpy_both,
        "autobp fwd+bwd": autobp_both,
        "numpy fwd": lambda: _numpy_forward(x0, ops),
        "autobp fwd (recording)": lambda: _framework_chain(leaf, ops, sin, tanh),
        "autobp fwd (no_grad)": inference,
        "autobp fwd (constants)": lambda: _framework_chain(constant, ops, sin, tanh),
    }
    t = {name: seconds / ops * 1e6 for name, seconds in interleaved_medians(runs, repeats).items()}
    return [
        ("forward + backward", t["autobp fwd+bwd"], t["numpy fwd+bwd"]),
        ("forward, recording the graph", t["autobp fwd (recording)"], t["numpy fwd"]),
        ("forward under no_grad", t["autobp fwd (no_grad)"], t["numpy fwd"]),
        ("forward on requires_grad=False", t["autobp fwd (constants)"], t["numpy fwd"]),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--elements", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rows = overhead(args.ops, args.elements, args.repeats)
    print(f"chain of {args.ops} elementwise ops on {args.elements} elements; µs per op, median of {args.repeats}")
    print(f"{'':32}{'autobp':>9}{'numpy':>9}{'ratio':>8}{'overhead':>10}")
    for what, autobp_us, numpy_us in rows:
        ratio = autobp_us / numpy_us
        print(f"{what:32}{autobp_us:9.2f}{numpy_us:9.2f}{ratio:7.2f}x{autobp_us - numpy_us:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
