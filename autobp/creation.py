"""Functions that make new leaf Tensors: constants, ranges and seeded random draws.

Random functions take ``rng``: an int seed, a ``numpy.random.Generator``, or None (fresh entropy),
so results are reproducible from a seed without global state.

Every function takes ``library=`` and ``device=`` (default: numpy on the cpu), e.g.
``ab.randn(3, library="torch", device="cuda")``; the ``*_like`` functions follow their argument's
library and device. Values are made by numpy on the host and then moved, so a seed draws the same
numbers on every library (dtypes may be numpy's, ``"float32"``, or the library's own).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp import backends
from autobp.tape_notes import mark_untapeable
from autobp.tensor import Tensor, derivative_lost

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
    "numpy_dtype",
]


def as_generator(rng: int | np.random.Generator | None) -> np.random.Generator:
    """A ``numpy.random.Generator`` from a seed, a Generator (returned as is) or None.

    A Generator or None draws other numbers on every call: a taped function doing so (``dropout``,
    ``randn``, a layer built inside it) runs eagerly, as a replay would repeat the traced draw
    (before, a replay that happened to match the eager run's draw when checked, or a tape checked
    on three repeats of the traced values, replayed one mask for good). A seed draws the same
    numbers every call, which a tape repeats faithfully."""
    if isinstance(rng, np.random.Generator):
        mark_untapeable("it draws random numbers from a Generator (dropout, randn...): a replay would repeat the draw")
        return rng
    if rng is None:
        mark_untapeable("it draws random numbers with rng=None (dropout, randn...): a replay would repeat the draw")
        return np.random.default_rng()
    if isinstance(rng, int | np.integer):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be an int seed, a numpy.random.Generator or None, got {type(rng).__name__}")


def _shape(shape: tuple[Any, ...]) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], tuple | list):
        return tuple(shape[0])
    return tuple(shape)


def numpy_dtype(dtype: Any) -> Any:
    """``dtype`` as numpy understands it: numpy dtypes and names pass through, another library's
    dtype object (``torch.float32``, ``array_api_strict.float32``) is read by its name; None stays None."""
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError:
        return np.dtype(str(dtype).rpartition(".")[2])


def _leaf(array: np.ndarray, requires_grad: bool, library: str | None = None, device: Any = None) -> Tensor:
    """A leaf holding ``array`` (made on the host by numpy), moved to ``library`` on ``device``."""
    if library is None and device is None:
        return Tensor(array, requires_grad=requires_grad)
    target = backends.library(library if library is not None else "numpy")
    return Tensor(target.from_numpy(array, device), requires_grad=requires_grad)


Library = str | None


def zeros(
    *shape: Any, dtype: Any = np.float64, requires_grad: bool = False, library: Library = None, device: Any = None
) -> Tensor:
    """A tensor of zeros. Shapes: ``zeros(2, 3)`` or ``zeros((2, 3))`` -> (2, 3)."""
    return _leaf(np.zeros(_shape(shape), dtype=numpy_dtype(dtype)), requires_grad, library, device)


def ones(
    *shape: Any, dtype: Any = np.float64, requires_grad: bool = False, library: Library = None, device: Any = None
) -> Tensor:
    """A tensor of ones. Shapes: ``ones(2, 3)`` or ``ones((2, 3))`` -> (2, 3)."""
    return _leaf(np.ones(_shape(shape), dtype=numpy_dtype(dtype)), requires_grad, library, device)


def full(
    shape: Any,
    value: float,
    dtype: Any = np.float64,
    requires_grad: bool = False,
    library: Library = None,
    device: Any = None,
) -> Tensor:
    """A tensor filled with ``value``. Shapes: shape -> shape."""
    _refuse_dropping(value, "full")
    return _leaf(np.full(shape, value, dtype=numpy_dtype(dtype)), requires_grad, library, device)


def _refuse_dropping(value: Any, name: str) -> None:
    """Refuse a fill ``value`` that is a Tensor whose gradient or tangent the constant would drop
    (numpy reads its values: ``ab.full((2,), w)`` gave ``w``'s gradient nothing, with no error)."""
    lost = derivative_lost(value)
    if lost is not None:
        raise TypeError(
            f"{name}: the fill value is tensor {backends.describe(value)}, which {lost} would be lost "
            f"(ab.{name} makes a constant). Use value * ab.ones(shape) (or ab.ones_like(x)) to keep it, or "
            "value.detach() for a constant on purpose"
        )


def _like(x: Any, fill: float, dtype: Any, requires_grad: bool) -> Tensor:
    """``fill`` everywhere with the shape, dtype, library and device of ``x`` (a Tensor or array)."""
    # .data, not np.asarray(tensor): only the shape and dtype are used, which a tape need not guard.
    array = x.data if isinstance(x, Tensor) else x
    xp = backends.library_of(array)
    if xp is None or xp.name == "numpy":  # numpy's own functions: also for lists and scalars
        return Tensor(np.full_like(array, fill, dtype=numpy_dtype(dtype)), requires_grad=requires_grad)
    # Made where x lives, in its library: no host round trip for a GPU array.
    kind = array.dtype if dtype is None else getattr(xp, numpy_dtype(dtype).name)
    return Tensor(xp.full(array.shape, fill, dtype=kind, device=xp.device(array)), requires_grad=requires_grad)


def zeros_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape, dtype, library and device of ``x`` (a Tensor or array)."""
    return _like(x, 0, dtype, requires_grad)


def ones_like(x: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """Ones with the shape, dtype, library and device of ``x`` (a Tensor or array)."""
    return _like(x, 1, dtype, requires_grad)


def full_like(x: Any, value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """``value`` everywhere, with the shape, dtype, library and device of ``x``."""
    _refuse_dropping(value, "full_like")
    return _like(x, value, dtype, requires_grad)


def arange(
    *args: Any, dtype: Any = None, requires_grad: bool = False, library: Library = None, device: Any = None
) -> Tensor:
    """Evenly spaced values, as ``numpy.arange(start, stop, step)``."""
    return _leaf(np.arange(*args, dtype=numpy_dtype(dtype)), requires_grad, library, device)


def linspace(
    start: float,
    stop: float,
    num: int = 50,
    dtype: Any = None,
    requires_grad: bool = False,
    library: Library = None,
    device: Any = None,
) -> Tensor:
    """``num`` evenly spaced values from ``start`` to ``stop`` inclusive. Shapes: -> (num,)."""
    return _leaf(np.linspace(start, stop, num, dtype=numpy_dtype(dtype)), requires_grad, library, device)


def eye(
    n: int,
    m: int | None = None,
    dtype: Any = np.float64,
    requires_grad: bool = False,
    library: Library = None,
    device: Any = None,
) -> Tensor:
    """The identity matrix. Shapes: -> (n, m or n)."""
    return _leaf(np.eye(n, m, dtype=numpy_dtype(dtype)), requires_grad, library, device)


Rng = int | np.random.Generator | None


def randn(
    *shape: Any,
    dtype: Any = np.float64,
    requires_grad: bool = False,
    rng: Rng = None,
    library: Library = None,
    device: Any = None,
) -> Tensor:
    """Standard normal samples. Shapes: ``randn(2, 3)`` -> (2, 3).

    >>> import autobp as ab
    >>> bool((ab.randn(3, rng=0) == ab.randn(3, rng=0)).numpy().all())
    True
    """
    draws = as_generator(rng).standard_normal(_shape(shape))
    return _leaf(draws.astype(numpy_dtype(dtype), copy=False), requires_grad, library, device)


def rand(
    *shape: Any,
    dtype: Any = np.float64,
    requires_grad: bool = False,
    rng: Rng = None,
    library: Library = None,
    device: Any = None,
) -> Tensor:
    """Uniform samples from [0, 1). Shapes: ``rand(2, 3)`` -> (2, 3)."""
    draws = as_generator(rng).random(_shape(shape))
    return _leaf(draws.astype(numpy_dtype(dtype), copy=False), requires_grad, library, device)


def uniform(
    low: float,
    high: float,
    shape: Any,
    dtype: Any = np.float64,
    requires_grad: bool = False,
    rng: Rng = None,
    library: Library = None,
    device: Any = None,
) -> Tensor:
    """Uniform samples from [low, high). Shapes: -> shape."""
    draws = as_generator(rng).uniform(low, high, shape)
    return _leaf(draws.astype(numpy_dtype(dtype), copy=False), requires_grad, library, device)


def normal(
    mean: float,
    std: float,
    shape: Any,
    dtype: Any = np.float64,
    requires_grad: bool = False,
    rng: Rng = None,
    library: Library = None,
    device: Any = None,
) -> Tensor:
    """Normal samples with the given mean and standard deviation. Shapes: -> shape.

    A seed draws the same numbers on every library (drawn by numpy on the host, then moved):

    >>> import autobp as ab
    >>> host = ab.normal(0.0, 1.0, (2, 3), rng=7)
    >>> strict = ab.normal(0.0, 1.0, (2, 3), rng=7, library="array_api_strict")
    >>> strict.library, bool((strict.numpy() == host.numpy()).all())
    ('array_api_strict', True)
    """
    draws = as_generator(rng).normal(mean, std, shape)
    return _leaf(draws.astype(numpy_dtype(dtype), copy=False), requires_grad, library, device)
