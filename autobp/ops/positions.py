"""numpy's indexing rules, as flat positions built from the array API standard alone.

``flat_positions(xp, shape, key)`` says which element of a C-ordered array of ``shape`` each
element of ``x[key]`` reads, as an integer array of the result's shape. ``x[key]`` is then
``take(reshape(x, (-1,)), positions)`` and its adjoint adds into the same positions: one route
for every library and every index numpy takes (integer arrays mixed with slices, negative steps,
boolean masks), where a library's own indexing means less than numpy's.

numpy's rules, followed here: a boolean mask stands for its ``nonzero()`` integer arrays; with
any array in the key, ints are advanced indices too; the advanced indices broadcast together and
their axes replace them in place when they sit next to each other in the key, or go first when a
slice, ``None`` or ``...`` separates them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.backends import Namespace, namespace

__all__ = ["as_key", "has_arrays", "advanced_adjacent", "has_negative_step", "bounded", "flat_positions", "unravel"]


def _is_array(part: Any) -> bool:
    return hasattr(part, "shape") and hasattr(part, "dtype") and not isinstance(part, np.generic)


def as_key(xp: Namespace, x: Any, index: Any) -> tuple[Any, ...]:
    """``index`` as a tuple whose arrays are ``xp`` arrays on ``x``'s device.

    Lists and numpy arrays (host values, as the user wrote them) move to ``x``'s library; a
    Tensor's or another array's library must be ``x``'s own (else MixedArraysError).
    """
    parts = index if isinstance(index, tuple) else (index,)
    if sum(part is Ellipsis for part in parts) > 1:  # (torch takes x[..., ...])
        raise IndexError("an index can only have a single ellipsis ('...')")
    key = []
    for part in parts:
        part = getattr(part, "data", part) if type(part).__name__ == "Tensor" else part
        if isinstance(part, bool | np.bool_):
            part = np.asarray(part)  # x[True]: a 0-d mask, as numpy reads it
        elif isinstance(part, np.integer):
            part = int(part)
        elif isinstance(part, list):
            part = np.asarray(part)
            if part.size == 0:  # an empty list selects nothing; numpy reads it as integers
                part = part.astype(np.intp)
        if isinstance(part, np.ndarray) and xp.name != "numpy":
            part = xp.from_numpy(part, xp.device_name(x))  # (a name every backend's from_numpy takes)
        elif _is_array(part):
            namespace(x, part)  # raises for arrays of two libraries or devices
        if _is_array(part) and xp.name != "numpy" and _narrow_integers(xp, part.dtype):
            # numpy reads every integer dtype as positions; torch reads uint8 as a boolean mask (a
            # deprecated reading: x[[1, 0]] gave one row) and refuses int8 and int16.
            part = xp.astype(part, xp.int64)
        key.append(part)
    return tuple(key)


def _narrow_integers(xp: Namespace, dtype: Any) -> bool:
    """Whether ``dtype`` is an integer dtype that int64 holds and that is not int64 or int32
    (uint64 stays: its values past int64's would wrap into valid positions)."""
    return bool(xp.isdtype(dtype, "integral")) and dtype not in (xp.int64, xp.int32, xp.uint64)


def has_arrays(key: tuple[Any, ...]) -> bool:
    """Whether ``key`` holds an array (integer or boolean): an advanced index."""
    return any(_is_array(part) for part in key)


def advanced_adjacent(key: tuple[Any, ...]) -> bool:
    """Whether the advanced indices of ``key`` (its arrays, and its ints when it holds an array)
    sit next to each other, so that numpy puts their axes where the first one stands.

    Where they do, PyTorch's own indexing agrees with numpy's; where a slice, ``None`` or ``...``
    separates them, numpy puts their axes first but torch, which reads ints as basic indices, does
    not (``x[0, :, [0, 1]]`` on a (2, 3, 4) array: numpy (2, 3), torch (3, 2)).
    """
    at = [i for i, part in enumerate(key) if _is_array(part) or isinstance(part, int)]
    return at == list(range(at[0], at[-1] + 1)) if at else True


def has_negative_step(key: tuple[Any, ...]) -> bool:
    return any(isinstance(part, slice) and part.step is not None and part.step < 0 for part in key)


def _axes_taken(xp: Namespace, part: Any) -> int:
    if _is_array(part):
        return part.ndim if xp.isdtype(part.dtype, "bool") else 1
    return 0 if part is None or part is Ellipsis else 1


def bounded(xp: Namespace, shape: tuple[int, ...], key: tuple[Any, ...]) -> tuple[Any, ...]:
    """``key`` with each slice's ends inside its axis (the standard leaves others unspecified),
    and an Ellipsis at the end when it names fewer axes than ``shape`` has (the standard needs one)."""
    taken = sum(_axes_taken(xp, part) for part in key)
    parts, axis = [], 0
    for part in key:
        if part is Ellipsis:
            axis += len(shape) - taken
        elif isinstance(part, slice) and axis < len(shape):
            start, stop, step = part.indices(shape[axis])
            if not len(range(start, stop, step)):
                part = slice(0, 0, 1)
            else:  # a negative step's stop below 0 means "through the first element": None says so
                part = slice(start, None if stop < 0 else stop, step)
        parts.append(part)
        axis += _axes_taken(xp, part) if part is not Ellipsis else 0
    if taken < len(shape) and not any(p is Ellipsis for p in parts):
        parts.append(Ellipsis)
    return tuple(parts)


def _broadcast(shapes: list[tuple[int, ...]]) -> tuple[int, ...]:
    width = max((len(s) for s in shapes), default=0)
    result = [1] * width
    for shape in shapes:
        for i, n in enumerate(shape, width - len(shape)):
            if n != result[i] and 1 not in (n, result[i]):
                shown = " ".join(str(s) for s in shapes)
                raise IndexError(f"shape mismatch: indexing arrays could not be broadcast together with shapes {shown}")
            result[i] = n if result[i] == 1 else result[i]
    return tuple(result)


_GAP = object()  # where an Ellipsis stood: it separates advanced indices even when it expands to no axis


def _expand(xp: Namespace, ndim: int, key: tuple[Any, ...]) -> list[Any]:
    """``key`` (``as_key``'s, so one ``...`` at most) with masks as their integer arrays and
    ``...`` as full slices, one entry per axis (``None``, 0-d masks and the Ellipsis's mark, which
    take no axis, in between)."""
    parts: list[Any] = []
    for part in key:
        if _is_array(part) and xp.isdtype(part.dtype, "bool"):
            if part.ndim == 0:
                parts.append(("mask0", int(bool(part))))  # adds an axis of 1 or 0 elements
            else:
                parts.extend(xp.nonzero(part))
        elif _is_array(part) and not xp.isdtype(part.dtype, "integral"):
            raise IndexError(f"arrays used as indices must be of integer or boolean type, not {part.dtype}")
        elif not _is_array(part) and part is not None and part is not Ellipsis and not isinstance(part, int | slice):
            raise IndexError(
                f"only integers, slices, None, Ellipsis and integer or boolean arrays are valid indices, not {part!r}"
            )
        else:
            parts.append(part)
    taken = sum(1 for p in parts if _takes_axis(p))
    if taken > ndim:
        raise IndexError(f"too many indices for array: array is {ndim}-dimensional, but {taken} were indexed")
    fill = [slice(None)] * (ndim - taken)
    at = next((i for i, p in enumerate(parts) if p is Ellipsis), None)
    if at is not None:
        return [*parts[:at], _GAP, *fill, *parts[at + 1 :]]
    return parts + fill


def _takes_axis(part: Any) -> bool:
    return part is not None and part is not Ellipsis and part is not _GAP and not isinstance(part, tuple)


def _checked(xp: Namespace, values: Any, size: int, axis: int, check: bool = True) -> Any:
    """Integer ``values`` for an axis of ``size``, negative ones counted from the end (bounds
    checked unless ``check`` is False: where the advanced indices select nothing, numpy checks
    only its ints and 0-d arrays)."""
    if isinstance(values, int):
        if not -size <= values < size:
            raise IndexError(f"index {values} is out of bounds for axis {axis} with size {size}")
        return values % size
    values = xp.astype(values, xp.int64)
    # (a 0-d array too: skipping it read x[::-1, np.array(-5)] of 4 columns at other rows' elements)
    if (check or values.ndim == 0) and 0 not in values.shape and bool(xp.any((values < -size) | (values >= size))):
        if values.ndim == 0:
            raise IndexError(f"index {int(values)} is out of bounds for axis {axis} with size {size}")
        raise IndexError(f"an index array holds values out of bounds for axis {axis} with size {size}")
    return xp.where(values < 0, values + size, values)


def _check_masks(xp: Namespace, shape: tuple[int, ...], key: tuple[Any, ...]) -> None:
    """numpy's IndexError for a boolean mask whose shape is not that of the axes it indexes (its
    true elements' positions would otherwise be read as integer arrays: a short mask selected rows).
    As numpy, a mask axis of size 0 matches any axis."""
    taken = sum(_axes_taken(xp, part) for part in key)
    axis = 0
    for part in key:
        if part is Ellipsis:
            axis += max(len(shape) - taken, 0)
            continue
        if _is_array(part) and xp.isdtype(part.dtype, "bool"):
            for i, size in enumerate(part.shape):
                # (numpy lets a mask axis of size 0 stand for any axis: it selects nothing)
                if axis + i < len(shape) and size != shape[axis + i] and size != 0:
                    raise IndexError(
                        f"boolean index did not match indexed array along axis {axis + i}; size of axis is "
                        f"{shape[axis + i]} but size of corresponding boolean axis is {size}"
                    )
        axis += _axes_taken(xp, part)


def flat_positions(
    xp: Namespace, shape: tuple[int, ...], key: tuple[Any, ...], device: Any
) -> tuple[Any, tuple[int, ...]]:
    """The flat (C-order) position in an array of ``shape`` of each element of ``array[key]``,
    as an int64 array of that result's shape on ``device``, and that shape.

    Shapes: ``key`` as ``as_key`` gives it -> the shape numpy's ``zeros(shape)[key]`` has.
    """
    _check_masks(xp, shape, key)
    parts = _expand(xp, len(shape), key)
    strides = [1] * len(shape)
    for axis in range(len(shape) - 2, -1, -1):
        strides[axis] = strides[axis + 1] * shape[axis + 1]
    arrays = [p for p in parts if _is_array(p) or isinstance(p, tuple)]
    # With an array in the key, ints are advanced indices too (numpy's rule).
    advanced = [i for i, p in enumerate(parts) if arrays and (_is_array(p) or isinstance(p, tuple | int))]
    group = _broadcast([tuple(p.shape) if _is_array(p) else (p[1],) for p in arrays])
    adjacent = advanced == list(range(advanced[0], advanced[-1] + 1)) if advanced else True
    # The result's axes: one per slice and per None; the advanced group's, in place of the first
    # advanced index when those sit next to each other, else first.
    out_shape: list[int] = [] if adjacent else list(group)
    group_at = 0
    slices: list[tuple[int, range, int]] = []  # (result axis, positions along x's axis, stride)
    offset = 0
    axis = 0
    for i, part in enumerate(parts):
        if adjacent and advanced and i == advanced[0]:
            group_at = len(out_shape)
            out_shape.extend(group)
        if part is None:
            out_shape.append(1)
        elif isinstance(part, slice):
            steps = range(*part.indices(shape[axis]))
            slices.append((len(out_shape), steps, strides[axis]))
            out_shape.append(len(steps))
        elif isinstance(part, int) and not advanced:
            offset += _checked(xp, part, shape[axis], axis) * strides[axis]
        axis += _takes_axis(part)
    result = tuple(out_shape)
    total = xp.full(result, offset, dtype=xp.int64, device=device)
    for at, steps, stride in slices:
        values = xp.arange(steps.start, steps.stop, steps.step, dtype=xp.int64, device=device) * stride
        total = total + xp.reshape(values, tuple(len(steps) if k == at else 1 for k in range(len(result))))
    axis = 0
    after = len(result) - group_at - len(group)
    for part in parts:
        if advanced and (_is_array(part) or isinstance(part, int)):
            values = _checked(xp, part, shape[axis], axis, 0 not in group)
            if isinstance(values, int):
                total = total + values * strides[axis]
            else:
                lead = (1,) * (len(group) - values.ndim) + tuple(values.shape)
                total = total + xp.reshape(values * strides[axis], (1,) * group_at + lead + (1,) * after)
        axis += _takes_axis(part)
    return total, result


def unravel(xp: Namespace, positions: Any, shape: tuple[int, ...]) -> tuple[Any, ...]:
    """Flat C-order ``positions`` in an array of ``shape`` as one integer array per axis: an index
    whose arrays all sit next to each other, which every library with integer-array indexing reads
    as numpy does (so ``x[unravel(...)] = v`` writes where numpy's ``x[key] = v`` would)."""
    index, rest = [], positions
    for n in reversed(shape):
        n = max(n, 1)  # (an axis of 0 elements leaves no positions to divide)
        index.append(rest % n)
        rest = rest // n
    return tuple(reversed(index))
