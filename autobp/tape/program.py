"""What a replay keeps alive: each local array is dropped after its last read, and a dead
temporary may take the result of the arithmetic that reads it last.

A replay otherwise holds every intermediate until it returns; hand-written numpy drops its
temporaries as it goes, and the memory numpy frees is what its next array reuses. Dropped
early, the replay needs a fraction of the memory and does not touch fresh pages on every call
(W5 on a loaded machine: a page fault each).

Writing a result into a dead operand (``np.add(s4, s7, out=s4)``) saves the allocation as
well. It is an alias, so it is taken only where nothing else can see the operand's memory:
the operand is a fresh array the replay made itself (a ufunc's result, or an expression of
``numpy_forms``), no step that might keep a view of it has read it (every other forward
might), it is not returned, and no later line reads it. The op must be IEEE arithmetic, whose
every element is rounded alike wherever it is written, on operands of the result's dtype, so
the numbers are the same bit for bit (``tests/test_tape_program.py`` tries to break this).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Liveness", "INTO"]

# The replay's local names of arrays: slots (``s7``) and shared factors (``ds7``, ``dc3``).
_LOCAL = re.compile(r"\b(?:s|ds|dc)\d+\b")
# A keyword's name in a call (``f3(s5, s9=k3_0)``: an op's parameter may look like a slot).
_KEYWORD = re.compile(r"\b\w+=(?!=)")

# Ufuncs that may write into an operand: each element correctly rounded, on any loop.
# (Transcendentals are left out: a vectorized loop and a scalar one may differ in the last bit.)
_ARITHMETIC = frozenset([np.add, np.subtract, np.multiply, np.true_divide])

# The mark of a line whose result may go into an operand (``finished`` fills it or drops it).
INTO = "{into}"


class Liveness:
    """Built while a tape's steps are written: the arrays the replay owns, the names something
    may hold a view of, and the operands each marked line may write into."""

    def __init__(self, aliases: bool = True) -> None:
        self.aliases = aliases  # False: no operand takes a result (``compile``'s plain program)
        self.owned: set[str] = set()  # fresh arrays of the replay's own making
        self.viewed: set[str] = set()  # names a forward read that might return or keep a view
        self.donors: list[tuple[str, ...]] = []  # per marked line, in order: its candidates

    def made(self, name: str, value: Any) -> None:
        """``name`` holds a new array (a ufunc's result, a ``numpy_forms`` expression)."""
        if type(value) is np.ndarray and value.ndim and value.base is None:
            self.owned.add(name)

    def call(
        self,
        forward: Any,
        operands: Sequence[str],
        values: Sequence[Any],
        kwargs: Mapping[str, Any],
        out: str,
        value: Any,
    ) -> str:
        """A step that calls ``forward``: the text to put at the end of its arguments (a mark
        where an operand may take the result, else nothing)."""
        if not isinstance(forward, np.ufunc):
            self.viewed.update(operands)  # a Python forward may return an operand or a view of it
            return ""
        self.made(out, value)
        return self.into(operands, values, value) if forward in _ARITHMETIC and not kwargs else ""

    def into(self, operands: Sequence[str], values: Sequence[Any], value: Any) -> str:
        """For IEEE arithmetic on ``operands`` (traced ``values``) that gives ``value``: the mark
        where one of them may take the result, else nothing."""
        if not self.aliases or type(value) is not np.ndarray or not value.ndim:
            return ""
        if value.dtype.kind != "f":  # (complex products differ by loop: fused multiply-adds or not)
            return ""
        if not all([_weak_or(value.dtype, v) for v in values]):
            return ""
        donors = tuple(
            [
                name
                for name, v in zip(operands, values, strict=True)
                # the same strides too: the result keeps the operand's layout, which later sums follow
                if name in self.owned
                and name not in self.viewed
                and v.shape == value.shape
                and v.strides == value.strides
            ]
        )
        if not donors:
            return ""
        self.donors.append(donors)
        return INTO

    def finished(self, body: list[str], ending: str) -> list[str]:
        """``body`` with each marked line's result written into a dead donor where one is, and
        a ``del`` after the last line that reads each local array (``ending`` returns some)."""
        codes = [line.split("  #", 1)[0] for line in body]  # (a comment holds an op's name: the user's)
        reads = [set(_LOCAL.findall(_KEYWORD.sub("", code))) for code in codes]
        returned = set(_LOCAL.findall(ending))
        last: dict[str, int] = {}
        for i, names in enumerate(reads):
            for local in names:
                last[local] = i
        donors = iter(self.donors)
        lines: list[str] = []
        for i, line in enumerate(body):
            if INTO in codes[i]:
                dead = [d for d in next(donors) if last[d] == i and d not in returned]
                line = line.replace(INTO, f", out={dead[0]}" if dead else "")
            lines.append(line)
            done = sorted([local for local in reads[i] if last[local] == i and local not in returned])
            if done:
                lines.append(f"del {', '.join(done)}")
        return lines


def _weak_or(dtype: np.dtype[Any], operand: Any) -> bool:
    """An array of ``dtype``, or a Python number (weak: it leaves the dtype to the array)."""
    return type(operand) is int or type(operand) is float or (type(operand) is np.ndarray and operand.dtype == dtype)
