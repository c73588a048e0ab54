"""Padding from the array API standard alone, for libraries without a ``pad`` of their own.

Each axis is padded in turn: ``take`` copies elements (``pad_sources`` says which, as numpy's
``pad`` would) and ``concat`` joins constants. ``ab.pad`` (``ops/shape/padding.py``) takes this route
where the library has no ``pad`` (PyTorch, array-api-strict); numpy and CuPy pad with theirs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.backends import Namespace

__all__ = ["pad_sources", "pad_by_copies"]


def pad_sources(size: int, before: int, after: int, mode: str) -> list[int]:
    """Which element of an axis of ``size`` each position of the padded axis copies (not "constant").

    >>> pad_sources(3, 2, 2, "reflect"), pad_sources(3, 2, 2, "symmetric"), pad_sources(3, 2, 2, "wrap")
    ([2, 1, 0, 1, 2, 1, 0], [1, 0, 0, 1, 2, 2, 1], [1, 2, 0, 1, 2, 0, 1])
    """
    if size == 0:
        raise ValueError(f"pad: cannot extend an empty axis with mode {mode!r}; only 'constant' pads one")
    last = size - 1
    if mode == "edge":
        return [min(max(i, 0), last) for i in range(-before, size + after)]
    if mode == "wrap":
        return [i % size for i in range(-before, size + after)]
    if mode == "reflect":  # mirrored about the end elements: a period of 2 (size - 1)
        period = max(2 * last, 1)
        return [min(i % period, period - i % period) for i in range(-before, size + after)]
    period = 2 * size  # symmetric: mirrored with the end elements repeated
    return [min(i % period, period - 1 - i % period) for i in range(-before, size + after)]


def pad_by_copies(xp: Namespace, x: Any, widths: list[tuple[int, int]], mode: str, constant_values: Any = 0) -> Any:
    """``pad``'s route from the standard alone, one axis at a time: ``take`` copies elements
    (``pad_sources`` says which), ``concat`` joins constants. Shapes: as ``pad``."""
    if isinstance(constant_values, np.number | np.bool_):  # (a numpy scalar: the number it holds, as np.float64 was)
        constant_values = constant_values.item()
    if mode == "constant" and not isinstance(constant_values, int | float):
        raise TypeError(
            f"pad: constant_values must be one number for {xp.name} arrays, got {constant_values!r}; "
            "pad once per value, or pad with zeros and add"
        )
    device = xp.device(x)
    if not any(before or after for before, after in widths):
        return xp.asarray(x, copy=True)  # a copy, as numpy's pad gives
    for axis, (before, after) in enumerate(widths):
        if not (before or after):
            continue
        if mode == "constant":
            fills = [
                xp.full(_resized(x.shape, axis, w), constant_values, dtype=x.dtype, device=device)
                for w in (before, after)
            ]
            x = xp.concat([fills[0], x, fills[1]], axis=axis)
        else:
            sources = xp.asarray(pad_sources(x.shape[axis], before, after, mode), dtype=xp.int64, device=device)
            x = xp.take(x, sources, axis=axis)
    return x


def _resized(shape: Any, axis: int, size: int) -> tuple[int, ...]:
    return tuple(size if a == axis else n for a, n in enumerate(shape))
