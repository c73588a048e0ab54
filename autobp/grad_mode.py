"""Grad mode: whether ops record the graph, per thread, as a context manager or a decorator.

The per-thread state (``_local.modes``) also carries what the engine, a tracing tape and forward mode
need every op to see: whether first-order rules run on plain arrays, the tape's recorder, the
forward-mode levels.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = ["no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled"]

Decorated = TypeVar("Decorated", bound=Callable[..., Any])


class Modes:
    """One thread's modes. Read through ``_local.modes``: a ``threading.local`` finds the calling
    thread's attributes on every read (about 25 ns each, measured), a slot in a few, so the hot
    paths (every op call, every recorded node) fetch this object once and read its slots."""

    __slots__ = ("enabled", "arrays", "tape", "forward", "quiet", "transforms", "copying")

    def __init__(self) -> None:
        self.enabled = True
        # Set by the engine's first-order walk (and forward mode's plain levels) while rules run on
        # plain arrays: an autobp op given no Tensor then returns a plain array (one given a Tensor
        # acts as anywhere). Off, ops always return Tensors, as users' calls on numpy arrays expect.
        self.arrays = False
        self.tape: Any = None  # the recorder of autobp.tape while a taped function is traced
        self.forward: Any = None  # the active forward-mode levels of autobp.forward (a tuple), or None
        # Set while the engine's walk runs its rules with numpy's warnings off (engine.mode_switch):
        # forward mode's rules on arrays then skip setting it once per op.
        self.quiet = False
        # How many functions a transform (autobp.functional's vjp, jacobian, value_and_grad...)
        # is differentiating in this thread now: inside one, transforms and grads keep their graph.
        self.transforms = 0
        # The Tensor being made from a list or tuple (Tensor.__init__), or None: numpy reads the
        # Tensors inside through __array__, which then refuses one whose gradient or tangent the
        # constant would drop (autobp.tensor.refuse_dropping).
        self.copying: Any = None


class _PerThread(threading.local):
    def __init__(self) -> None:  # (runs once in each thread that reads it: a thread starts with fresh modes)
        self.modes = Modes()


_local = _PerThread()


def is_grad_enabled() -> bool:
    """Whether ops record the graph now."""
    return _local.modes.enabled


class set_grad_enabled:
    """Turn graph recording on or off inside a ``with`` block or a decorated function.

    Grad mode is per thread. Each decorated call enters a fresh manager, and a manager shared by
    ``with`` blocks keeps one stack of previous modes per thread, so recursion, re-entry and
    threads that call the same decorated function (``Optimizer.step``) each get their own mode
    back on exit.

    >>> import autobp as ab
    >>> @ab.set_grad_enabled(False)
    ... def frozen(x):
    ...     return x * 2
    >>> frozen(ab.tensor([1.0], requires_grad=True)).requires_grad
    False
    """

    def __init__(self, mode: bool) -> None:
        self.mode = mode
        # keyed by thread id: threads sharing one manager must not pop each other's saved mode
        self.previous: dict[int, list[bool]] = {}

    def __enter__(self) -> None:
        modes = _local.modes
        self.previous.setdefault(threading.get_ident(), []).append(modes.enabled)
        modes.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        thread = threading.get_ident()
        stack = self.previous[thread]
        _local.modes.enabled = stack.pop()
        if not stack:
            del self.previous[thread]

    def __call__(self, function: Decorated) -> Decorated:
        """Decorate ``function``: every call runs inside a manager of its own.

        A generator function runs each of its steps in the mode (the caller's mode between steps).
        """
        mode = self.mode
        if inspect.isgeneratorfunction(function):

            @functools.wraps(function)
            def generator_with_grad_mode(*args: Any, **kwargs: Any) -> Any:
                steps = function(*args, **kwargs)
                sent = None
                while True:
                    with set_grad_enabled(mode):
                        try:
                            value = steps.send(sent)
                        except StopIteration as stop:
                            return stop.value
                    sent = yield value

            return cast(Decorated, generator_with_grad_mode)

        @functools.wraps(function)
        def with_grad_mode(*args: Any, **kwargs: Any) -> Any:
            with set_grad_enabled(mode):
                return function(*args, **kwargs)

        return cast(Decorated, with_grad_mode)


class no_grad(set_grad_enabled):
    """Context manager and decorator: ops inside record no graph (inference, optimizer steps).

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0], requires_grad=True)
    >>> with ab.no_grad():
    ...     y = x * 2
    >>> y.requires_grad
    False
    """

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(set_grad_enabled):
    """Context manager and decorator: record the graph again inside a ``no_grad`` region."""

    def __init__(self) -> None:
        super().__init__(True)
