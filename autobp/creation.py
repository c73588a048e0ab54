"""Functions that make new leaf Tensors: constants, ranges and seeded random draws.

Random functions take ``rng``: an int seed, a ``numpy.random.Generator``, or None (fresh entropy),
so results are reproducible from a seed without global state.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.tensor import Tensor

__all__ = [
    "as_generator",
    "zeros",
    "ones",
    "full",
    "zeros_like",
    "ones_like",
    "full_like",
    "arange",
    "linspace",
    "eye",
    "randn",
    "rand",
    "uniform",
    "normal",
]


def as_generator(rng: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, a Generator (returned as is) or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, int | np.integer):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be an int seed, a numpy.random.Generator or None, got {type(rng).__name__}")


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        return tuple(shape[0])
    return tuple(shape)


def _leaf(array: np.ndarray, requires_grad: bool) -> Tensor:
    return Tensor(array, requires_grad=requires_grad)


def zeros(*shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros. Shapes: ``zeros(2, 3)`` or ``zeros((2, 3))`` -> (2, 3)."""
    return _leaf(np.zeros(_shape(shape), dtype=dtype), requires_grad)


def ones(*shape: Any, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """A tensor of ones. Shapes: ``ones(2, 3)`` or ``ones((2, 3))`` -> (2, 3)."""
    return _leaf(np.ones(_shape(shape), dtype=dtype), requires_grad)


def full(shape: Any, value: float, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``value``. Shapes: shape -> shape."""
    return _leaf(np.full(shape, value, dtype=dtype), requires_grad)


def _array_of(x: Any) -> np.ndarray:
    # .data, not np.asarray(tensor): only the shape and dtype are used, which a tape need not guard.
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def zeros_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape and dtype of ``x`` (a Tensor or array)."""
    return _leaf(np.zeros_like(_array_of(x), dtype=dtype), requires_grad)


def ones_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape and dtype of ``x`` (a Tensor or array)."""
    return _leaf(np.ones_like(_array_of(x), dtype=dtype), requires_grad)


def full_like(x: Any, value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``value`` everywhere, with the shape and dtype of ``x``."""
    return _leaf(np.full_like(_array_of(x), value, dtype=dtype), requires_grad)


def arange(*args: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Evenly spaced values, as ``numpy.arange(start, stop, step)``."""
    return _leaf(np.arange(*args, dtype=dtype), requires_grad)


def linspace(start: float, stop: float, num: int = 50, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop`` inclusive. Shapes: -> (num,)."""
    return _leaf(np.linspace(start, stop, num, dtype=dtype), requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = np.float64, requires_grad: bool = False) -> Tensor:
    """The identity matrix. Shapes: -> (n, m or n)."""
    return _leaf(np.eye(n, m, dtype=dtype), requires_grad)


def randn(
    *shape: Any, dtype: Any = np.float64, requires_grad: bool = False, rng: int | np.random.Generator | None = None
) -> Tensor:
    """Standard normal samples. Shapes: ``randn(2, 3)`` -> (2, 3).

    >>> import autobp as ab
    >>> bool((ab.randn(3, rng=0) == ab.randn(3, rng=0)).numpy().all())
    True
    """
    return _leaf(as_generator(rng).standard_normal(_shape(shape)).astype(dtype, copy=False), requires_grad)


def rand(
    *shape: Any, dtype: Any = np.float64, requires_grad: bool = False, rng: int | np.random.Generator | None = None
) -> Tensor:
    """Uniform samples from [0, 1). Shapes: ``rand(2, 3)`` -> (2, 3)."""
    return _leaf(as_generator(rng).random(_shape(shape)).astype(dtype, copy=False), requires_grad)


def uniform(
    low: float,
    high: float,
    shape: Any,
    dtype: Any = np.float64,
    requires_grad: bool = False,
    rng: int | np.random.Generator | None = None,
) -> Tensor:
    """Uniform samples from [low, high). Shapes: -> shape."""
    return _leaf(as_generator(rng).uniform(low, high, shape).astype(dtype, copy=False), requires_grad)


def normal(
    mean: float,
    std: float,
    shape: Any,
    dtype: Any = np.float64,
    requires_grad: bool = False,
    rng: int | np.random.Generator | None = None,
) -> Tensor:
    """Normal samples with the given mean and standard deviation. Shapes: -> shape."""
    return _leaf(as_generator(rng).normal(mean, std, shape).astype(dtype, copy=False), requires_grad)
