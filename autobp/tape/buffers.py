"""A tape's own buffers: intermediate arrays written in place, call after call.

A replay that allocates every intermediate array anew pays the allocator and, for arrays of tens
of kilobytes, fresh pages from the system on many calls: the hand-written R-operator of W5
(``benchmarks/w5_hvp.py``) runs in about half the time when its arrays are written into buffers
kept between calls. A tape knows every intermediate's shape and dtype from its trace (the
signature fixes the inputs' shapes and dtypes, and the ops buffered here compute the same shape
and dtype from the same operands), so each numpy step whose forward is a ufunc (``np.add``,
``np.tanh``, ``np.matmul``: they take ``out=``) or a product with a transposed operand
writes into a buffer of its own, made once at the trace.

What keeps the numbers and the results right:

- Only intermediates are buffered: a step whose value is a result is not, and a result that is a
  view of a buffer is copied (``Tape``'s fresh results), so no caller ever holds a buffer.
- Each buffered step has its own buffer, so no step writes where another value of the same
  replay still lives, and an operand is never the buffer written (the slots are single-assignment).
- Buffers are the trace's values' layout (C-contiguous only) and dtype: ``out=`` then runs numpy's
  same loop or BLAS call as without it, giving the same bits (``tests/test_tape_buffers.py``).
- Two threads replaying one tape at once would share the buffers: the replay takes a lock
  without waiting, and a call that finds it taken runs the tape's allocating program instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from autobp.ops.registry import OpDef

__all__ = ["buffered_call", "guarded"]

Replay = Callable[[list[Any]], Any]

# Products with a transposed operand (the backward's matrix products): np.matmul with a swapped view.
_TRANSPOSED = {"matmul_nt": "{0}, {1}.swapaxes(-1, -2)", "matmul_tn": "{0}.swapaxes(-1, -2), {1}"}


def buffered_call(
    opdef: OpDef,
    function: str,
    forward: Any,
    arguments: list[str],
    operands: list[Any],
    value: Any,
    slot: int,
    namespace: dict[str, Any],
) -> str | None:
    """The step's call of ``forward`` (named ``function`` in the program) on ``arguments`` (slot
    names; ``operands`` their traced values), writing into a buffer of its own (``out=b<slot>``);
    None when the step cannot be buffered: its forward is not a ufunc, or its traced ``value`` is
    not a C-contiguous numpy array of at least one dimension (a 0-d result is a numpy scalar)."""
    if type(value) is not np.ndarray or value.ndim == 0 or not value.flags.c_contiguous:
        return None
    if isinstance(forward, np.ufunc) and forward.nout == 1:
        call = f"{function}({', '.join(arguments)}, out=b{slot})"
    elif (
        opdef.name in _TRANSPOSED
        and len(operands) == 2
        and all(type(x) is np.ndarray and x.ndim >= 2 for x in operands)
    ):
        call = f"matmul({_TRANSPOSED[opdef.name].format(*arguments)}, out=b{slot})"
        namespace["matmul"] = np.matmul
    else:
        return None
    namespace[f"b{slot}"] = np.empty_like(value)
    return call


def _matrices(operand: Any) -> bool:
    return type(operand) is np.ndarray and operand.ndim >= 2


def guarded(buffered: Replay, allocating: Replay) -> Replay:
    """The replay to run: the buffered program, or the allocating one while another thread runs it."""
    lock = threading.Lock()

    def replay(arrays: list[Any]) -> Any:
        if lock.acquire(blocking=False):
            try:
                return buffered(arrays)
            finally:
                lock.release()
        return allocating(arrays)

    replay.buffered, replay.allocating = buffered, allocating  # type: ignore[attr-defined]  # (for tests)
    return replay
