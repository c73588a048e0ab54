"""Python opcodes per step, per function: ``python -m benchmarks.opcodes KIND [STEPS] [TOP]``.

The interpreter's work on autobp's side of a step, counted exactly (``sys.settrace`` with
opcode events), so two commits can be compared without valgrind and without noise: the same
step always runs the same opcodes. It counts Python only; numpy's C work and the interpreter's
cost per opcode are callgrind's (``benchmarks/instructions.py``), and time is the benchmarks'.
Kinds are ``benchmarks/instructions.py``'s (``eager``, ``taped``, ``w2``, ``w4``, ``w5``...); two steps
run first, uncounted, so that one-time work (a tape's trace) is left out, and a run of no steps
is subtracted, so that the setup is.
"""

from __future__ import annotations

import collections
import sys
from types import FrameType
from typing import Any

from benchmarks.instructions import run


def count(kind: str, steps: int) -> collections.Counter[tuple[str, str]]:
    """Opcodes executed by ``steps`` steps of ``kind``, keyed by (file, function): a run of
    ``steps`` minus a run of none, so that the setup both share is left out."""
    run(kind, 2)
    return _traced(kind, steps) - _traced(kind, 0)


def _traced(kind: str, steps: int) -> collections.Counter[tuple[str, str]]:
    counts: collections.Counter[tuple[str, str]] = collections.Counter()

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            code = frame.f_code
            counts[(code.co_filename.rsplit("/autobp/", 1)[-1], code.co_name)] += 1
        return tracer

    # Restore the tracer that was there (coverage's, under pytest --cov), not None: clearing it
    # stopped coverage for the rest of the test run, so that every test after test_benchmarks.py
    # counted for nothing and covered lines were reported missing.
    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        run(kind, steps)
    finally:
        sys.settrace(previous)
    return counts


def main(argv: list[str]) -> None:
    kind, steps = argv[0], int(argv[1]) if len(argv) > 1 else 20
    top = int(argv[2]) if len(argv) > 2 else 15
    counts = count(kind, steps)
    print(f"{kind}: {sum(counts.values()) / steps:.1f} opcodes per step")
    for (path, name), n in counts.most_common(top):
        print(f"{n / steps:10.1f}  {path}:{name}")


if __name__ == "__main__":
    main(sys.argv[1:])
