"""Indexing: ``x[index]`` and its adjoint, adding values into zeros at an index.

Indices follow numpy: ints, slices (any step), ``None``, ``Ellipsis``, integer arrays (lists,
numpy arrays or integer Tensors) and boolean masks, mixed as numpy allows. The vjp of
``getitem`` scatters the gradient back with ``scatter_add``, whose own vjp is ``getitem``, so
gradients of any order flow through indexing. Integer arrays may repeat an element; their
gradients accumulate.

On every library the meaning is numpy's. Where a library's own indexing means less (the array
API standard has no integer arrays mixed with slices, PyTorch no negative steps), the general
forwards read elements by flat position instead (``autobp.ops.positions``), with standard
functions only; numpy's own indexing is its fast forward (``backends/numpy.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.backends import Namespace, namespace
from autobp.ops.positions import (
    advanced_adjacent,
    as_key,
    bounded,
    flat_positions,
    has_arrays,
    has_negative_step,
    unravel,
)
from autobp.ops.registry import Hints, op
from autobp.storage import mark_copy_for_view
from autobp.tensor import Tensor

__all__ = ["getitem", "scatter_add", "set_at", "normalize_index", "describe_index", "index_error"]


def _component(part: Any) -> Any:
    """One index component as numpy takes it: Tensors and lists become arrays."""
    if isinstance(part, Tensor):
        return part.data
    if isinstance(part, list):
        array = np.asarray(part)
        # An empty list selects nothing; numpy reads it as an integer index, not a float one.
        return array.astype(np.intp) if array.size == 0 else array
    return part


def normalize_index(index: Any) -> Any:
    """``index`` with Tensor and list components replaced by arrays (tuples stay tuples)."""
    if isinstance(index, tuple):
        return tuple(_component(part) for part in index)
    return _component(index)


def _describe_part(part: Any) -> str:
    if isinstance(part, slice):
        text = ":".join("" if v is None else str(v) for v in (part.start, part.stop, part.step))
        return text[:-1] if text.endswith(":") and part.step is None else text
    if part is Ellipsis:
        return "..."
    if isinstance(part, np.ndarray):
        values = np.array2string(part, separator=", ", threshold=8, edgeitems=3)
        return f"{part.dtype} array {values}"
    if hasattr(part, "shape") and hasattr(part, "dtype"):  # another library's array: no host copy to show it
        xp = namespace(part)
        return f"{xp.name} {xp.dtype_name(part.dtype)} array of shape {tuple(part.shape)}"
    return repr(part)


def describe_index(index: Any) -> str:
    """A short readable form of an index for error messages, e.g. ``[1:3, ..., int64 array [0, 0]]``."""
    index = normalize_index(index)
    parts = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(_describe_part(p) for p in parts) + "]"


def index_error(name: str, shape: tuple[int, ...], index: Any, error: Exception) -> Exception:
    message = f"{name}: index {describe_index(index)} does not fit shape {tuple(shape)}: {error}"
    return IndexError(message) if isinstance(error, IndexError) else type(error)(message)


def _native(xp: Namespace, key: tuple[Any, ...], shape: tuple[int, ...]) -> bool:
    """Whether the library's own ``x[key]`` means what numpy's does for this key, on an array of ``shape``."""
    # advanced_indexing: "anywhere" (numpy's rules), "adjacent" (torch: only where the key's
    # advanced indices sit next to each other) or "nowhere" (the standard's integer arrays only).
    advanced = xp.advanced_indexing
    if has_arrays(key) and (
        (advanced != "anywhere" and (advanced == "nowhere" or not advanced_adjacent(key)))
        or (0 in shape and xp.name != "numpy")  # (torch checks no index array against 0 elements: x[[1]] of (1, 0))
    ):
        return False
    return xp.negative_steps or not has_negative_step(key)


@op("getitem", arity=1, hints=Hints(shapes="getitem"), linear=True)
def getitem(x: Any, index: Any) -> Any:
    """``x[index]`` with numpy's basic and advanced indexing, on any array library.

    Shapes: as numpy: ints drop an axis, slices keep it, ``None`` adds one, integer arrays are
    replaced by their broadcast shape, a boolean mask by its number of true elements.

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> x[[0, 0, 2]].sum().backward()
    >>> x.grad.tolist()
    [2.0, 0.0, 1.0]
    """
    xp = namespace(x)
    try:
        key = as_key(xp, x, index)
        if _native(xp, key, tuple(x.shape)):
            result = x[bounded(xp, tuple(x.shape), key)]
            if 0 in result.shape and has_arrays(key) and xp.name != "numpy":
                # torch checks no index array where the result is empty (x[:0, [5]]); numpy does,
                # unless the advanced indices select nothing: the flat positions check as numpy.
                flat_positions(xp, tuple(x.shape), key, xp.device(x))
            if len(key) == x.ndim and all(type(part) is int for part in key):
                # One element read by an int per axis: numpy gives a scalar, a copy; torch a 0-d view,
                # which a later write through x would change (and a write into it would reach x).
                return xp.asarray(result, copy=True)
            return result
        positions, shape = flat_positions(xp, tuple(x.shape), key, xp.device(x))
        result = xp.reshape(xp.take(xp.reshape(x, (-1,)), xp.reshape(positions, (-1,))), shape)
        if not has_arrays(key):  # numpy's x[key] is a view here: in-place writes must not pass silently
            mark_copy_for_view(result, f"getitem {describe_index(index)}", x)
        return result
    except (IndexError, ValueError, TypeError) as error:
        raise index_error("getitem", x.shape, index, error) from error


def set_at(x: Any, index: Any, value: Any) -> None:
    """``x[index] = value`` with numpy's meaning of ``index``, on an array that takes writes.

    numpy's own assignment for numpy arrays; on another library its own where it agrees with
    numpy's (``_native``), else one integer array per axis from the flat positions numpy's
    ``x[index]`` reads, which every library reads as numpy does.
    """
    if type(x) is np.ndarray:
        # An index array of another library: refused, as getitem refuses it (numpy would read it
        # through __array__, a silent host copy).
        namespace(x, *(index if isinstance(index, tuple) else (index,)))
        x[index] = value
        return
    xp = namespace(x)
    key = as_key(xp, x, index)
    shape = tuple(x.shape)
    # An integer array may name a position twice: numpy assigns in order, so the last value
    # stays; torch's index_put_ leaves the order open (x[idx] = v with 10000 repeats into 5
    # elements kept other values than numpy's). Those writes go one per position, the last.
    repeats = has_arrays(key) and len(getattr(value, "shape", ())) > 0
    if _native(xp, key, shape) and not repeats:
        x[bounded(xp, shape, key)] = value
        return
    positions, selected = flat_positions(xp, shape, key, xp.device(x))
    if repeats:
        positions, value = _last_writes(xp, positions, value, selected)
    x[unravel(xp, positions, shape)] = value


def _last_writes(xp: Namespace, positions: Any, value: Any, selected: tuple[int, ...]) -> tuple[Any, Any]:
    """The flat ``positions`` a write reaches, each once, with the value numpy leaves there: the
    last one written to it (``value`` broadcast to the ``selected`` shape, in C order).

    Shapes: positions (selected), value broadcastable to selected -> two 1-D arrays of equal length.
    """
    flat = xp.reshape(positions, (-1,))
    values = xp.reshape(xp.broadcast_to(value, selected), (-1,))
    order = xp.argsort(flat, stable=True)  # (a position's writes stay in their order)
    ordered = xp.take(flat, order)
    # the last of each run of equal positions: where the next one differs, and the very last
    end = xp.ones((min(flat.shape[0], 1),), dtype=xp.bool, device=xp.device(flat))  # (none of none)
    last = xp.concat([ordered[1:] != ordered[:-1], end])
    keep = order[last]
    return xp.take(flat, keep), xp.take(values, keep)


@op("scatter_add", arity=1, hints=Hints(shapes="scatter_add"), linear=True)
def scatter_add(values: Any, index: Any, shape: tuple[int, ...]) -> Any:
    """Zeros of ``shape`` with ``values`` added at ``index``; repeated positions accumulate.

    The adjoint of ``getitem``: ``scatter_add(g, index, x.shape)`` is the gradient of
    ``x[index]``. Shapes: values broadcastable to ``zeros(shape)[index].shape`` -> shape.

    >>> import autobp as ab
    >>> ab.scatter_add(ab.tensor([1.0, 2.0, 3.0]), [0, 2, 0], (3,)).tolist()
    [4.0, 0.0, 2.0]
    """
    xp = namespace(values)
    shape = tuple(shape)
    device = xp.device(values)
    try:
        key = as_key(xp, values, index)
        if not has_arrays(key) and _native(xp, key, shape) and not any(part is None for part in key):
            # Ints, slices and ...: each element at most once, so a plain write adds.
            result = xp.zeros(shape, dtype=values.dtype, device=device)
            result[bounded(xp, shape, key)] = values
            return result
        # Otherwise add at flat positions, as every library can (the backends' scatter_add).
        positions, selected = flat_positions(xp, shape, key, device)
        flat = xp.zeros((_size(shape),), dtype=values.dtype, device=device)
        spread = xp.reshape(xp.broadcast_to(values, selected), (-1,))
        return xp.reshape(xp.scatter_add(flat, xp.reshape(positions, (-1,)), spread), shape)
    except (IndexError, ValueError, TypeError) as error:
        raise index_error("scatter_add", shape, index, error) from error


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for n in shape:
        size *= n
    return size


# d scatter_add(v)[index] / dv: the gradient is read back at the same index.
scatter_add.defvjp(lambda grad, out, values, index, shape: getitem(grad, index), plain_arrays=True)
# d x[index] / dx: each selected element receives its gradient, repeats add up.
getitem.defvjp(lambda grad, out, x, index: scatter_add(grad, index, x.shape), plain_arrays=True)
