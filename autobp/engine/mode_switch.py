"""The modes a reverse walk sets for its duration: grad mode, array mode for the fast path, and
whether numpy's floating-point warnings are silenced already."""

from __future__ import annotations

from autobp import graph
from autobp.backends.numpy_errors import restore, silence

__all__ = ["modes"]


class modes:
    """While active, grad mode is ``enabled`` (None: as it was) and array mode ``arrays``.

    Array mode on (the first-order walk): autobp ops given no Tensor return plain arrays and record
    nothing, so rules on the fast path compute on arrays; ops given a Tensor act as usual. Sets and
    restores the thread's modes itself: ``set_grad_enabled`` keeps per-thread stacks for managers
    that user code shares, and every backward would pay for two (W1's fixed cost per step).

    ``quiet`` (None: as it was) tells forward mode that the code inside runs with numpy's
    warnings off already, as the walk's rules do, so that its jvp rules need not
    set it again per op (``autobp.forward``). User code inside (hooks) is run with it off.
    ``silenced`` turns numpy's warnings off for the block (``backends.numpy_errors``), as the
    walk's rules need: here rather than in a block of its own, which would cost its own frames.
    """

    def __init__(self, enabled: bool | None, arrays: bool, quiet: bool | None = None, silenced: bool = False) -> None:
        self.enabled, self.arrays, self.quiet, self.silenced = enabled, arrays, quiet, silenced

    def __enter__(self) -> None:
        mode = graph._local.modes
        self.previous = mode.enabled, mode.arrays
        if self.enabled is not None:
            mode.enabled = self.enabled
        mode.arrays = self.arrays
        if self.quiet is not None:  # (only when asked: a first-order walk, W1's, never touches it)
            self.previous_quiet = mode.quiet
            mode.quiet = self.quiet
        if self.silenced:
            self.token = silence()

    def __exit__(self, *exc: object) -> None:
        mode = graph._local.modes
        mode.enabled, mode.arrays = self.previous
        if self.quiet is not None:
            mode.quiet = self.previous_quiet
        if self.silenced:
            restore(self.token)
