"""What a tape being traced (``autobp.tape``) is told by code outside the ops.

A tape records op calls; these calls tell it the rest: values read into Python, a detached view,
a value check to repeat on every replay, a vjp rule that decides by values (the function must run
eagerly), or something that cannot go on a tape at all. Each does nothing when no tape is tracing.
``autobp.graph`` re-exports them under the names the docs and the modules use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autobp.grad_mode import _local
from autobp.tensor import Tensor

__all__ = ["TapeError", "refuse_while_tracing", "mark_untapeable", "note_read", "note_detach", "check_values"]


class TapeError(RuntimeError):
    """A taped function did what its tape cannot replay faithfully (see ``autobp.tape``)."""


def refuse_while_tracing(what: str) -> None:
    """Raise ``TapeError`` if a taped function is being traced: ``what`` cannot go on a tape."""
    if _local.modes.tape is not None:
        raise TapeError(f"tape: {what} inside a taped function cannot be replayed; use autobp.functional instead")


def mark_untapeable(why: str) -> None:
    """Tell a tape being traced (``autobp.tape``) that the function must run eagerly.

    Called by vjp rules that read values to decide what to compute (``max``, ``prod``): a tape
    would replay the decision made for the traced values. Does nothing when no tape is tracing.
    """
    tape = _local.modes.tape
    if tape is not None and tape.untapeable is None:  # the first reason is the one shown
        tape.untapeable = why


def note_read(tensor: Tensor, how: str) -> None:
    """Tell a tape being traced that ``tensor``'s values go into Python (``bool()``, ``.item()``...).

    A tape guards what such a read decides, or runs the function eagerly (``autobp.tape``).
    Called by the Tensor methods that hand values to Python; does nothing when no tape is tracing.
    """
    tape = _local.modes.tape
    if tape is not None:
        tape.read(tensor, how)


def note_detach(tensor: Tensor, view: Any) -> None:
    """Tell a tape being traced that ``view`` (made by ``detach()``) holds ``tensor``'s values."""
    tape = _local.modes.tape
    if tape is not None:
        tape.alias(tensor, view)


def check_values(label: str, check: Callable[..., None], *values: Any, **kwargs: Any) -> None:
    """Run ``check`` on the arrays of ``values`` (it raises on bad values, e.g. a class index out
    of range); a tape being traced records it as a step, so that every replay runs it too.

    For checks that composite functions make in Python (``cross_entropy``'s targets); an op's
    forward that validates values needs nothing: a replay runs every step the call ran.

    >>> import numpy as np
    >>> def positive(values):
    ...     if (values <= 0).any():
    ...         raise ValueError("demo: values must be positive")
    >>> check_values("demo", positive, np.array([-1.0]))
    Traceback (most recent call last):
    ValueError: demo: values must be positive
    """
    try:
        check(*[value.data if isinstance(value, Tensor) else value for value in values], **kwargs)
    except Exception:
        # (a taped function that catches it would go another way where the check passes)
        mark_untapeable(f"the value check of '{label}' raised while tracing and func went on")
        raise
    tape = _local.modes.tape
    if tape is not None:
        tape.check(label, check, values, kwargs)
