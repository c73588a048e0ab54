"""Parameter initializers (in place, seeded): xavier/kaiming, uniform and normal.

Each takes ``rng``: an int seed, a ``numpy.random.Generator`` or None, so a model built with
the same seeds starts from the same weights. Draws are made by numpy on the host and then written
into the tensor in its own library and device: the same seed gives the same weights everywhere.
"""

from __future__ import annotations

import math

import numpy as np

from autobp import backends
from autobp.creation import as_generator
from autobp.tensor import Tensor

__all__ = [
    "calculate_gain",
    "fans",
    "uniform_",
    "normal_",
    "constant_",
    "zeros_",
    "ones_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
]

Rng = int | np.random.Generator | None


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended scale for weights feeding ``nonlinearity`` (PyTorch's values).

    >>> calculate_gain("relu") == math.sqrt(2.0)
    True
    """
    if nonlinearity in ("linear", "identity", "sigmoid", "conv2d"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")


def fans(tensor: Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a weight: (out, in) for linear, (out, in, kh, kw) for conv."""
    if tensor.ndim < 2:
        raise ValueError(f"fans: need a weight with at least 2 dimensions, got shape {tensor.shape}")
    receptive = int(np.prod(tensor.shape[2:])) if tensor.ndim > 2 else 1
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _fill(tensor: Tensor, values: np.ndarray) -> Tensor:
    data = tensor.data
    if type(data) is not np.ndarray:  # another library: copy the host draws to the tensor's device
        xp = backends.namespace(data)
        values = xp.from_numpy(values.astype(xp.dtype_name(data.dtype), copy=False), xp.device(data))
    data[...] = values
    tensor._version += 1  # an in-place write: graphs that saved the old values must notice
    return tensor


def uniform_(tensor: Tensor, low: float = 0.0, high: float = 1.0, rng: Rng = None) -> Tensor:
    """Fill with draws from U(low, high). Shapes: unchanged."""
    return _fill(tensor, as_generator(rng).uniform(low, high, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, rng: Rng = None) -> Tensor:
    """Fill with draws from N(mean, std^2). Shapes: unchanged."""
    return _fill(tensor, as_generator(rng).normal(mean, std, tensor.shape))


def constant_(tensor: Tensor, value: float) -> Tensor:
    """Fill with ``value``. Shapes: unchanged."""
    return _fill(tensor, np.full(tensor.shape, value))


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros. Shapes: unchanged."""
    return constant_(tensor, 0.0)


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones. Shapes: unchanged."""
    return constant_(tensor, 1.0)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, rng: Rng = None) -> Tensor:
    """Glorot uniform: U(-a, a) with ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    >>> import autobp as ab
    >>> w = xavier_uniform_(ab.zeros(3, 5), rng=0)
    >>> bool(abs(w.numpy()).max() <= (6 / 8) ** 0.5)
    True
    """
    fan_in, fan_out = fans(tensor)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound, rng)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, rng: Rng = None) -> Tensor:
    """Glorot normal: N(0, std^2) with ``std = gain * sqrt(2 / (fan_in + fan_out))``."""
    fan_in, fan_out = fans(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), rng)


def _kaiming_std(tensor: Tensor, a: float, mode: str, nonlinearity: str) -> float:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"kaiming init: mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(tensor)
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", rng: Rng = None
) -> Tensor:
    """He uniform: U(-b, b) with ``b = gain * sqrt(3 / fan)``; ``a`` is the leaky_relu slope."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, rng)


def kaiming_normal_(
    tensor: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu", rng: Rng = None
) -> Tensor:
    """He normal: N(0, std^2) with ``std = gain / sqrt(fan)``."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), rng)
