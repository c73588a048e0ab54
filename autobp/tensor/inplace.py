"""Tensor's augmented assignments (``t += u``), item assignment (``t[i] = v``) and the version
counter that in-place writes bump (``_version``; ``_share_storage_with`` gives a view its base's).

On a tensor outside any graph they write in place through ``autobp.inplace._inplace``, which
refuses writes that would change values a graph saved and bumps the version counter. On a graph
tensor, ``+=`` rebinds the name to a new tensor instead, as Python does for immutable types,
where that is what a write in place would give (no other tensor on its memory, shape and dtype kept).
They are Tensor's methods as they stand here (no wrapper frame on an optimizer's ``param -= ...``),
installed by ``autobp.tensor.method_table.install``; Tensor's class body declares them for type checkers.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from autobp import backends, grad_mode, graph
from autobp import ops as _ops
from autobp.forward import carries_tangent
from autobp.inplace import _inplace, _unwrap, rebound
from autobp.ops import indexing as _indexing
from autobp.tensor import Tensor

TENSOR_METHODS = ("_version", "_share_storage_with", "__setitem__", "__iadd__", "__isub__", "__imul__", "__itruediv__")


def _get_version(self: Tensor) -> int:
    """How many in-place writes this tensor's storage has seen (through it or any view)."""
    counter = self._vc
    return 0 if counter is None else counter[0]


def _set_version(self: Tensor, value: int) -> None:
    counter = self._vc
    if counter is None:
        self._vc = [value]
    else:
        counter[0] = value


_version: property = property(_get_version, _set_version, doc=_get_version.__doc__)


def _share_storage_with(self: Tensor, base: Tensor) -> None:
    """Make this tensor (a view of ``base``'s memory) use ``base``'s version counter."""
    counter = base._vc
    if counter is None:
        counter = base._vc = [0]
    self._vc = counter


def __setitem__(self: Tensor, index: Any, value: Any) -> None:
    index = tuple(_unwrap(i) for i in index) if isinstance(index, tuple) else _unwrap(index)
    _inplace(self, "setitem", lambda out, item: _indexing.set_at(out, index, item), value)


def _augmented(tensor: Tensor, name: str, ufunc: Any, other: Any, op_name: str) -> Tensor:
    """``tensor <name>= other``: a write in place, or the name rebound to ``op(tensor, other)``.

    Shapes: other broadcasts to tensor's shape; the result has tensor's shape and dtype.
    """
    # A graph tensor cannot change in place; ``y += 1`` then rebinds ``y`` to a new tensor,
    # exactly what Python does for types without in-place operators. So does ``c += x``
    # when x requires grad (writing into c would drop x's gradient), and when either carries a
    # forward-mode tangent (the sum carries the tangents; a write would drop x's, or stale c's).
    if (
        tensor.grad_fn is not None
        or (isinstance(other, Tensor) and other.requires_grad and grad_mode.is_grad_enabled())
        or (graph._local.modes.forward is not None and (carries_tangent(other) or carries_tangent(tensor)))
    ) and not (tensor.grad_fn is None and tensor.requires_grad):
        # (a leaf that requires grad goes to _inplace, which refuses ``w += x`` as it refuses
        # ``w += 1.0``: a rebound w would be a new non-leaf, and an optimizer would step the old one)
        _refuse_shared_storage(tensor, name)
        result: Tensor = getattr(_ops, op_name)(tensor, other)
        return rebound(tensor, name, result, other)
    return _inplace(tensor, name, ufunc, other)


def _refuse_shared_storage(tensor: Tensor, name: str) -> None:
    """Refuse to rebind ``tensor`` where another live Tensor shares its memory (it is a view, the
    base of a live view, or has a live ``detach()``): a write in place would be seen through the
    other, a rebind is not (``v = h[0:2]; v += 1`` left h unchanged, so the loss and gradients of
    ``(h * h).sum()`` came out as if nothing was written)."""
    counter = tensor._vc
    # Every Tensor sharing a storage holds the one counter list (share_storage, detach); nothing
    # else keeps it. Two references are the tensor's slot and getrefcount's argument: more means
    # another Tensor still shares the memory. (A dead view not yet collected only refuses, never misleads.)
    if counter is not None and sys.getrefcount(counter) > 2:
        raise RuntimeError(
            f"{name}: tensor {backends.describe(tensor)} shares its memory with another live tensor (it is a "
            "view: a slice, a transpose, a row of a loop; or it has one, or a detach()). It cannot be written in "
            "place (it is on a graph, or the operand requires grad), and rebinding the name would leave the other "
            "tensor unchanged. Build the new values out of place (y = ab.where(mask, y + 1, y), "
            "ab.concatenate([...])), or rebind explicitly on a copy (v = v.clone() + 1)"
        )


def __iadd__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "+=", np.add, other, "add")


def __isub__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "-=", np.subtract, other, "sub")


def __imul__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "*=", np.multiply, other, "mul")


def __itruediv__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "/=", np.true_divide, other, "div")
