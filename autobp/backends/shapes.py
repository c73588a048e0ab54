"""Shape arithmetic (no arrays) that the ops' general forwards and the backends' fast ones share."""

from __future__ import annotations

import functools

__all__ = ["summed_axes"]


@functools.lru_cache(maxsize=1024)
def summed_axes(have: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes ``sum_to`` sums over to bring ``have`` down to ``shape`` (cached: a backward asks
    for the same few shapes every step).

    >>> summed_axes((4, 2, 3), (2, 1))
    (0, 2)
    """
    lead = len(have) - len(shape)
    if lead < 0 or any(n not in (1, m) for n, m in zip(shape, have[lead:], strict=True)):
        raise ValueError(f"sum_to: cannot sum shape {have} down to {shape}")
    return tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and have[lead + i] != 1)
