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

import gc
import sys
import weakref
from typing import Any

import numpy as np

from autobp import backends, grad_mode, graph, storage
from autobp import ops as _ops
from autobp.forward import carries_tangent
from autobp.inplace import _inplace, _unwrap, rebound
from autobp.ops import indexing as _indexing
from autobp.tensor import Tensor, _refuse_non_boolean

TENSOR_METHODS = (
    "_version",
    "_share_storage_with",
    "__setitem__",
    "__iadd__",
    "__isub__",
    "__imul__",
    "__itruediv__",
    "__ipow__",
    "__imatmul__",
    "__iand__",
    "__ior__",
)


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
    """Make this tensor (a view of ``base``'s memory) use ``base``'s version counter.

    A counter shared with a tensor that requires grad also holds a weak reference to it (after
    the version): a view of it that records nothing (made under ``no_grad()``) is then refused a
    write in place with grad mode on (``autobp.inplace``), as that tensor itself is.
    """
    counter = base._vc
    if counter is None:
        counter = base._vc = [0]
    if base._requires_grad and len(counter) == 1:
        mark_requiring_grad(counter, base)
    self._vc = counter


def mark_requiring_grad(counter: list[Any], tensor: Tensor) -> None:
    """Note in a storage's version ``counter`` that ``tensor``, which requires grad, is on it
    (unless another tensor on it that requires grad is noted already)."""
    if len(counter) == 1:
        counter.append(weakref.ref(tensor))
        return
    noted = counter[1]()
    if noted is None or not noted._requires_grad:
        counter[1] = weakref.ref(tensor)


def __setitem__(self: Tensor, index: Any, value: Any) -> None:
    index = tuple(_unwrap(i) for i in index) if isinstance(index, tuple) else _unwrap(index)
    _inplace(self, "setitem", lambda out, item: _indexing.set_at(out, index, item), value)


def _augmented(tensor: Tensor, name: str, ufunc: Any, other: Any, op_name: str) -> Tensor:
    """``tensor <name>= other``: a write in place, or the name rebound to ``op(tensor, other)``.

    Shapes: other broadcasts to tensor's shape; the result has tensor's shape and dtype.
    """
    references = sys.getrefcount(tensor)  # (compared with _unaliased's, taken the same way)
    if tensor.name is _PROBE:
        global _probe_references
        _probe_references = references
        return tensor  # (_unaliased's probe: counted, nothing else)
    # A graph tensor cannot change in place; ``y += 1`` then rebinds ``y`` to a new tensor,
    # exactly what Python does for types without in-place operators. So does ``c += x``
    # when x requires grad (writing into c would drop x's gradient), and when either carries a
    # forward-mode tangent (the sum carries the tangents; a write would drop x's, or stale c's).
    if (
        tensor.op is not None
        or (isinstance(other, Tensor) and other.requires_grad and grad_mode.is_grad_enabled())
        or (graph._local.modes.forward is not None and (carries_tangent(other) or carries_tangent(tensor)))
    ) and not (tensor.op is None and tensor.requires_grad):
        # (a leaf that requires grad goes to _inplace, which refuses ``w += x`` as it refuses
        # ``w += 1.0``: a rebound w would be a new non-leaf, and an optimizer would step the old one)
        _refuse_unlike_a_write(tensor, name, other, references)
        result: Tensor = getattr(_ops, op_name)(tensor, other)
        return rebound(tensor, name, result, other)
    if type(tensor.data) is np.ndarray:
        return _inplace(tensor, name, ufunc, other)
    # (a library autobp does not write into rebinds the name: refused as the graph's rebind is)
    return _inplace(
        tensor, name, ufunc, other, before_rebind=lambda: _refuse_rebinding(tensor, name, other, references)
    )


# The references to a tensor that ``_augmented`` counts when one local name alone holds it
# (measured once, through the same call path: ``_unaliased``), and the count its probe saw.
_UNALIASED: tuple[int, int] | None = None
_probe_references = 0
_PROBE: Any = object()  # the name of _unaliased's probe tensor, which _augmented only counts


def _unaliased(self_operand: bool) -> int:
    """The reference count ``_augmented`` sees for a tensor that one local name alone holds
    (``h += 1``), or that is its own operand besides (``h += h``).

    Measured, not assumed, since interpreters count differently (CPython's references on the
    evaluation stack), with tracing off: a tracer reading the frame's locals (a debugger) holds
    one more, and a count taken then would let an alias through for good. Where the count is
    higher (a module-level name on CPython 3.14, whose local loads are borrowed; a frame whose
    ``locals()`` were taken, a debugger's), a rebind is refused too often: an error, never a
    rebind let through. (Calling ``t.__iadd__(u)`` by hand counts one fewer: not covered.)"""
    global _UNALIASED
    if _UNALIASED is None:
        tracer = sys.gettrace()
        sys.settrace(None)
        try:
            probe = Tensor._wrap(np.zeros(()))
            probe.name = _PROBE
            probe += 0.0  # (counted and returned as it is)
            alone = _probe_references
            probe += probe
            _UNALIASED = (alone, _probe_references)
        finally:
            sys.settrace(tracer)
    return _UNALIASED[self_operand]


def _refuse_rebinding(tensor: Tensor, name: str, other: Any, references: int) -> None:
    """``_refuse_unlike_a_write`` for a tensor off the graph whose library autobp does not write
    into (array-api-strict: ``autobp.inplace``), whose ``+=`` rebinds the name. A leaf that requires
    grad is refused too: a write keeps it a leaf that requires grad, where the rebound tensor
    (made under ``no_grad()``) requires none, and an optimizer or a list holding it keeps the old
    one: ``for p in params: p -= lr * p.grad`` left every parameter as it was, without an error."""
    if tensor.requires_grad:
        raise RuntimeError(
            f"{name}: tensor {backends.describe(tensor)} is a leaf that requires grad, and autobp writes into "
            f"no {backends.library_name(tensor.data)} array (the standard leaves open which arrays share memory): "
            "rebinding the name would make a new tensor that requires no grad, and whatever holds this one (an "
            "optimizer, a list of parameters) would keep the old values. Step parameters with autobp.optim, "
            "which writes them on every library, or rebind on purpose: w = (w - lr * w.grad).detach().requires_grad_()"
        )
    _refuse_unlike_a_write(
        tensor, name, other, references, f"autobp writes into no {backends.library_name(tensor.data)} array"
    )


def _refuse_unlike_a_write(
    tensor: Tensor, name: str, other: Any, references: int, why: str = "it is on a graph, or the operand requires grad"
) -> None:
    """Refuse to rebind ``tensor`` where the rebind would not give what a write in place gives:
    another live Tensor shares its memory (a view, the base of a live view, a live ``detach()``:
    ``v = h[0:2]; v += 1`` left h unchanged, so ``(h * h).sum()`` came out as if nothing was
    written); another name or object holds the tensor itself (``g = h; g *= 3``, an argument the
    caller still holds, a list, an op that read it and keeps it for its backward: they would all
    keep the old values); or grad is off (the rebound tensor would leave the graph, where PyTorch
    writes into it and keeps it there). Refusing too often is possible (an object that is gone
    but not yet collected), a wrong number is not."""
    if not grad_mode.is_grad_enabled() and tensor.op is not None:
        raise RuntimeError(
            f"{name}: tensor {backends.describe(tensor)} is on a graph and grad is off (no_grad): a write in "
            "place would change values its graph may read, and rebinding the name would take it off its graph. "
            f"Write it out of place where grad is on, or on a copy off the graph (t.detach() {name[:-1]} ...)"
        )
    # Every Tensor sharing a storage holds the one counter list (share_storage, detach), and nothing
    # else keeps it: more than its slot and getrefcount's argument means another Tensor shares it.
    shared = tensor._vc is not None and sys.getrefcount(tensor._vc) > 2
    # An array handed out (``t.data``, ``t.numpy()``, ``np.asarray(t)``: the array itself) would keep
    # the old values too. Its holders inside autobp: the tensor's slot, its node's saved output
    # (``out``), the local ``data`` here and getrefcount's argument (a tape's recorder holds arrays
    # too: not counted while tracing), and on torch each write count its node saved of it
    # (storage.record_foreign; another node that saved it holds the tensor too, refused below).
    data = tensor.data
    holders = 4 if tensor.op is not None and tensor.out is data else 3
    numpy_array = type(data) is np.ndarray
    saved = None if numpy_array else tensor._array_versions
    if saved is not None:
        holders += sum([array is data for array, _, _ in saved[1]])
    handed_out = (
        (numpy_array or backends.library_name(data) in ("array_api_strict", "torch"))
        and graph._local.modes.tape is None
        and sys.getrefcount(data) > holders
    )
    # A torch copy standing where numpy gives a view (v = h[::-1]): numpy refuses the rebind of
    # the view; torch's rebind left h as it was, where a user of numpy's semantics expects h written.
    copied = None if numpy_array else storage.copy_for_view(data)
    # (and the base of a live such copy, whose rebind numpy refuses as the base of a live view's)
    copy_of_it = None if numpy_array else storage.live_copy(data)
    shared = shared or copied is not None or copy_of_it is not None
    held = 0  # (forward mode holds no reference: a tensor keeps its tangents itself)
    allowed = _unaliased(other is tensor)
    if not (shared or handed_out) and references - held > allowed:
        held += _grad_fn_views(tensor)  # (only where the count would refuse: it scans the heap)
    if shared or handed_out or references - held > allowed:
        what = (
            f"holds a copy made by {copied}, where numpy gives a view of another tensor (torch has no "
            "negative-step views), so a write would not reach that tensor as numpy's would"
            if copied is not None
            else f"has a live copy read from it by {copy_of_it}, where numpy reads a view (torch has no "
            "negative-step views), so the copy would keep the old values where numpy's view would not"
            if copy_of_it is not None
            else "shares its memory with another live tensor (it is a view: a slice, a transpose, a row of a loop; "
            "or it has one, or a detach())"
            if shared
            else "shares its memory with an array handed out (t.data, t.numpy(), np.asarray(t), or a view of one)"
            if handed_out
            else "is held by more than this name (another name, the caller of a function that was given it, "
            "a list or an attribute, or an op that read it and keeps it for its backward)"
        )
        raise RuntimeError(
            f"{name}: tensor {backends.describe(tensor)} {what}. It cannot be written in place ({why}), "
            "and rebinding this name would leave the others with the "
            "old values. Build the new values out of place under a new name (y = h + 1, ab.where(mask, h + 1, "
            "h)), or rebind explicitly on a copy (v = v.clone() + 1)"
        )


def _grad_fn_views(tensor: Tensor) -> int:
    """How many ``grad_fn`` views (``graph.Node``) hold ``tensor``: each holds the tensor it shows
    (the tensor is its own node), but stands for the op that made it, which a rebind leaves as it
    was. ``fn = h.grad_fn; h += 1`` rebinds, as it did when the node was an object of its own."""
    return sum([type(holder) is graph.Node for holder in gc.get_referrers(tensor)])


def __iadd__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "+=", np.add, other, "add")


def __isub__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "-=", np.subtract, other, "sub")


def __imul__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "*=", np.multiply, other, "mul")


def __itruediv__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "/=", np.true_divide, other, "div")


# Without these, Python would run ``v **= 2`` as ``v = v ** 2`` with none of the checks above (a
# view's base left unchanged, a leaf turned into a non-leaf, a (2,) tensor made (2, 2)).
def __ipow__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "**=", np.power, other, "pow")


def __imatmul__(self: Tensor, other: Any) -> Tensor:
    return _augmented(self, "@=", np.matmul, other, "matmul")


def __iand__(self: Tensor, other: Any) -> Tensor:
    _refuse_non_boolean("&=", "logical_and", self, other)
    return _augmented(self, "&=", np.logical_and, other, "logical_and")


def __ior__(self: Tensor, other: Any) -> Tensor:
    _refuse_non_boolean("|=", "logical_or", self, other)
    return _augmented(self, "|=", np.logical_or, other, "logical_or")
