"""Differential fuzzing of autobp.tape: random programs, taped and eager, on new values each call.

A program is a random expression graph from the op registry (``test_fuzz.programs``) wrapped in
what a tape must not get wrong: a Python branch on a traced value (``bool()``, ``.item()``,
``int()``), a static argument drawn from values that compare equal but are not the same
(``1``/``True``, ``0.0``/``-0.0``, ``inf``/``-inf``), inputs laid out in C or Fortran order or
strided (a layout decides the order in which a sum adds), a ``detach()``, a softmax, an op whose
gradient reads values (eager), and a Tensor it closes over that may change in place between
calls. Each program is called 5 times on new values: every call must give the eager results bit
for bit (or raise TapeError, which none does today).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_fuzz import Program, programs

import autobp as ab
from autobp.nn.functional import log_softmax
from autobp.tape.trace import Recorder

CALLS = 5
STATICS = [1, True, 0.0, -0.0, math.inf, -math.inf, 2.5]
READS = {
    "none": None,
    "bool": lambda t: bool(t > 0),
    "item": lambda t: t.item() > 0,
    "int": lambda t: int(t * 2.0) % 2 == 0,
}


@dataclass
class TapeProgram:
    """A random program and the tape hazards around it; ``loss`` is the function called taped."""

    program: Program
    read: str
    branch_on: int
    detach: bool
    softmax: bool
    eager_op: bool
    statics: list[Any]
    closure_changes: list[float]
    layouts: list[str]

    def __post_init__(self) -> None:
        self.closure = ab.tensor([0.5])

    def loss(self, *args: Any) -> ab.Tensor:
        *inputs, static = args
        values = list(inputs)
        for step in self.program.steps:
            values.append(step.apply(*(values[i] for i in step.operands)))
        loss = sum(v.sum() for v in values[len(inputs) :]) or values[0].sum()
        chosen = values[self.branch_on % len(values)].sum()
        read = READS[self.read]
        if read is not None:
            loss = loss * 2.0 if read(chosen) else loss - chosen * 3.0
        sign = math.copysign(1.0, static)  # -0.0 and 0.0, inf and -inf: different programs
        loss = loss * (1.5 if static is True else 1.0) + sign * ab.tanh(values[0]).sum()
        if self.detach:
            loss = loss + (values[-1] * values[-1].detach()).sum()
        if self.softmax:
            loss = loss + log_softmax(ab.reshape(values[0], (-1,)) * 3.0).sum()
        if self.eager_op:
            loss = loss + ab.max(values[-1])
        return loss + (values[0] * ab.exp(self.closure)).sum()  # exp(closure): a folded constant

    def check(self) -> list[str]:
        """Run the calls; the differences from eager found (empty when the tape is sound)."""
        argnums = tuple(range(len(self.program.shapes)))
        taped = ab.tape.value_and_grad(self.loss, argnums)
        eager = ab.functional.value_and_grad(self.loss, argnums)
        rng = np.random.default_rng(self.program.seed)
        differences = []
        calls = [[rng.uniform(-1.5, 1.5, shape) for shape in self.program.shapes] for _ in range(CALLS)]
        calls = [[_laid_out(x, layout) for x in inputs] for inputs, layout in zip(calls, self.layouts, strict=True)]
        calls[1] = [
            _laid_out(x, self.layouts[0]) for x in calls[0]
        ]  # the first values again: a replay on the trace's values
        for call, inputs in enumerate(calls):
            static = self.statics[call]
            try:
                value, grads = taped.arrays(*inputs, static)
            except ab.tape.TapeError:
                continue  # refused: allowed, never a wrong number
            want, wanted = eager(*[ab.tensor(x) for x in inputs], static)
            for name, got, expected in zip(["value", *argnums], [value, *grads], [want, *wanted], strict=True):
                got, expected = np.asarray(got), expected.data
                if (got.dtype, got.shape, got.tobytes()) != (expected.dtype, expected.shape, expected.tobytes()):
                    differences.append(f"call {call}, {name}: {got} != {expected}")
            if self.closure_changes[call] != 1.0:  # (any in-place write moves the version)
                with ab.no_grad():
                    self.closure.mul_(self.closure_changes[call])
        return differences


def _laid_out(x: np.ndarray, layout: str) -> np.ndarray:
    """``x``'s values in a new array: C-ordered, Fortran-ordered, or a view taking every other column."""
    if layout == "F":
        return np.array(x, order="F")  # (np.asfortranarray would make a 0-d array 1-d)
    if layout == "strided" and x.ndim:
        wide = np.zeros((*x.shape[:-1], 2 * x.shape[-1]))
        wide[..., ::2] = x
        return wide[..., ::2]
    return x.copy()


@st.composite
def tape_programs(draw: Any) -> TapeProgram:
    # Two static values per program, so that calls both repeat and change them.
    first, second = draw(st.permutations(STATICS))[:2]
    changed, factor = draw(st.integers(0, 2 * CALLS)), draw(st.sampled_from([2.0, -1.0]))
    return TapeProgram(
        program=draw(programs()),
        read=draw(st.sampled_from(["none", *sorted(READS)])),  # none twice as often: more replays
        branch_on=draw(st.integers(0, 20)),
        detach=draw(st.booleans()),
        softmax=draw(st.booleans()),
        eager_op=draw(st.integers(0, 5)) == 0,
        # Two static values per program, so that calls both repeat and change them.
        statics=draw(st.lists(st.sampled_from([first, first, second]), min_size=CALLS, max_size=CALLS)),
        # The closure changes after at most one call (or never), so that replays follow a change.
        closure_changes=[factor if call == changed else 1.0 for call in range(CALLS)],
        # C order most often (the replays of one tape), Fortran order and strided views beside it
        layouts=draw(st.lists(st.sampled_from(["C", "C", "F", "strided"]), min_size=CALLS, max_size=CALLS)),
    )


# The ci profile runs 200 programs (default: 30, a few seconds).
@settings(max_examples=2 * settings.default.max_examples)
@given(tape_programs())
def test_random_programs_replay_what_eager_computes(program: TapeProgram) -> None:
    differences = program.check()
    assert not differences, f"{program.program}\n" + "\n".join(differences)


def _branchy(read: str) -> TapeProgram:
    # v1 = v0 * v0 on a (3,) input; the seed's values make the branch go both ways over 5 calls.
    from test_fuzz import Step

    step = Step("mul(v0, v0)", (0, 0), ab.mul)
    return TapeProgram(
        Program([(3,)], [step], seed=7), read, 0, False, False, False, [1.0] * CALLS, [1.0] * CALLS, ["C"] * CALLS
    )


@pytest.mark.parametrize("read", ["bool", "item"])
def test_the_fuzzer_catches_a_missing_guard(read: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the guards of Python reads switched off, the very check the fuzzer runs must fail."""
    assert not _branchy(read).check()
    monkeypatch.setattr(Recorder, "read", lambda self, tensor, how: None)
    assert _branchy(read).check()


def test_the_fuzzer_catches_a_stale_closure(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the version guards switched off, a closure changed after the checked replay shows."""
    changes = [1.0, 1.0, 2.0, 2.0, 2.0]  # unchanged until the replay on new values was checked
    program = _branchy("none")
    program.closure_changes = changes
    assert not program.check()
    monkeypatch.setattr(Recorder, "_guard_version", lambda self, tensor: None)
    program = _branchy("none")
    program.closure_changes = changes
    assert program.check()
