"""The modes a reverse walk sets for its duration: grad mode, and array mode for the fast path."""

from __future__ import annotations

from autobp import graph

__all__ = ["modes"]


class modes:
    """While active, grad mode is ``enabled`` (None: as it was) and array mode ``arrays``.

    Array mode on (the first-order walk): autobp ops given no Tensor return plain arrays and record
    nothing, so rules on the fast path compute on arrays; ops given a Tensor act as usual. Sets and
    restores the thread's modes itself: ``set_grad_enabled`` keeps per-thread stacks for managers
    that user code shares, and every backward would pay for two (W1's fixed cost per step).
    """

    def __init__(self, enabled: bool | None, arrays: bool) -> None:
        self.enabled, self.arrays = enabled, arrays

    def __enter__(self) -> None:
        mode = graph._mode
        self.previous = mode.enabled, mode.arrays
        if self.enabled is not None:
            mode.enabled = self.enabled
        mode.arrays = self.arrays

    def __exit__(self, *exc: object) -> None:
        graph._mode.enabled, graph._mode.arrays = self.previous
