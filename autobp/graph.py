"""The dynamic graph: ``record``, which makes an op's output Tensor its node, and ``Node``, the view
of it that ``grad_fn`` shows.

Every op applied to a Tensor that requires grad returns a Tensor that is also the op's node: it
holds the op, its inputs, its keyword arguments and its output array (one object per recorded
op). ``autobp.engine`` walks these nodes backwards. What keeps
the saved arrays unchanged lives in ``autobp.storage``, what a tape is told in ``autobp.tape_notes``
and the ``WeakScalar`` in ``autobp.weak_scalar``; this module re-exports the names others use.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from autobp import backends

# The per-thread state of grad mode, which recording reads (and others as graph._local.modes).
from autobp.grad_mode import _local

# What keeps saved arrays unchanged, and what a tape is told. Imported by name: record reads them
# as this module's globals (a lookup through another module costs, W2). The `x as x` imports are
# re-exports: the op registry, the engine, the tape and in-place ops read them as graph.*.
from autobp.storage import (
    ArrayVersions,
    check_array_versions,
    copy_changeable_arrays,
    freeze_kwargs,
    is_foreign_array,
    may_change,
    record_foreign,
)
from autobp.storage import copy_array as copy_array
from autobp.storage import is_foreign_view as is_foreign_view
from autobp.storage import new_view as new_view
from autobp.storage import share_storage as share_storage
from autobp.tape_notes import (
    TapeError,
    check_values,
    mark_untapeable,
    note_detach,
    note_read,
)
from autobp.tape_notes import refuse_while_tracing as refuse_while_tracing
from autobp.tensor import NO_KWARGS, ONE, TWO, Tensor, _Kept
from autobp.weak_scalar import WeakScalar, constant_as_tensor

if TYPE_CHECKING:
    from autobp.ops.registry import OpDef

__all__ = [
    "Node",
    "record",
    "TapeError",
    "mark_untapeable",
    "note_read",
    "note_detach",
    "check_values",
    "WeakScalar",
]


class _Rare:
    """The fields few nodes use, kept out of the node's slots so that the usual node is small and
    cheap to make (W4 measures bytes per node, W2 the cost of recording one)."""

    __slots__ = ("_kwarg_versions", "array_versions", "hooks", "retained", "trace", "name", "leaf_hooks", "grad")

    def __init__(self) -> None:
        self.grad: Tensor | None = None  # Tensor.grad
        self.name: str | None = None  # Tensor.name
        self.leaf_hooks: dict[int, Any] | None = None  # a leaf's gradient hooks by handle key
        self._kwarg_versions: tuple[tuple[Tensor, int], ...] | None = None
        # The op's name and another library's arrays it saved, each with that library's own write
        # count when the op ran (torch's ``_version``): writes through ``.data`` bypass autobp's counters.
        self.array_versions: ArrayVersions | None = None
        self.hooks: list[Callable[[Tensor], Tensor | None]] | None = None
        self.retained: Any = None
        self.trace: Any = None

    @property
    def kwarg_versions(self) -> tuple[tuple[Tensor, int], ...] | None:
        """The keyword Tensors' versions. The engine reads them right before it runs the node's
        rules, to check them: the saved arrays of another library are checked at that moment too."""
        if self.array_versions is not None:
            check_array_versions(self.array_versions)
        return self._kwarg_versions

    @kwarg_versions.setter
    def kwarg_versions(self, value: tuple[tuple[Tensor, int], ...] | None) -> None:
        self._kwarg_versions = value


# A recorded op's node is its output Tensor itself (one object per op: W4's bytes and the cycle
# collector's passes count objects). Its fields are the Tensor's slots ``op`` (None on a leaf),
# ``_in0``/``_in1``/``_more`` (its inputs, its saved versions, and its keywords where it has any
# in a ``_Kept``: read whole as ``_inputs``, ``versions`` and ``kwargs``), ``out``, ``_rare``
# and ``_seq``; the fields few nodes use live on the ``_Rare`` part, read through the Tensor's
# ``grad``, ``_node_hooks``, ``_retained``, ``_trace``, ``_kwarg_versions`` and
# ``_array_versions`` (None until set).


def node_inputs(node: Tensor) -> tuple[Tensor, ...] | None:
    """A recorded op's inputs as Tensors (constants wrapped); None once the graph was freed.

    A Python number becomes a ``WeakScalar``: vjp rules on it compute as on the number itself,
    so ``float32 * 3`` stays float32 with ``create_graph`` as it does on the first-order path.
    The wrapped inputs are made once (viz and the tape tell constants by identity) and kept
    beside the recorded ones (``_Recorded``), never in their place: a later first-order walk
    hands its rules the numbers as they came, not a WeakScalar's 0-d array, which computes
    differently (numpy promotes ``float32 * int64[]`` to float64, array-api-strict refuses it).
    """
    inputs = node._inputs
    if type(inputs) is _Recorded:
        return inputs.wrapped
    if inputs is not None:
        for value in inputs:
            if not isinstance(value, Tensor):
                recorded = node._inputs = _Recorded(inputs)
                recorded.wrapped = tuple(
                    [v if isinstance(v, Tensor) else constant_as_tensor(v, node.out) for v in inputs]
                )
                return recorded.wrapped
    return inputs


def is_node(value: Any) -> bool:
    """Whether ``value`` is a recorded op's output (a graph node), not a leaf or a constant."""
    return isinstance(value, Tensor) and value.op is not None


class Node:
    """What ``tensor.grad_fn`` shows of the op that made ``tensor``: a view of the node, which is
    the tensor itself (autobp keeps one object per recorded op).

    ``name`` is the op's registry name, ``inputs`` the op's inputs as Tensors (constants wrapped;
    None once the graph was freed), ``next_functions`` the vertices feeding it. Two views of one
    node compare equal (and hash alike); each ``t.grad_fn`` is a new view, as cheap as a tuple.
    """

    __slots__ = ("_tensor",)

    _tensor: Tensor

    def __init__(self, tensor: Tensor) -> None:
        if not is_node(tensor):
            raise TypeError("Node: a view of a recorded op's output; leaves have no grad_fn")
        self._tensor = tensor

    @property
    def op(self) -> OpDef:
        """The op's registry entry (``autobp.ops.registry.OpDef``)."""
        return self._tensor.op

    @property
    def name(self) -> str:
        """The registry name of the op, e.g. ``"mul"``."""
        return self._tensor.op.name

    @property
    def inputs(self) -> tuple[Tensor, ...] | None:
        """The op's inputs as Tensors (constants wrapped); None once the graph was freed."""
        return node_inputs(self._tensor)

    @property
    def next_functions(self) -> tuple[Node | Tensor, ...]:
        """The graph vertices feeding this node: the inputs' nodes, or the leaf Tensors."""
        return tuple(t.grad_fn or t for t in self.inputs or () if t.requires_grad)

    @property
    def output(self) -> Tensor:
        """The tensor the op made (the node itself)."""
        return self._tensor

    kwargs = property(lambda self: self._tensor.kwargs, doc="The op's keyword arguments.")
    out = property(lambda self: self._tensor.out, doc="The output array the op made, which its rules read.")
    versions = property(lambda self: self._tensor.versions, doc="The inputs' versions when the op ran.")
    hooks = property(lambda self: self._tensor._node_hooks, doc="The output's gradient hooks, or None.")
    trace = property(lambda self: self._tensor._trace, doc="The forward's user stack (anomaly mode), or None.")
    kwarg_versions = property(lambda self: self._tensor._kwarg_versions, doc="Keyword Tensors and their versions.")

    def __eq__(self, other: object) -> bool:
        return type(other) is Node and other._tensor is self._tensor

    def __hash__(self) -> int:
        return id(self._tensor)

    def __repr__(self) -> str:
        return f"<{self.name} backward>"

    def release(self) -> None:
        """Drop the saved inputs and keywords (what backward does unless ``retain_graph``)."""
        release(self._tensor)


def release(node: Tensor) -> None:
    """Drop what a node holds for backward: its inputs (and with them the graph upstream) and
    keywords. Its output array stays: it is the tensor's own ``data`` (or was, before a ``t.data
    = ...``), which lives as long as the tensor does."""
    # (the engine's walk does this store inline: keep the two in step)
    node._in0 = node._in1 = node._more = None  # (the keywords and versions go with them: _Kept)


class _Recorded(tuple):  # type: ignore[type-arg]
    """A node's inputs as the op got them, which first-order walks read, carrying ``wrapped``:
    the same inputs with each constant a Tensor, made by ``node_inputs`` for rules on Tensors.
    Freed with the node's inputs (``release``); a slot for it would grow every node (W4)."""

    wrapped: tuple[Tensor, ...]


def record(
    opdef: OpDef,
    result: Any,
    args: tuple[Any, ...],
    kwargs: Mapping[str, Any],
    versioned: bool,
    constants: bool,
) -> Tensor:
    """Wrap an op's result in a Tensor that is the op's graph node (``grad_fn`` shows it).

    ``args`` are the op's inputs (Tensors and constants); ``result`` is never one of their arrays
    (the public function made a view of an input it got back). The public function tells whether
    an input's storage was ever written in place (``versioned``) and whether a constant other than
    a number came (``constants``), from the loop over the inputs it runs anyway. Saved inputs must
    not change before backward: a Tensor is version-checked then; a writeable numpy array (a
    constant, which has no version) is copied here, unless a tape is tracing (it recognises its
    inputs by identity).
    """
    saved = args
    if constants and _local.modes.tape is None:
        for value in args:
            if type(value) is np.ndarray and may_change(value):
                saved = copy_changeable_arrays(args)
                break
    # Tensor._wrap's work without its call (recording is the eager path's hot spot: W2, W4).
    # The Tensor is its own node: one object per op (graph.Node is the view grad_fn shows).
    node = out = _new_object(Tensor)
    numpy_result = type(result) is np.ndarray
    if not numpy_result:
        if isinstance(result, np.generic):  # numpy's scalar results (every op of W4's 0-d chain): inline,
            result = np.asarray(result)  # as_array's frame cost W4 3% in instructions
            numpy_result = True
        else:
            result = backends.as_array(result)
            numpy_result = type(result) is np.ndarray  # (a Python number's result is numpy's)
    out.data = result
    out._requires_grad = True
    out._vc = None
    out.op = opdef
    # The inputs in slots (Tensor._keep's work, inline): no tuple kept per node of one or two
    # inputs without keywords; the versions tuple in _more where it saved any
    versions = _versions(saved) if versioned else None
    if kwargs or not 0 < len(saved) <= 2:
        out._in0 = out._in1 = None
        out._more = _Kept(saved, kwargs or NO_KWARGS, versions)
    elif len(saved) == 2:
        out._in0, out._in1 = saved
        out._more = TWO if versions is None else versions
    else:
        out._in0 = saved[0]
        out._more = ONE if versions is None else versions
    # The saved output: the array the rules read, which `out.data = ...` cannot change. (numpy
    # scalars became 0-d arrays above: one object for the output wherever it is used, which a tape
    # recognises by identity, autobp.tape.)
    out.out = result
    out._rare = None
    out._dual = None
    out._seq = _next_seq()
    if kwargs and _local.modes.tape is None:
        freeze_kwargs(node, kwargs)
    if _anomaly_hook is not None:
        _anomaly_hook(node)
    # The output may be saved for backward: writes through `.data` must raise (docs/trust.md).
    if numpy_result:
        # (setflags(write) positionally: a keyword costs numpy its argument parsing, twice the call)
        result.setflags(False)  # (and a quarter of `flags.writeable = False`)
        if result.base is not None:  # a view of an input's memory: one storage, one version counter
            share_storage(out, args)
    else:  # other libraries have no read-only flag (docs/arrays.md)
        record_foreign(out)
        if is_foreign_view(result):
            share_storage(out, args)
    return out


def as_gradient(value: Any, like: Tensor, what: str) -> Tensor:
    """A gradient the user gave (a backward seed, a hook's replacement) as a Tensor of ``like``'s
    library, device and dtype: a list or a number is converted; another library's array (or one on
    another device) is an error, never a silent copy between libraries.

    >>> import autobp as ab
    >>> as_gradient([1, 2], ab.tensor([0.5, 1.5]), "backward").dtype
    dtype('float64')
    """
    data = value.data if isinstance(value, Tensor) else value
    target = like.data
    if type(target) is np.ndarray and not is_foreign_array(data):
        return value if isinstance(value, Tensor) else Tensor(value, dtype=target.dtype)
    source = backends.library_of(data)
    if source is not None:
        try:
            backends.namespace(target, data)
        except backends.MixedArraysError:
            raise backends.MixedArraysError(
                f"{what}: the gradient is {backends.describe(data)} but the tensor is {backends.describe(target)}; "
                f"give it in the tensor's library and device, e.g. ab.tensor(...).to({backends.library_name(target)!r})"
            ) from None
        if isinstance(value, Tensor):
            return value
        if getattr(data, "requires_grad", False) is True:  # (torch.asarray would keep it on torch's graph)
            raise TypeError(
                f"{what}: the gradient is {backends.describe(data)}, which requires grad in torch; autobp "
                "passes no gradient to torch's autograd: give ab.tensor(g.detach(), requires_grad=True) "
                "for a gradient to differentiate through (create_graph=True), or g.detach()"
            )
    xp = backends.namespace(target)
    return Tensor._wrap(xp.asarray(data, dtype=target.dtype, device=xp.device(target), copy=True))


def _versions(args: tuple[Any, ...]) -> tuple[int, ...]:
    """Each input's version now (0 for a non-Tensor), read off the counters (not the property)."""
    if len(args) == 2:  # (a product or a sum with a stepped parameter, W1's: no list comprehension's frame)
        x, y = args
        return (
            x._vc[0] if isinstance(x, Tensor) and x._vc is not None else 0,
            y._vc[0] if isinstance(y, Tensor) and y._vc is not None else 0,
        )
    return tuple([v._vc[0] if isinstance(v, Tensor) and v._vc is not None else 0 for v in args])


_new_object = object.__new__  # an instance with no slot set: record() fills them

# A node's _seq counter (a C-level `next`: atomic under the GIL, so threads recording at once get
# distinct numbers).
_next_seq = itertools.count(1).__next__

# Set by autobp.anomaly while detect_anomaly() is active; None keeps recording free of its cost.
_anomaly_hook: Callable[[Tensor], None] | None = None

# forward.py's name for it (it wraps a tangent rule's constant inputs as node_inputs does).
_as_tensor = constant_as_tensor
