"""What the Tensor constructor does to its data: a copy in the data's own library, with numpy's
dtype rules and clear errors, and the check that only floating-point tensors require gradients.

Kept apart from ``autobp.tensor`` so that the class reads as what a Tensor is; nothing here
knows Tensor, so ``autobp.tensor`` imports it at its top.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp import backends

__all__ = ["check_requires_grad", "copied_array", "CopyRefused"]


class CopyRefused(TypeError):
    """A Tensor inside the data would lose its gradient or tangent in the copy
    (``autobp.tensor.refuse_dropping``): raised as it is, not as a conversion error."""


_NUMPY = backends.library("numpy")


def copied_array(data: Any, dtype: Any = None) -> Any:
    """A copy of ``data`` as an array: another library's array stays in its library and on its
    device, anything else becomes a numpy array (Python floats float64, arrays keep their dtype).

    Shapes: ``data``'s (nested lists must not be ragged).

    >>> copied_array([1.0, 2.0]).dtype
    dtype('float64')
    """
    xp = None if isinstance(data, np.ndarray) else backends.library_of(data)  # (ndarray subclasses too)
    if xp is not None and xp is not _NUMPY:  # another library's array keeps its library and device
        if getattr(data, "requires_grad", False) is True:
            # A torch tensor on torch's graph: the copy is a constant, as ab.tensor of a Tensor is
            # (torch.asarray would keep it on that graph, which autobp never walks and which grows).
            data = data.detach()
        return xp.asarray(data, dtype=None if dtype is None else _foreign_dtype(xp, dtype), copy=True)
    try:
        array = np.array(data, dtype=dtype, copy=True)
    except CopyRefused:
        raise
    except (ValueError, TypeError) as error:  # ragged nesting, unknown dtype, unconvertible values
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"tensor: cannot make a Tensor from {type(data).__name__}: {error}") from error
    if array.dtype == object:
        raise TypeError(f"tensor: cannot make a Tensor from {type(data).__name__} (numpy gives dtype object)")
    return array


def check_requires_grad(array: Any, what: str) -> None:
    """Refuse, naming ``what`` (the caller), an ``array`` that is not floating point.

    Shapes: any.

    >>> check_requires_grad(np.arange(3.0), "tensor")  # float64: accepted
    >>> check_requires_grad(np.arange(3), "tensor")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    TypeError: tensor: only floating-point tensors can require gradients, got dtype int64; ...
    """
    dtype = array.dtype
    if not (dtype.kind == "f" if type(array) is np.ndarray else backends.namespace(array).float_dtype(dtype)):
        raise TypeError(
            f"{what}: only floating-point tensors can require gradients, got dtype {dtype}; "
            "convert first, e.g. ab.tensor(data, dtype='float64', requires_grad=True)"
        )


def _foreign_dtype(xp: Any, dtype: Any) -> Any:
    """``dtype`` (a numpy dtype or its name, or the library's own dtype) as library ``xp`` spells it."""
    try:
        name = np.dtype(dtype).name
    except TypeError:  # not a numpy dtype: the library's own (torch.float32)
        return dtype
    if not hasattr(xp, name):
        raise TypeError(f"tensor: {xp.name} has no dtype {name}; use one of its own dtypes")
    return getattr(xp, name)
