"""W4's lower bound: the least any define-by-run recorder in Python pays per op, against the floor.

``python -m benchmarks.w4_bound [OPS] [REPEATS]`` times W4's chain (``* 1.0000001``, ``+ 1e-9`` on
a 0-d value, forward then backward) four ways, interleaved, and prints medians as ratios to the
one-element-array floor (W4's ``numpy-array`` row):

- ``floor``: numpy on a one-element array, the derivative carried back by hand;
- ``minimal``: a recorder with nothing but the graph: one slotted object per op holding the value,
  the op, its two inputs and a sequence number (what a walk needs to order nodes), made inline,
  and a backward that follows the chain (no heap, no dispatch, no checks of any kind);
- ``autobp``: W4's autobp row;
- ``no-gc``: the same with Python's cycle collector paused for the call (``gc.disable()``), which
  no framework may do to its users: what is left once the collector's passes over the live graph
  are taken out, so that the two rows apart are the collector's share.

``minimal`` is not a framework (no other op, no broadcasting, no versions, no error, no second
order); it bounds from below what one can cost. It also reports tracemalloc's peak bytes per node
for ``minimal`` and ``autobp``: the memory a node needs at the least, and what autobp's costs.
"""

from __future__ import annotations

import gc
import itertools
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import interleaved_medians, peak_bytes
from benchmarks.w4_scalar_chain import FACTOR, SHIFT, START, make, numpy_chain


class _Recorded:
    """A value and how it was made: the merged tensor and node of the least recorder."""

    __slots__ = ("data", "requires_grad", "grad", "op", "left", "right", "seq")
    data: Any
    requires_grad: bool
    grad: Any
    op: int | None
    left: _Recorded | None
    right: Any
    seq: int


def _minimal(ops: int) -> Callable[[], Any]:
    new, count = object.__new__, itertools.count(1).__next__
    multiply, add = np.multiply, np.add

    def run() -> Any:
        x = new(_Recorded)
        x.data, x.requires_grad, x.grad, x.seq = np.asarray(START), True, None, 0
        x.op = x.left = x.right = None
        y = x
        for i in range(ops):
            out = new(_Recorded)
            if i % 2 == 0:
                out.data, out.op = multiply(y.data, FACTOR), 0
            else:
                out.data, out.op = add(y.data, SHIFT), 1
            out.right = FACTOR if i % 2 == 0 else SHIFT
            out.requires_grad, out.grad, out.left, out.seq = True, None, y, count()
            y = out
        grad, node = np.ones_like(y.data), y
        while node.op is not None:  # d(x * c) = c, d(x + c) = 1; the graph freed as it is walked
            if node.op == 0:
                grad = multiply(grad, node.right)
            node.left, node = None, node.left  # type: ignore[assignment]
        return [y.data, grad]

    return run


def _collector_paused(run: Callable[[], Any]) -> Callable[[], Any]:
    def paused() -> Any:
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return run()
        finally:
            if was_enabled:
                gc.enable()

    return paused


def main(ops: int = 200_000, repeats: int = 5) -> None:
    runs = {
        "floor": lambda: numpy_chain(ops, np.array([START])),
        "minimal": _minimal(ops),
        "autobp": make("autobp", ops),
        "no-gc": _collector_paused(make("autobp", ops)),
    }
    want = numpy_chain(ops)
    for name in ("minimal", "autobp", "no-gc"):  # the same chain, the same numbers
        got = runs[name]()
        np.testing.assert_allclose([np.reshape(g, ()) for g in got], want, rtol=1e-12)
    medians = interleaved_medians(runs, repeats)
    floor = medians["floor"]
    print(f"W4 bound, {ops:,} ops, median of {repeats}")
    for name, median in medians.items():
        print(f"{name:8} {median / ops * 1e6:6.2f} us/op  {median / floor:5.2f}x floor")
    for name in ("minimal", "autobp"):
        print(f"{name:8} {peak_bytes(runs[name]) / ops:6.0f} B/node (tracemalloc peak)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
