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


def spread_apart(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Same order as ``values``, but evenly spaced over ``[low, high]``: no ties, no near-ties."""
    flat = values.ravel()
    ranks = np.empty(flat.size)
    ranks[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    return (low + (ranks + 0.5) * (high - low) / max(flat.size, 1)).reshape(values.shape)


def draw_array(draw: Any, hints: Hints, index: int, shape: tuple[int, ...]) -> np.ndarray:
    """One input array, inside the op's domain and away from its non-differentiable points."""
    low, high = domain_of(hints, index)
    values = draw(arrays(shape, np.float64, (low, high)))
    if hints.avoid:
        values = keep_away(values, hints.avoid, hints.gap)
    if hints.distinct:
        values = spread_apart(values, low, high)
    return values


def draw_kwargs(draw: Any, hints: Hints) -> dict[str, Any]:
    """One choice for each keyword listed in the hints."""
    return {name: draw(st.sampled_from(list(choices))) for name, choices in hints.kwargs.items()}
