"""Anomaly mode: name the op, and the user's line that created it, when backward goes wrong.

Inside ``with ab.detect_anomaly():`` every recorded op keeps the user-code stack of its forward
(``node._trace``, autobp's own frames trimmed). Then:

- an error raised while computing an op's vjp (or a saved tensor found modified in place) is
  re-raised as ``AnomalyError`` naming the op and showing where its forward was called;
- with ``check_nan=True`` (the default) a NaN or infinity produced by an op, in its forward
  output or in a gradient its backward computes, raises ``AnomalyError`` the same way.

Outside the mode the engine's hook is ``None``: nothing is recorded and nothing is checked.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from typing import Any

from autobp import graph
from autobp.backends import describe, namespace
from autobp.tensor import Tensor

__all__ = [
    "AnomalyError",
    "detect_anomaly",
    "set_detect_anomaly",
    "is_anomaly_enabled",
    "is_anomaly_check_nan_enabled",
]

# Frames from files inside the package are the machinery, not the user's code.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
# How many of the innermost user frames an error message shows (node._trace keeps more).
SHOWN_FRAMES = 8
_KEPT_FRAMES = 64


class AnomalyError(RuntimeError):
    """Raised in anomaly mode: names the op at fault and shows where its forward was called."""


class _State:
    check_nan = True


_state = _State()


def _user_stack() -> traceback.StackSummary:
    """The caller's stack, outermost first, without the innermost autobp frames."""
    frames = []
    skipping = True
    for frame, lineno in traceback.walk_stack(None):
        if skipping and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
            continue
        skipping = False
        frames.append((frame, lineno))
        if len(frames) == _KEPT_FRAMES:
            break
    stack = traceback.StackSummary.extract(iter(frames), lookup_lines=False)
    stack.reverse()
    return stack


def _record(node: Tensor) -> None:
    node._trace = _user_stack()
    if _state.check_nan:
        values = node.out
        if not _finite(values):
            inputs_finite = all(_finite(t.data) for t in graph.node_inputs(node) or ())
            hint = "" if inputs_finite else " (its inputs already held non-finite values)"
            raise AnomalyError(
                f"anomaly: op '{node.op.name}' produced {_count(values)} in its forward output "
                f"{describe(values)}{hint}.\n{_where(node)}"
            )


def _finite(values: Any) -> bool:
    """Whether an array holds no NaN or infinity (True for integer and boolean arrays), computed
    with the array's own library: one boolean comes back, not the array."""
    xp = namespace(values)
    if not xp.isdtype(values.dtype, ("real floating", "complex floating")):
        return True
    return bool(xp.all(xp.isfinite(values)))


def _count(values: Any) -> str:
    xp = namespace(values)
    nan = int(xp.sum(xp.astype(xp.isnan(values), xp.int64)))
    inf = int(xp.sum(xp.astype(xp.isinf(values), xp.int64)))
    parts = [f"{nan} nan" if nan else "", f"{inf} inf" if inf else ""]
    size = 1
    for n in values.shape:
        size *= n
    return " and ".join(p for p in parts if p) + f" of {size} values"


def _where(node: Tensor) -> str:
    """The forward's user stack as text, innermost frames last (like a traceback)."""
    if node._trace is None:
        return f"The forward of '{node.op.name}' ran outside anomaly mode, so its stack was not recorded."
    shown = traceback.StackSummary.from_list(list(node._trace)[-SHOWN_FRAMES:])
    return f"The forward of '{node.op.name}' was called at (most recent call last):\n" + "".join(shown.format())


def explain(node: Tensor, error: BaseException) -> AnomalyError:
    """The error to raise for ``error`` in the backward of ``node`` (called by the engine)."""
    return AnomalyError(
        f"anomaly: backward of op '{node.op.name}' failed: {type(error).__name__}: {error}\n{_where(node)}"
    )


def check_backward(node: Tensor, input_grad: Any) -> None:
    """Raise if a gradient computed by ``node``'s backward holds NaN or infinity (engine hook)."""
    if not _state.check_nan:
        return
    values = input_grad.data
    if not _finite(values):
        raise AnomalyError(
            f"anomaly: backward of op '{node.op.name}' produced {_count(values)} in a gradient of shape "
            f"{tuple(values.shape)}.\n{_where(node)}"
        )


def is_anomaly_enabled() -> bool:
    """Whether anomaly mode is on."""
    return graph._anomaly_hook is not None


def is_anomaly_check_nan_enabled() -> bool:
    """Whether anomaly mode is on and checks for NaN and infinity."""
    return is_anomaly_enabled() and _state.check_nan


def _set(mode: bool, check_nan: bool) -> tuple[Any, bool]:
    previous = (graph._anomaly_hook, _state.check_nan)
    graph._anomaly_hook = _record if mode else None
    _state.check_nan = check_nan
    return previous


class detect_anomaly(contextlib.ContextDecorator):
    """Context manager and decorator: record each op's forward stack and report bad backward passes.

    Args:
        check_nan: also raise when an op's forward output or a computed gradient holds NaN/inf.

    Slow (a stack walk per op): for debugging, not training.

    >>> import autobp as ab
    >>> x = ab.tensor([0.0, 1.0], requires_grad=True)
    >>> with ab.detect_anomaly():
    ...     y = ab.sqrt(x).sum()
    ...     y.backward()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    autobp.anomaly.AnomalyError: anomaly: backward of op 'sqrt' produced 1 inf of 2 values ...
    """

    def __init__(self, check_nan: bool = True) -> None:
        self.check_nan = check_nan
        self.previous: list[tuple[Any, bool]] = []

    def __enter__(self) -> None:
        self.previous.append(_set(True, self.check_nan))

    def __exit__(self, *exc: object) -> None:
        graph._anomaly_hook, _state.check_nan = self.previous.pop()


class set_detect_anomaly:
    """Turn anomaly mode on or off now; as a context manager, restore the previous mode on exit."""

    def __init__(self, mode: bool, check_nan: bool = True) -> None:
        self.previous = _set(mode, check_nan)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        graph._anomaly_hook, _state.check_nan = self.previous
