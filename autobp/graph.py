"""The dynamic graph: grad mode, and the ``Node`` each recorded op leaves behind.

Every op applied to a Tensor that requires grad records a ``Node``: the op, its inputs, its
keyword arguments and its output array. ``autobp.engine`` walks these nodes backwards.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autobp.ops.registry import OpDef

__all__ = [
    "Node",
    "record",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "TapeError",
    "mark_untapeable",
]


class _GradMode(threading.local):
    enabled = True
    arrays = False  # set by the engine while first-order vjp rules run on plain arrays
    tape: Any = None  # the recorder of autobp.tape while a taped function is traced
    forward: Any = None  # the active forward-mode levels of autobp.forward (a tuple), or None


_mode = _GradMode()


def is_grad_enabled() -> bool:
    """Whether ops record the graph now."""
    return _mode.enabled


class TapeError(RuntimeError):
    """A taped function did what its tape cannot replay faithfully (see ``autobp.tape``)."""


def refuse_while_tracing(what: str) -> None:
    """Raise ``TapeError`` if a taped function is being traced: ``what`` cannot go on a tape."""
    if _mode.tape is not None:
        raise TapeError(f"tape: {what} inside a taped function cannot be replayed; use autobp.functional instead")


def mark_untapeable(why: str) -> None:
    """Tell a tape being traced (``autobp.tape``) that the function must run eagerly.

    Called by vjp rules that read values to decide what to compute (``max``, ``prod``): a tape
    would replay the decision made for the traced values. Does nothing when no tape is tracing.
    """
    if _mode.tape is not None:
        _mode.tape.untapeable = why


class set_grad_enabled(contextlib.ContextDecorator):
    """Turn graph recording on or off inside a ``with`` block or a decorated function."""

    def __init__(self, mode: bool) -> None:
        self.mode = mode
        self.previous: list[bool] = []

    def __enter__(self) -> None:
        self.previous.append(_mode.enabled)
        _mode.enabled = self.mode

    def __exit__(self, *exc: object) -> None:
        _mode.enabled = self.previous.pop()


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


class Node:
    """One recorded op application: the ``grad_fn`` of the Tensor it produced.

    ``inputs`` are the op's inputs as Tensors; ``out`` is the output array. Constants (a Python
    float, an array) are kept as they came and become Tensors only when asked for, so a long
    chain of ``y * 2.0`` costs no Tensor per constant. ``release`` drops inputs and output
    once backward has used them.
    """

    __slots__ = ("op", "_inputs", "kwargs", "out", "versions", "hooks", "retained", "trace", "__weakref__")

    def __init__(self, opdef: OpDef, inputs: tuple[Any, ...], kwargs: Mapping[str, Any], out: Any) -> None:
        self.op = opdef
        self._inputs: tuple[Any, ...] | None = inputs
        self.kwargs = kwargs
        self.out = out
        # The inputs' versions, to catch in-place changes before backward; None when all are 0,
        # the common case, which then costs no tuple.
        self.versions: tuple[int, ...] | None = None
        for value in inputs:
            if isinstance(value, Tensor) and value._version:
                self.versions = tuple([v._version if isinstance(v, Tensor) else 0 for v in inputs])
                break
        self.hooks: list[Callable[[Tensor], Tensor | None]] | None = None
        self.retained: Any = None  # weakref to a non-leaf Tensor whose .grad is kept (retain_grad)
        self.trace: Any = None  # the forward's user stack, recorded in anomaly mode

    @property
    def inputs(self) -> tuple[Tensor, ...] | None:
        """The op's inputs as Tensors (constants wrapped); None once the graph was freed."""
        inputs = self._inputs
        if inputs is not None:
            for value in inputs:
                if not isinstance(value, Tensor):
                    inputs = tuple([v if isinstance(v, Tensor) else Tensor._wrap(v) for v in inputs])
                    self._inputs = inputs
                    break
        return inputs

    @property
    def name(self) -> str:
        """The registry name of the op, e.g. ``"mul"``."""
        return self.op.name

    def __repr__(self) -> str:
        return f"<{self.op.name} backward>"

    @property
    def next_functions(self) -> tuple[Node | Tensor, ...]:
        """The graph vertices feeding this node: the inputs' nodes, or the leaf Tensors."""
        return tuple(t.grad_fn or t for t in self.inputs or () if t.requires_grad)

    def release(self) -> None:
        self._inputs = None
        self.out = None
        self.kwargs = NO_KWARGS


# Shared by every node recorded without keywords: one empty mapping instead of one per node.
NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


def record(opdef: OpDef, result: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Tensor:
    """Wrap an op's result in a Tensor whose ``grad_fn`` remembers how it was made."""
    for value in args:
        if (value.data if isinstance(value, Tensor) else value) is result:
            # An op returned its input: freeze a view, never the input itself.
            result = result.view()
    out = Tensor._wrap(result, True)
    # The node saves the Tensor's own array (numpy scalars become 0-d arrays in _wrap): one object
    # for the output wherever it is used, which a tape recognises by identity (autobp.tape).
    node = out.grad_fn = Node(opdef, args, kwargs or NO_KWARGS, out.data)
    if _anomaly_hook is not None:
        _anomaly_hook(node)
    # The output may be saved for backward: writes through `.data` must raise (docs/trust.md).
    out.data.setflags(write=False)  # (setflags: half the cost of `flags.writeable = False`)
    return out


# Set by autobp.anomaly while detect_anomaly() is active; None keeps recording free of its cost.
_anomaly_hook: Callable[[Node], None] | None = None


from autobp.tensor import Tensor  # noqa: E402  (tensor.py imports this module first)
