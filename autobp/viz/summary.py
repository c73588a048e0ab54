"""How labels summarize arrays and op arguments: norms instead of values, ``1:3`` instead of slices."""

from __future__ import annotations

import math
import os
import reprlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from autobp.tensor import Tensor

__all__ = ["Stats", "argument", "format_scalar", "kwargs_text", "l2_norm", "more", "number_text", "summarize", "where"]

_short = reprlib.Repr()
_short.maxstring = 24
_short.maxother = 24
_short.maxlist = _short.maxtuple = 4


@dataclass
class Stats:
    """Summary of an array: what a label prints instead of the values."""

    shape: tuple[int, ...]
    dtype: str
    norm: float
    low: float
    high: float
    bad: str  # "" when finite, else e.g. "2 NaN, 1 Inf"
    finite: int  # how many elements norm, low and high summarize (NaN/Inf are left out)

    @property
    def empty(self) -> bool:
        """The array has no elements (a dimension of size 0): there is nothing to summarize."""
        return 0 in self.shape


def more(n: int, one: str, many: str) -> str:
    """``"1 more leaf"``, ``"2,500 more ops"``: the counts of what a picture leaves out."""
    return f"{n:,} more {one if n == 1 else many}"


def summarize(array: Any) -> Stats:
    """Shape, dtype, NaN/Inf count, and L2 norm, min and max of the finite elements of an array or Tensor."""
    data = np.asarray(array.data if isinstance(array, Tensor) else array)
    bad = ""
    if data.dtype.kind in "fc":
        nan, inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
        bad = ", ".join(f"{count} {what}" for count, what in ((nan, "NaN"), (inf, "Inf")) if count)
    if data.dtype.kind not in "biuf":
        return Stats(data.shape, str(data.dtype), 0.0, 0.0, 0.0, bad, 0)
    wide = data.astype(np.float64).ravel()
    if bad:
        wide = wide[np.isfinite(wide)]
    if wide.size == 0:
        return Stats(data.shape, str(data.dtype), 0.0, 0.0, 0.0, bad, 0)
    return Stats(data.shape, str(data.dtype), l2_norm(wide), float(wide.min()), float(wide.max()), bad, wide.size)


def l2_norm(values: np.ndarray) -> float:
    """The L2 norm of float64 ``values``, scaled by the largest magnitude first, so that squares
    neither overflow nor underflow: ``[1e200, 2e200]`` has norm 2.24e200 (the plain sum of squares
    said inf) and ``[1e-200, 2e-200]`` 2.24e-200 (it said 0). Only a norm beyond float64 is inf."""
    if values.size == 0:
        return 0.0
    largest = float(np.max(np.abs(values)))
    with np.errstate(over="ignore", invalid="ignore"):
        if largest == 0.0 or not math.isfinite(largest):  # zeros, or NaN/Inf: nothing to scale by
            return float(np.sqrt(np.sum(values * values)))
        return largest * float(np.sqrt(np.sum(np.square(values / largest))))


def number_text(value: float) -> str:
    """A number to four significant digits, but a number that is not whole is never shown as one.

    A sigmoid's output 0.9999546 (or an error ``a - y`` of -0.9999546) rounds to ``1`` at four
    digits, and a learner multiplying the shown ``grad * out * (1 - out)`` gets 0 beside the
    4.539e-05 the rule sent. Such a number gets the digits that show its distance from the whole
    number to four significant digits: ``0.9999546`` (``1 - out`` is then 4.54e-05).

    >>> number_text(0.25), number_text(0.9999546), number_text(-0.99999), number_text(1.0), number_text(3e-7)
    ('0.25', '0.9999546', '-0.99999', '1', '3e-07')
    """
    text = f"{value:.4g}"
    shown = float(text)
    if shown == value or not math.isfinite(value) or shown != math.floor(shown) or abs(shown) >= 1e4:
        return text
    # floor(log10(|shown| / distance)) more digits bring the distance to four significant digits.
    extra = math.floor(math.log10(max(abs(shown), 1.0) / abs(value - shown)))
    return f"{value:.{min(17, 4 + max(extra, 0))}g}"


def format_scalar(data: Any) -> str:
    value = np.asarray(data).reshape(()).item()
    return number_text(value) if isinstance(value, float) else str(value)  # 0.99996 is no "1"


def argument(value: Any) -> str:
    """A keyword argument as a label shows it: ``1:3`` for slices, ``int64[5]`` for large arrays."""
    if isinstance(value, slice):
        text = ":".join("" if part is None else str(part) for part in (value.start, value.stop))
        return text if value.step is None else f"{text}:{value.step}"
    if value is Ellipsis:
        return "..."
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, np.ndarray):
        return _short.repr(value.tolist()) if value.size <= 4 else f"{value.dtype}{list(value.shape)}"
    if isinstance(value, tuple) and len(value) <= 6:
        return "(" + ", ".join(argument(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    return _short.repr(value)


def where(node: Tensor) -> str | None:
    # ab.detect_anomaly() keeps the user's stack of each forward in node._trace; the innermost frame is the line.
    trace: Any = node._trace
    try:
        frame = trace[-1]
        return f"{os.path.basename(frame.filename)}:{frame.lineno}"
    except (TypeError, IndexError, AttributeError):
        return None


def kwargs_text(node: Tensor) -> str:
    # A keyword Tensor (an index) is kept as the Tensor, not copied: written in place after the op,
    # it shows its new values, which the op did not use (``index=[[2, 1]]`` where it read [0, 1]).
    rare = node._rare
    changed = {
        id(tensor): (saved, tensor._version)
        for tensor, saved in (rare._kwarg_versions if rare is not None else None) or ()
        if tensor._version != saved
    }
    parts = []
    for key, value in node.kwargs.items():
        if value is None or value is False:
            continue
        text = argument(value)
        if key == "index":  # x[1:3, None] reads better as [1:3, None] than as a tuple of slices
            text = "[" + (text[1:-1].rstrip(",") if isinstance(value, tuple) else text) + "]"
        for part in value if isinstance(value, tuple) else (value,):
            if id(part) in changed:
                then, now = changed[id(part)]
                text += f" (changed since {node.op.name} read it: version {then} -> {now})"
                break
        parts.append(f"{key}={text}")
    return "  ".join(parts)
