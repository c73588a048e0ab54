"""Fixed work for instruction counts: ``valgrind --tool=callgrind python -m benchmarks.instructions KIND N``.

Wall-clock ratios on a shared machine move by ±10% between identical runs; callgrind's instruction
counts do not. Count ``N`` steps and ``0`` steps and subtract (the difference is the steps alone,
without Python's start-up and autobp's import), for two commits, to compare a small change:

    for n in 0 200; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python -m benchmarks.instructions eager $n 2>&1 | grep Collected; done

Kinds: ``eager`` and ``taped`` are W1's [784, 30, 10] step on one mini-batch of 10 (the seed's
``Network``, graph built every step or replayed from a tape); ``w2`` is W2's elementwise chain
(50 ops of ``sin``/``* 0.9``/``+ 0.1``/``tanh`` on 10 elements, forward and backward); ``w4`` is
W4's scalar chain at 1,000 ops (forward and backward); ``w5`` is W5's forward-over-reverse ``hvp``
(``w5revfwd``, ``w5rev`` and ``w5taped`` its other rows, ``w5numpy`` the hand-written R-operator
they are measured against). ``benchmarks/opcodes.py`` counts the same steps in Python opcodes
per function, without valgrind.
"""

from __future__ import annotations

import sys

import numpy as np

import autobp as ab
from autobp.models import Network


def run(kind: str, steps: int) -> np.ndarray:
    """Do ``steps`` steps of ``kind``; returns the final weights (network) or gradient (chain)."""
    rng = np.random.default_rng(0)
    if kind in ("eager", "taped"):
        x = rng.random((784, 10))
        y = np.zeros((10, 10))
        y[rng.integers(0, 10, 10), np.arange(10)] = 1.0
        net = Network([784, 30, 10], rng=1, taped=kind == "taped")
        for _ in range(steps):
            net.update_mini_batch((x, y), 3.0)
        return np.concatenate([w.data.ravel() for w in net.weights])
    if kind == "w2":
        x0 = rng.uniform(-1.0, 1.0, 10)
        grad = np.zeros(10)
        for _ in range(steps):
            x = ab.tensor(x0, requires_grad=True)
            z = x
            for i in range(50):
                z = [ab.sin, lambda t: t * 0.9, lambda t: t + 0.1, ab.tanh][i % 4](z)
            (g,) = ab.grad(z.sum(), [x])
            grad = g.data
        return grad
    if kind == "w4":
        from benchmarks.w4_scalar_chain import _framework_chain

        grad = np.zeros(())
        for _ in range(steps):
            x = ab.tensor(0.5, requires_grad=True)
            (g,) = ab.grad(_framework_chain(x, 1000), [x])
            grad = g.data
        return grad
    if kind in W5_KINDS:
        from benchmarks.w5_hvp import make

        step = make(W5_KINDS[kind], 128)
        products = [np.zeros(1)]
        for _ in range(5):  # (a tape's trace and checked replays: the same in a run of 0 steps)
            step()
        for _ in range(steps):
            products = step()
        return np.concatenate([np.ravel(p) for p in products])
    raise ValueError(f"instructions: unknown kind {kind!r}; use eager, taped, w2, w4, {', '.join(W5_KINDS)}")


# W5's Hessian-vector products (batch 128), by the benchmark's own rows.
W5_KINDS = {
    "w5": "autobp-fwdrev",
    "w5revfwd": "autobp-revfwd",
    "w5rev": "autobp",
    "w5taped": "autobp-taped",
    "w5numpy": "numpy",  # the hand-written R-operator: the baseline of the others
}


if __name__ == "__main__":
    result = run(sys.argv[1], int(sys.argv[2]))
    print(f"{sys.argv[1]} x{sys.argv[2]}: checksum {float(np.abs(result).sum()):.17g}")
