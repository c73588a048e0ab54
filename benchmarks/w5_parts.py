"""Where W5's taped row spends its time beyond the R-operator: ``python -m benchmarks.w5_parts [BATCH] [REPEATS]``.

Times, as the harness does (``harness.interleaved_medians``: a collection before each call, the
order rotated, medians), the hand-written R-operator, a whole call of ``tape.hvp``'s
``arrays``, and its replay alone (the generated program, as ``Tape.replay`` runs it, on the same
arrays): the difference between the last two is the call's own work in Python (splitting off the
directions, the signature of the arguments, the lookup of the tape).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.harness import interleaved_medians, steady_allocator
from benchmarks.w5_hvp import _loss, _setup, numpy_hvp


def parts(batch: int = 128, repeats: int = 200) -> dict[str, float]:
    """Median seconds per call of ``numpy``, ``taped`` (the whole call) and ``replay``."""
    import autobp as ab

    params, direction, x, y = _setup(batch)
    directions = tuple(direction)

    def loss_of(*arguments: Any) -> Any:
        return _loss(ab, list(arguments[:-2]), arguments[-2], arguments[-1])

    taped = ab.tape.hvp(loss_of, argnums=tuple(range(len(params))))
    for _ in range(20):  # traced, then replayed until checked (autobp.tape's patience), then ready
        taped.arrays(*params, x, y, directions)
        if taped._ready:
            break
    (tape,) = taped._ready.values()
    arrays = [*params, x, y, *directions]
    want = numpy_hvp(params, direction, x, y)
    for got in (taped.arrays(*params, x, y, directions)[1], tape.replay(arrays)[1]):  # type: ignore[index]
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    runs: dict[str, Callable[[], Any]] = {
        "numpy": lambda: numpy_hvp(params, direction, x, y),
        "taped": lambda: taped.arrays(*params, x, y, directions),
        "replay": lambda: tape.replay(arrays),
    }
    return interleaved_medians(runs, repeats)


def main(batch: int = 128, repeats: int = 200) -> None:
    print(f"# allocator: {steady_allocator()}")
    medians = parts(batch, repeats)
    for name, median in medians.items():
        print(f"{name:7} {median * 1e6:8.1f} us  {median / medians['numpy']:5.3f}x numpy")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
