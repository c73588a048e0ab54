"""What keeps the arrays a node saved for backward unchanged, or tells when they changed.

Which object owns an array's memory (numpy's ``base`` chain, torch's ``_base``), so that a view
shares its input's version counter; copies of the arrays a caller could still write into (a
constant operand, a keyword index); and, for another library's arrays, which have no read-only
flag, the library's own write count (torch's ``_version``), checked before backward reads them.
``autobp.graph.record`` calls these; the hot path reads them as its own module globals.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from autobp import backends
from autobp.backends.numpy import memory_owner as numpy_owner
from autobp.grad_mode import _local
from autobp.tensor import Tensor
from autobp.weak_scalar import WeakScalar

__all__ = [
    "copy_array",
    "new_view",
    "is_foreign_array",
    "share_storage",
    "copy_changeable_arrays",
    "may_change",
    "freeze_kwargs",
    "record_foreign",
    "check_array_versions",
    "unaliased",
    "mark_copy_for_view",
    "copy_for_view",
    "live_copy",
]

# A foreign array's saved write counts: the op's name, then (array, its write count, its role).
ArrayVersions = tuple[str, tuple[tuple[Any, int, str], ...]]


def _owner(array: Any) -> Any:
    """The object that owns ``array``'s memory (each backend module's ``memory_owner``; for
    array-api-strict, the numpy array inside that owns it)."""
    if type(array) is np.ndarray:
        return array if array.base is None else numpy_owner(array)
    lib = backends.library_of(array)
    return array if lib is None else lib.memory_owner(array)


# The attribute that marks another library's array as a copy standing where numpy gives a view.
_COPY_FOR_VIEW = "_autobp_copy_for_view"
# The attribute on an array's memory listing the copies read from it where numpy gives views:
# (a weak reference to the copy, what read it).
_COPIES = "_autobp_copies_for_views"
# The attribute that marks a torch view of a broadcast view (``share_storage``).
_BROADCAST_MEMORY = "_autobp_broadcast_memory"


def in_broadcast_memory(data: Any) -> bool:
    """Whether a torch tensor's elements are shared with others, as a broadcast view's are: it has
    a zero stride over more than one element (``expand``), or it views such a tensor (``b[0]`` of
    a broadcast row, which is the row itself). numpy's broadcast views, and every view of them,
    are read-only; torch writes one element for many (docs/arrays.md)."""
    if getattr(data, _BROADCAST_MEMORY, False):
        return True
    strides: tuple[int, ...] = data.stride()
    shape = data.shape
    return 0 not in shape and any(stride == 0 and size > 1 for stride, size in zip(strides, shape, strict=True))


def mark_copy_for_view(array: Any, read: str, source: Any) -> None:
    """Note on ``array``'s memory that it is a copy ``read`` made of ``source`` where numpy returns
    a view (``t[::-1]`` on torch, which has no negative strides): a write into it, or into any view
    of it, would not reach the array it was read from, as numpy's would; ``autobp.inplace`` refuses
    it. And on ``source``'s memory that the copy was read from it: a write there would not reach
    the copy while the copy lives (``live_copy``)."""
    owner = _owner(array)
    if type(owner) is not np.ndarray:  # (array-api-strict's is numpy's, which takes no attribute: and
        setattr(owner, _COPY_FOR_VIEW, read)  # writes into array-api-strict arrays are refused already)
        source_owner = _owner(source)
        copies = getattr(source_owner, _COPIES, None)
        if copies is None:
            copies = []
            setattr(source_owner, _COPIES, copies)
        copies.append((weakref.ref(owner), read))


def live_copy(array: Any) -> str | None:
    """What read a copy standing for a view of ``array``'s memory that is still alive (None: no
    such copy lives). numpy's view would see a write into ``array``; the copy would keep the old
    values, so ``autobp.inplace`` and the optimizers refuse the write while it lives."""
    copies = getattr(_owner(array), _COPIES, None) if type(array) is not np.ndarray else None
    if not copies:
        return None
    copies[:] = [(copy, read) for copy, read in copies if copy() is not None]
    return copies[0][1] if copies else None


def copy_for_view(array: Any) -> str | None:
    """What read ``array``'s memory as a copy where numpy gives a view (None: nothing did)."""
    return getattr(_owner(array), _COPY_FOR_VIEW, None)


def unaliased(results: list[Any], given: list[Any], copy: Callable[[Tensor], Tensor] | None = None) -> list[Any]:
    """``results`` (a list of Tensors or None, changed in place) with a copy in place of each whose
    array shares memory with one of ``given`` (the arrays a caller passed in: backward seeds,
    tangents) or with an earlier result's: a first-order gradient or a tangent is a Tensor with a
    version counter of its own, so an in-place write to it must not reach what the caller passed,
    or another result.

    An identity vjp or jvp (``x + 0``) hands its seed through unchanged; before this,
    ``ab.grad(x + 0.0, [x], grad_outputs=[u])[0].add_(1)`` changed ``u``. ``copy`` makes the
    copies (default: a new array, off any graph); results that carry forward-mode tangents need
    an op's copy, which carries them too.
    """
    # The owners' ids: each owner stays alive while this runs (the caller holds ``given``, and a
    # result's array holds its owner), so no id is reused.
    # (a numpy array of its own memory, as most seeds, tangents and gradients are, is its owner: no call)
    taken = {id(a) if type(a) is np.ndarray and a.base is None else id(_owner(a)) for a in given}
    for i, result in enumerate(results):
        if result is not None:
            data = result.data
            owner = id(data) if type(data) is np.ndarray and data.base is None else id(_owner(data))
            if owner in taken:
                results[i] = Tensor._wrap(copy_array(result.data)) if copy is None else copy(result)
            else:
                taken.add(owner)
    return results


def copy_array(array: Any) -> Any:
    """A copy of an array of any library (numpy's: writeable).

    Shapes: the copy has ``array``'s shape and dtype.

    >>> import numpy as np
    >>> source = np.zeros(2)
    >>> copy_array(source) is source
    False
    """
    if type(array) is np.ndarray:
        return array.copy()
    return backends.namespace(array).asarray(array, copy=True)


def new_view(array: Any) -> Any:
    """A new array object on ``array``'s memory (a node never saves the object an op returned as its input)."""
    if type(array) is np.ndarray:
        return array.view()
    if backends.library_name(array) == "torch":
        return array.view_as(array)
    return backends.namespace(array).reshape(array, array.shape)


def is_foreign_array(value: Any) -> bool:
    """Whether ``value`` is an array of a library other than numpy (a torch tensor, a cupy array...)."""
    return type(value) is not np.ndarray and backends.library_of(value) is not None


def is_foreign_view(data: Any) -> bool:
    """Whether another library's array is a view of another array's memory."""
    return bool(backends.namespace(data).is_view(data))


def share_storage(out: Tensor, args: tuple[Any, ...]) -> None:
    """Give ``out`` the version counter of the input Tensor whose memory it views.

    Called for op results that are views (``out.data.base`` is set): a slice, a reshape, a
    transpose. A write through the base or any view is then seen by every node that saved one.
    A torch view of a broadcast view is marked as one (``in_broadcast_memory``), as numpy's
    views of a read-only array are read-only.
    """
    data = out.data
    owner = _owner(data)
    for value in args:
        if isinstance(value, Tensor) and _owner(value.data) is owner:
            out._share_storage_with(value)
            torch_view = type(data) is not np.ndarray and backends.library_name(data) == "torch"
            if torch_view and in_broadcast_memory(value.data):
                setattr(data, _BROADCAST_MEMORY, True)
            return
    for value in args:
        writeable = value.flags.writeable if type(value) is np.ndarray else is_foreign_array(value)
        if writeable and not isinstance(value, Tensor) and _owner(value) is owner:
            # A view of the caller's array (ab.reshape(buffer, ...)), which has no counter: a graph
            # saving the result would not see the caller refill the buffer. Copy, as record does.
            copied = copy_array(out.data)
            if out.op is not None:  # (the tensor is its node: the saved output is the copy too)
                out.out = copied
                if type(copied) is np.ndarray:
                    copied.setflags(write=False)
                else:
                    _save_array_versions(out, copied)  # (the node's output is the copy now)
            out.data = copied
            return


def _frozen(value: Any, tensors: list[tuple[Tensor, int]]) -> Any:
    """A keyword value as the vjp will read it: Tensors noted with their version, arrays copied."""
    if isinstance(value, Tensor):
        tensors.append((value, value._version))
    elif isinstance(value, np.ndarray):
        if may_change(value):  # the caller may write into it (or through its base) before backward
            value = value.copy()
            value.setflags(write=False)
    elif is_foreign_array(value):  # (no read-only flag to set: the copy is the node's own)
        value = copy_array(value)
    elif isinstance(value, tuple):
        return tuple([_frozen(part, tensors) for part in value])
    elif isinstance(value, list):  # a list index, possibly nested
        return [_frozen(part, tensors) for part in value]
    elif type(value) is slice and not (_is_fixed(value.start) and _is_fixed(value.stop) and _is_fixed(value.step)):
        # A bound given as a Tensor or a 0-d array (x[i:j]) can change in place after the op: the
        # vjp must scatter into the elements the forward read, so it keeps the bounds as ints.
        return slice(*[_fixed(b) for b in (value.start, value.stop, value.step)])
    return value


def _is_fixed(bound: Any) -> bool:
    if bound is None or type(bound) is int:
        return True
    return not (isinstance(bound, Tensor | np.ndarray) or is_foreign_array(bound))


def _fixed(bound: Any) -> Any:
    return operator.index(bound.data if isinstance(bound, Tensor) else bound) if not _is_fixed(bound) else bound


def freeze_kwargs(node: Tensor, kwargs: Mapping[str, Any]) -> None:
    """Store ``kwargs`` on ``node`` as its vjp will read them (arrays copied, Tensors' versions noted)."""
    tensors: list[tuple[Tensor, int]] = []
    node.kwargs = {name: _frozen(value, tensors) for name, value in kwargs.items()}
    if tensors:
        node._kwarg_versions = tuple(tensors)


def may_change(array: np.ndarray) -> bool:
    """Whether a numpy array's values can change after an op read it: it is writeable, or it is a
    view (read-only or not) of memory that may be written through its base or another view, as
    ``t.detach().numpy()`` of a leaf or ``np.broadcast_to(a, ...)`` is. A read-only array that owns
    its memory cannot, unless its owner made it read-only while still writing through an older view."""
    return array.flags.writeable or array.base is not None


def copy_changeable_arrays(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """``args`` with each numpy array that ``may_change`` copied (a constant the caller could
    refill before backward). A copy keeps the array's layout (order "K"): a Fortran-ordered copy
    of a Fortran-ordered array, so the backward's sums add in the order the forward's did, and
    as when the array comes in a Tensor (``ndarray.copy`` makes C order: the last bit differed)."""
    return tuple([v.copy(order="K") if type(v) is np.ndarray and may_change(v) else v for v in args])


def record_foreign(node: Tensor) -> None:
    """``record``'s care for another library's arrays: copy the array operands a caller could still
    write into (as numpy's are copied), and note the write counts of the saved arrays where the
    library keeps one (torch's ``_version``), so that backward sees writes through ``.data``."""
    inputs = node._inputs or ()
    if _local.modes.tape is None and any([not isinstance(v, Tensor) and is_foreign_array(v) for v in inputs]):
        inputs = node._inputs = tuple(
            [copy_array(v) if not isinstance(v, Tensor) and is_foreign_array(v) else v for v in inputs]
        )
    _save_array_versions(node, node.out)


def _save_array_versions(node: Tensor, out: Any) -> None:
    """Note the write counts of ``out`` (the node's output array) and of its input Tensors' arrays,
    for libraries that count writes (torch); replaces what was noted before."""
    entries = [(out, out._version, "its output")] if hasattr(out, "_version") else []
    for i, value in enumerate(node._inputs or ()):
        if isinstance(value, Tensor) and hasattr(value.data, "_version") and type(value) is not WeakScalar:
            entries.append((value.data, value.data._version, f"input {i}"))
    if entries:
        node._array_versions = (node.op.name, tuple(entries))


def check_array_versions(saved: ArrayVersions) -> None:
    """Raise if an array a node saved was written since the op ran (read off the library's own
    write count: a write through ``t.data``, or through a view sharing its memory)."""
    name, entries = saved
    for array, version, role in entries:
        if array._version != version:
            raise RuntimeError(
                f"{name}: {role} ({backends.describe(array)}), saved for backward, was written in place "
                f"after the op ran ({backends.library_name(array)} counts {array._version - version} write(s) "
                "since), e.g. through .data or a view of its memory; gradients through it would be wrong. "
                "Write into a copy (t.data.clone()), or recompute the graph after the change."
            )
