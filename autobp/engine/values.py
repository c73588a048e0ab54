"""The gradients the reverse walk keeps, converted: arrays first order, Tensors with ``create_graph``.

Shapes: every function keeps its argument's shape (``zeros_like``: ``like``'s).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp import backends
from autobp.tensor import Tensor

__all__ = ["unchanged", "unwrap", "wrap_array", "cast_like", "zeros_like", "ComplexGradient"]


class ComplexGradient(TypeError):
    """A complex gradient reached a real tensor; the walk says which op and which tensor."""


def unchanged(value: Any) -> Any:
    return value


def unwrap(tensor: Tensor) -> Any:
    return tensor.data


def wrap_array(value: Any) -> Tensor:
    """A plain array (a user's rule on Tensors may return one) as a constant Tensor."""
    return Tensor._wrap(backends.as_array(value))


def cast_like(grad: Any, like: Any) -> Any:
    """``grad`` converted to ``like``'s dtype (a float32 input gets a float32 gradient).

    A complex gradient for a real input is refused (``ComplexGradient``): it comes from a complex
    value computed from a tensor that requires grad (``x * 1j``), and autobp's rules take no
    conjugates, so its real part is no derivative (``abs(x * 1j)`` got -1, not 1). The walk reaches
    this only where the dtypes differ: the usual gradient pays nothing for the check."""
    if backends.holds_complex(grad if not isinstance(grad, Tensor) else grad.data) and not backends.holds_complex(like):
        raise ComplexGradient
    if type(grad) is np.ndarray or isinstance(grad, Tensor):
        return grad.astype(like.dtype)
    return backends.namespace(grad).astype(grad, like.dtype)


def zeros_like(like: Any) -> Any:
    """A zero gradient: an array of ``like``'s shape and dtype."""
    if type(like) is np.ndarray:
        return np.zeros(like.shape, dtype=like.dtype)
    return backends.namespace(like).zeros_like(like)
