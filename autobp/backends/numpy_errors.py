"""numpy's floating-point error state, silenced cheaply: ``quiet`` calls and the ``quietly`` block.

autobp's ops give inf and nan at domain edges without warnings (``log(0)``, ``1 / 0``), as torch
and cupy do; numpy would warn. ``np.errstate(all="ignore")`` says so, but builds numpy's error
state anew on every entry (``_make_extobj`` with five keywords: about 0.6 of its 0.8 µs), and
the eager path enters it for every quiet op and every backward.

numpy keeps that state in a context variable holding an immutable object (numpy >= 2.0). Here the
all-ignore state is derived from the caller's once (``_make_extobj(all="ignore")`` starts from
the state in force, so the buffer size and the error callback are the caller's) and reused for as
long as the caller's state is the same object; a call made where the state is that derived one
already (inside a backward, or another quiet call) sets nothing. The derived states are exactly
what ``np.errstate(all="ignore")`` would make there; ``tests/test_numpy_errors.py`` holds both to
the same behaviour. Where numpy lacks these names, ``np.errstate`` is used, as before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["quiet", "quietly", "silence", "restore"]

try:  # numpy's own machinery for np.errstate (numpy/_core/_ufunc_config.py)
    from numpy._core import umath as _umath

    _extobj_contextvar: Any = _umath._extobj_contextvar
    _make_extobj: Any = _umath._make_extobj
except (ImportError, AttributeError):  # pragma: no cover  (numpy >= 2.1 has both; another layout falls back)
    _extobj_contextvar = _make_extobj = None
# What _ignoring derives with (``_make_extobj`` is also the switch to np.errstate: tests turn it off)
_derive = _make_extobj

# (the caller's state, its all-ignore derivative): one tuple, replaced whole, so that a thread
# never reads one half of another thread's pair.
_pair: tuple[Any, Any] = (None, None)


def _ignoring(current: Any) -> Any:
    """The all-ignore state derived from ``current``, the state in force now (callers look in
    ``_pair`` first)."""
    global _pair
    state = _derive(all="ignore")
    _pair = (current, state)
    return state


def _quiet_fast(function: Callable[..., Any]) -> Callable[..., Any]:
    get, set_, reset = _extobj_contextvar.get, _extobj_contextvar.set, _extobj_contextvar.reset

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        current = get()
        pair = _pair
        if current is pair[1]:  # silenced already (a backward's rules, a quiet call inside a quiet one)
            return function(*args, **kwargs)
        token = set_(pair[1] if current is pair[0] else _ignoring(current))  # (the usual: no call)
        try:
            return function(*args, **kwargs)
        finally:
            reset(token)

    return run


def _quiet_errstate(function: Callable[..., Any]) -> Callable[..., Any]:
    return np.errstate(all="ignore")(function)  # type: ignore[no-any-return]


def quiet(function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` run with numpy's floating-point warnings off (domain edges give inf and nan).

    Its ``quiet_body`` is the undecorated function: a tape's replay, quiet throughout, calls that.
    """
    run = _quiet_fast(function) if _make_extobj is not None else _quiet_errstate(function)
    run.quiet_body = function  # type: ignore[attr-defined]
    return run


def silence() -> Any:
    """Turn numpy's floating-point warnings off; returns what ``restore`` takes to turn them back."""
    if _make_extobj is None:  # (see the import above)
        block = np.errstate(all="ignore")
        block.__enter__()
        return block
    current = _extobj_contextvar.get()
    pair = _pair
    if current is pair[1]:
        return None
    return _extobj_contextvar.set(pair[1] if current is pair[0] else _ignoring(current))


def restore(token: Any) -> None:
    """Put back the state ``silence`` found (None: it had nothing to change)."""
    if token is None:
        return
    if isinstance(token, np.errstate):
        token.__exit__(None, None, None)
    else:
        _extobj_contextvar.reset(token)


class quietly:
    """A block with numpy's floating-point warnings off: ``with quietly(): ...``. One instance per
    block (it holds the state to restore)."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = silence()

    def __exit__(self, *exc: object) -> None:
        restore(self._token)
