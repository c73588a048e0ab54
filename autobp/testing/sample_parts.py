"""The parts every sample kind is built from: ``Sample``, the kinds' registry, and drawing one
input array inside an op's domain (``Hints``), away from its non-differentiable points.

``autobp.testing.samples`` holds the general kinds and ``samples_nn`` the convolution and pooling
ones; both register here, so neither imports the other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from hypothesis import strategies as st

from autobp.ops.registry import Hints, OpDef
from autobp.testing.strategies import arrays

__all__ = ["SAMPLE_KINDS", "Sample", "draw_array", "draw_kwargs", "sample_kind"]


@dataclass
class Sample:
    """Inputs for one op call: ``arrays`` go in the tensor positions, then ``kwargs``."""

    arrays: list[np.ndarray]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.arrays)
        return f"Sample([{shown}], {self.kwargs})"


SampleKind = Callable[[OpDef], Any]
SAMPLE_KINDS: dict[str, SampleKind] = {}


def sample_kind(name: str) -> Callable[[SampleKind], SampleKind]:
    """Register a sample kind under ``name`` (the value ops give as ``Hints(shapes=name)``)."""

    def register(function: SampleKind) -> SampleKind:
        SAMPLE_KINDS[name] = function
        return function

    return register


# -- building blocks ----------------------------------------------------------------------------------
def domain_of(hints: Hints, index: int) -> tuple[float, float]:
    """The ``(low, high)`` value range of input ``index``."""
    domain = hints.domain
    if isinstance(domain[0], tuple):
        return domain[index]  # type: ignore[return-value]
    return domain  # type: ignore[return-value]


def keep_away(values: np.ndarray, points: tuple[float, ...], gap: float) -> np.ndarray:
    """Move values that lie within ``gap`` of a non-differentiable point to ``point +- 2 gap``."""
    values = values.copy()
    for point in points:
        near = np.abs(values - point) < gap
        values[near] = point + np.where(values[near] >= point, 2 * gap, -2 * gap)
    return values


def spread_apart(
    values: np.ndarray, low: float, high: float, avoid: tuple[float, ...] = (), gap: float = 0.0
) -> np.ndarray:
    """Same order as ``values``, but evenly spaced over ``[low, high]`` less ``2 gap`` around each
    point of ``avoid``: no ties, no near-ties, and nothing within ``gap`` of an avoided point
    (spacing over the whole range put samples exactly on one: 0 among three in ``[-2, 2]``)."""
    # The allowed intervals, in order: [low, high] with (p - 2 gap, p + 2 gap) cut out.
    pieces = [(low, high)]
    for point in sorted(avoid):
        cut = []
        for a, b in pieces:
            if point + 2 * gap <= a or point - 2 * gap >= b:
                cut.append((a, b))
                continue
            cut += [(a, point - 2 * gap)] if a < point - 2 * gap else []
            cut += [(point + 2 * gap, b)] if point + 2 * gap < b else []
        pieces = cut
    lengths = np.array([b - a for a, b in pieces])
    if not pieces or lengths.sum() <= 0:
        raise ValueError(f"spread_apart: nothing of [{low}, {high}] is more than {2 * gap} from {avoid}")
    flat = values.ravel()
    ranks = np.empty(flat.size)
    ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    # Evenly spaced over the allowed length, then mapped back onto the intervals.
    along = (ranks + 0.5) * lengths.sum() / max(flat.size, 1)
    starts = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    which = np.clip(np.searchsorted(starts, along, side="right") - 1, 0, len(pieces) - 1)
    lows = np.array([a for a, _ in pieces])
    return (lows[which] + along - starts[which]).reshape(values.shape)


def draw_array(draw: Any, hints: Hints, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """One input array, inside the op's domain and away from its non-differentiable points."""
    low, high = domain_of(hints, index)
    values = draw(arrays(shape, np.float64, (low, high)))
    if hints.distinct:
        return spread_apart(values, low, high, hints.avoid, hints.gap)  # (keeping away too)
    if hints.avoid:
        values = keep_away(values, hints.avoid, hints.gap)
    return values


def draw_kwargs(draw: Any, hints: Hints) -> dict[str, Any]:
    """One choice for each keyword listed in the hints."""
    return {name: draw(st.sampled_from(list(choices))) for name, choices in hints.kwargs.items()}
