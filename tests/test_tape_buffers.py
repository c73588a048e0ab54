"""A tape writes its intermediates into buffers it keeps (autobp/tape/buffers.py): these tests try
to make that give a different number, hand a caller a buffer, or let two threads share one."""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops.registry import REGISTRY, Hints, op
from autobp.tape.compile import Tape
from autobp.tape.trace import inputs_and_signature


def _mlp_loss(w1: Any, b1: Any, w2: Any, x: Any, y: Any) -> Any:
    hidden = ab.tanh(x @ w1 + b1)
    return 0.5 * ab.sum((hidden @ w2 - y) ** 2)


def _mlp_args(seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((6, 8)),
        rng.standard_normal(8),
        rng.standard_normal((8, 3)),
        rng.standard_normal((16, 6)),
        rng.standard_normal((16, 3)),
    )


def _tapes(taped: Any) -> list[Tape]:
    return [tape for entry in taped._signatures.values() for tape in entry.tapes]


def _allocating(tape: Tape) -> Any:
    """The tape's program without buffers (what a call finding the buffers busy runs)."""
    return tape.replay.allocating  # type: ignore[attr-defined]


def test_the_buffered_program_writes_intermediates_into_buffers() -> None:
    taped = ab.tape.value_and_grad(_mlp_loss, argnums=(0, 1, 2))
    for seed in range(3):
        taped.arrays(*_mlp_args(seed))
    (tape,) = _tapes(taped)
    assert tape.source.count("out=b") >= 6  # the products, sums and tanh of the forward and backward
    assert "matmul(" in tape.source  # the backward's products with a transposed operand too


@pytest.mark.parametrize("kind", ["grad", "hvp"])
def test_buffered_and_allocating_replays_give_the_same_bits_as_eager(kind: str) -> None:
    args = _mlp_args(0)
    if kind == "grad":
        taped: Any = ab.tape.value_and_grad(_mlp_loss, argnums=(0, 1, 2))
        extra: tuple[Any, ...] = ()
    else:
        taped = ab.tape.hvp(_mlp_loss, argnums=(0, 1, 2))
        extra = (tuple(np.ones_like(a) for a in args[:3]),)
    for seed in range(4):  # traced, checked against eager on new values, then replayed
        taped.arrays(*_mlp_args(seed), *extra)
    (tape,) = _tapes(taped)
    for seed in range(4, 8):
        call = (*_mlp_args(seed), *extra)
        args_in = taped._expanded(call) if kind == "hvp" else call
        arrays, _ = inputs_and_signature(args_in)
        buffered = tape.replay(arrays)
        allocating = _allocating(tape)(arrays)
        eager_value, eager_results = taped._eager(args_in, arrays)
        for a, b, c in zip(
            [buffered[0], *buffered[1]], [allocating[0], *allocating[1]], [eager_value, *eager_results], strict=True
        ):
            np.testing.assert_array_equal(a, b)
            np.testing.assert_array_equal(a, c)


@op("passed_through", hints=Hints())
def _passed_through(x: np.ndarray) -> np.ndarray:
    """``x`` itself, not a copy (as sum_to returns an operand with nothing to sum). Shapes: any -> same."""
    return x


_passed_through.defvjp(lambda grad, out, x: _passed_through(grad), plain_arrays=True)
del REGISTRY["passed_through"]  # a test-only op: keep the registry-driven suites to the library's ops


def test_results_never_share_memory_with_a_buffer_or_an_earlier_call() -> None:
    # w's gradient is the last step's operand itself, a buffered product: it must be copied out.
    def loss(w: Any, x: Any) -> Any:
        z = ab.tanh(x * _passed_through(w))
        return ab.sum(z * z)

    taped = ab.tape.value_and_grad(loss, argnums=0)
    w, x = np.full(5, 0.3), np.linspace(-1.0, 1.0, 5)
    calls = [taped.arrays(w + 0.1 * i, x) for i in range(10)]  # traced, checked, then replayed
    (tape,) = _tapes(taped)
    assert tape.buffers and "passed_through" in tape.source
    kept = [(value.copy(), [g.copy() for g in grads]) for value, grads in calls]
    for i in range(3):
        calls.append(taped.arrays(w - i, x))
    for (value, grads), (value_copy, grads_copy) in zip(calls, kept, strict=False):
        np.testing.assert_array_equal(value, value_copy)  # a later call changed no earlier result
        for g, g_copy in zip(grads, grads_copy, strict=True):
            np.testing.assert_array_equal(g, g_copy)
    for value, grads in calls:
        for result in (value, *grads):
            assert not any(np.shares_memory(result, buffer) for buffer in tape.buffers)


def _wide_args(seed: int) -> tuple[np.ndarray, ...]:
    """Arrays large enough (2,048-element intermediates) that numpy releases the GIL inside its loops."""
    rng = np.random.default_rng(seed)
    shapes = [(6, 32), (32,), (32, 3), (64, 6), (64, 3)]
    return tuple(rng.standard_normal(shape) for shape in shapes)


def test_threads_replaying_one_tape_get_their_own_numbers() -> None:
    taped = ab.tape.value_and_grad(_mlp_loss, argnums=(0, 1, 2))
    for seed in range(4):
        taped.arrays(*_wide_args(seed))
    assert _tapes(taped)[0].buffers
    expected = {seed: taped._eager(_wide_args(seed), inputs_and_signature(_wide_args(seed))[0]) for seed in range(6)}
    failures: list[int] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads interleave between any two lines of a replay

    def work(seed: int) -> None:
        args = _wide_args(seed)
        want_value, want_grads = expected[seed]
        for _ in range(150):
            value, grads = taped.arrays(*args)
            if not (np.array_equal(value, want_value) and all(map(np.array_equal, grads, want_grads))):
                failures.append(seed)
                return

    try:
        threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert not failures
