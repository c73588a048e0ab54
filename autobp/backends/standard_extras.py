"""Extras written in the array API standard alone, for the libraries with nothing faster of their
own (cupy, torch, array-api-strict); numpy's module has its own (``np.add.reduce``, strided views).

``written_in_the_standard(standard)`` returns the functions for one library, given how its module
reaches its standard namespace (imported on first use, so that importing autobp imports no library).
``total_as_numpy`` sums or multiplies in the dtype numpy gives, for the ops and ``sum_kept``;
``native_copy`` is the host copy the libraries' ``from_numpy`` take in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["written_in_the_standard", "total_as_numpy", "native_copy"]

Function = Callable[..., Any]


def written_in_the_standard(standard: Callable[[], Any]) -> tuple[Function, Function, Function]:
    """``(sum_kept, matmul_nt, matmul_tn)`` computed with ``standard()``'s functions."""

    def sum_kept(x: Any, axes: tuple[int, ...]) -> Any:
        """``x`` summed over ``axes``, kept with size 1 (in numpy's dtype: ``total_as_numpy``)."""
        xp = standard()
        return total_as_numpy(xp, xp.sum, x, axes, keepdims=True)

    def matmul_nt(x: Any, y: Any) -> Any:
        """``x @ y^T`` over the last two axes."""
        xp = standard()
        return xp.matmul(x, xp.matrix_transpose(y))

    def matmul_tn(x: Any, y: Any) -> Any:
        """``x^T @ y`` over the last two axes."""
        xp = standard()
        return xp.matmul(xp.matrix_transpose(x), y)

    return sum_kept, matmul_nt, matmul_tn


def total_as_numpy(xp: Any, reduce: Function, x: Any, axis: Any, keepdims: bool) -> Any:
    """``reduce(x, axis=axis, keepdims=keepdims)`` (``xp.sum`` or ``xp.prod``) in numpy's dtype for
    it: bools and integers of under 64 bits give the 64-bit integer of their sign (uint8 -> uint64).

    torch gives int64 for unsigned integers, and keeps bools over no axes; the standard refuses to
    sum bools. int64 wraps modulo 2**64 as uint64 does, so the cast gives numpy's values too.
    """
    if type(x) is np.ndarray:  # numpy's own reduction is the reference
        return reduce(x, axis=axis, keepdims=keepdims)
    dtype = x.dtype
    key = (type(dtype), dtype)  # (never == between two libraries' dtypes: array-api-strict warns)
    try:
        wide = _WIDE[key]
    except KeyError:
        wide = _WIDE[key] = _widened(xp, dtype)
    if wide is None:  # floats and complex keep their dtype everywhere
        return reduce(x, axis=axis, keepdims=keepdims)
    if dtype == xp.bool:
        x = xp.astype(x, wide)
    total = reduce(x, axis=axis, keepdims=keepdims)
    return total if total.dtype == wide else xp.astype(total, wide)


# (dtype type, a library's dtype) -> the dtype numpy sums it in (None: its own), looked up once
# per dtype: sum_kept runs in every backward.
_WIDE: dict[tuple[type, Any], Any] = {}


def _widened(xp: Any, dtype: Any) -> Any:
    if xp.isdtype(dtype, "unsigned integer"):
        return xp.uint64
    return xp.int64 if xp.isdtype(dtype, ("bool", "signed integer")) else None


def native_copy(array: Any) -> np.ndarray:
    """A copy of a host array in the machine's byte order, values and dtype kept.

    torch, cupy and array-api-strict refuse big-endian arrays (read from a file written elsewhere,
    or by ``np.dtype(">f8")``); numpy computes with them as they are.
    """
    array = np.asarray(array)
    return np.array(array, dtype=array.dtype.newbyteorder("="), copy=True)
