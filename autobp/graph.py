"""The dynamic graph: the ``Node`` each recorded op leaves behind, and what a tape is told.

Every op applied to a Tensor that requires grad records a ``Node``: the op, its inputs, its
keyword arguments and its output array. ``autobp.engine`` walks these nodes backwards.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

# The per-thread state of grad mode, which recording reads (and others as graph._mode).
from autobp import backends
from autobp.grad_mode import _mode
from autobp.tensor import Tensor

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


class TapeError(RuntimeError):
    """A taped function did what its tape cannot replay faithfully (see ``autobp.tape``)."""


def refuse_while_tracing(what: str) -> None:
    """Raise ``TapeError`` if a taped function is being traced: ``what`` cannot go on a tape."""
    if _mode.tape is not None:
        raise TapeError(f"tape: {what} inside a taped function cannot be replayed; use autobp.functional instead")


def mark_untapeable(why: str) -> None:
    """Tell a tape being traced (``autobp.tape``) that the function must run eagerly.

    Called by vjp rules that read values to decide what to compute (``max``, ``prod``): a tape
    would replay the decision made for the traced values. Does nothing when no tape is tracing.
    """
    if _mode.tape is not None and _mode.tape.untapeable is None:  # the first reason is the one shown
        _mode.tape.untapeable = why


def note_read(tensor: Tensor, how: str) -> None:
    """Tell a tape being traced that ``tensor``'s values go into Python (``bool()``, ``.item()``...).

    A tape guards what such a read decides, or runs the function eagerly (``autobp.tape``).
    Called by the Tensor methods that hand values to Python; does nothing when no tape is tracing.
    """
    if _mode.tape is not None:
        _mode.tape.read(tensor, how)


def note_detach(tensor: Tensor, view: Any) -> None:
    """Tell a tape being traced that ``view`` (made by ``detach()``) holds ``tensor``'s values."""
    if _mode.tape is not None:
        _mode.tape.alias(tensor, view)


def check_values(label: str, check: Callable[..., None], *values: Any, **kwargs: Any) -> None:
    """Run ``check`` on the arrays of ``values`` (it raises on bad values, e.g. a class index out
    of range); a tape being traced records it as a step, so that every replay runs it too.

    For checks that composite functions make in Python (``cross_entropy``'s targets); an op's
    forward that validates values needs nothing: a replay runs every step the call ran.

    >>> import numpy as np
    >>> def positive(values):
    ...     if (values <= 0).any():
    ...         raise ValueError("demo: values must be positive")
    >>> check_values("demo", positive, np.array([-1.0]))
    Traceback (most recent call last):
    ValueError: demo: values must be positive
    """
    check(*[value.data if isinstance(value, Tensor) else value for value in values], **kwargs)
    if _mode.tape is not None:
        _mode.tape.check(label, check, values, kwargs)


class _Rare:
    """The fields few nodes use, kept out of ``Node`` so that the usual node is small and cheap to
    make (W4 measures bytes per node, W2 the cost of recording one)."""

    __slots__ = ("_kwarg_versions", "array_versions", "hooks", "retained", "trace")

    def __init__(self) -> None:
        self._kwarg_versions: tuple[tuple[Tensor, int], ...] | None = None
        # The op's name and another library's arrays it saved, each with that library's own write
        # count when the op ran (torch's ``_version``): writes through ``.data`` bypass autobp's counters.
        self.array_versions: tuple[str, tuple[tuple[Any, int, str], ...]] | None = None
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


def _rare_field(name: str, doc: str) -> Any:
    """A Node attribute stored on its ``_rare`` part: reads give None until first set."""

    def get(node: Node) -> Any:
        rare = node._rare
        return None if rare is None else getattr(rare, name)

    def set_(node: Node, value: Any) -> None:
        rare = node._rare
        if rare is None:
            if value is None:
                return  # None is what a node without the part reads already
            rare = node._rare = _Rare()
        setattr(rare, name, value)

    return property(get, set_, doc=doc)


class Node:
    """One recorded op application: the ``grad_fn`` of the Tensor it produced.

    ``inputs`` are the op's inputs as Tensors; ``out`` is the output array. Constants (a Python
    float, an array) are kept as they came and become Tensors only when asked for, so a long
    chain of ``y * 2.0`` costs no Tensor per constant. ``release`` drops inputs and output
    once backward has used them.

    ``versions`` are the inputs' versions when the op ran, to catch in-place changes before
    backward; None when all were 0 (no tuple). Every node that reads a trained parameter has them
    (an optimizer step bumps its version), so they are a slot. What few nodes need (keyword
    Tensors' versions, hooks, retain_grad, anomaly traces) lives in one optional part, ``_rare``:
    None for the usual node, so that the engine tells the usual node by one attribute read.
    """

    __slots__ = ("op", "_inputs", "kwargs", "out", "versions", "_rare", "__weakref__")

    kwarg_versions = _rare_field(
        "kwarg_versions",
        "Tensors the op read from its keywords (an index, say) with their versions: the vjp reads them "
        "again, so an in-place change after the op must be caught as well.",
    )
    hooks = _rare_field("hooks", "Gradient hooks of the output (autobp.hooks); None when there are none.")
    retained = _rare_field("retained", "A weakref to the non-leaf output whose .grad is kept (retain_grad).")
    trace = _rare_field("trace", "The forward's user stack, recorded in anomaly mode.")
    array_versions = _rare_field(
        "array_versions", "Another library's saved arrays with its write counts when the op ran (torch)."
    )

    op: OpDef
    _inputs: tuple[Any, ...] | None
    kwargs: Mapping[str, Any]
    out: Any
    versions: tuple[int, ...] | None
    _rare: _Rare | None

    def __init__(self) -> None:
        # record() makes every node and fills its slots itself: a constructor call costs a Python
        # frame per recorded op (W2, W4), and record already loops over the inputs.
        raise TypeError("Node: nodes are made by autobp.graph.record when an op runs on Tensors")

    @property
    def inputs(self) -> tuple[Tensor, ...] | None:
        """The op's inputs as Tensors (constants wrapped); None once the graph was freed.

        A Python number becomes a ``WeakScalar``: vjp rules on it compute as on the number itself,
        so ``float32 * 3`` stays float32 with ``create_graph`` as it does on the first-order path.
        """
        inputs = self._inputs
        if inputs is not None:
            for value in inputs:
                if not isinstance(value, Tensor):
                    inputs = tuple([v if isinstance(v, Tensor) else _as_tensor(v, self.out) for v in inputs])
                    self._inputs = inputs
                    break
        return inputs

    @property
    def name(self) -> str:
        """The registry name of the op, e.g. ``"mul"``."""
        return self.op.name

    def __repr__(self) -> str:
        return f"<{self.op.name} backward>"

    @property
    def next_functions(self) -> tuple[Node | Tensor, ...]:
        """The graph vertices feeding this node: the inputs' nodes, or the leaf Tensors."""
        return tuple(t.grad_fn or t for t in self.inputs or () if t.requires_grad)

    def release(self) -> None:
        self._inputs = None
        self.out = None
        self.kwargs = NO_KWARGS


# Shared by every node recorded without keywords: one empty mapping instead of one per node.
NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


def _owner(array: Any) -> Any:
    """The object that owns ``array``'s memory (numpy points a view of a view at the owner)."""
    if type(array) is not np.ndarray:
        return _foreign_owner(array)
    base = array.base
    while isinstance(base, np.ndarray):
        array, base = base, base.base
    return array


def _foreign_owner(array: Any) -> Any:
    """``_owner`` for another library's array: torch's ``_base`` is the tensor a view looks into
    (the root already); cupy, like numpy, chains ``base``; array_api_strict has no views to ask about."""
    if backends.library_name(array) == "torch":
        base = array._base
        return array if base is None else base
    base = getattr(array, "base", None)
    while base is not None and type(base) is type(array):
        array, base = base, base.base
    return array


def copy_array(array: Any) -> Any:
    """A copy of an array of any library (numpy's: writeable)."""
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


def _is_foreign_array(value: Any) -> bool:
    """Whether ``value`` is an array of a library other than numpy (a torch tensor, a cupy array...)."""
    return type(value) is not np.ndarray and backends.library_of(value) is not None


def share_storage(out: Tensor, args: tuple[Any, ...]) -> None:
    """Give ``out`` the version counter of the input Tensor whose memory it views.

    Called for op results that are views (``out.data.base`` is set): a slice, a reshape, a
    transpose. A write through the base or any view is then seen by every node that saved one.
    """
    owner = _owner(out.data)
    for value in args:
        if isinstance(value, Tensor) and _owner(value.data) is owner:
            out._share_storage_with(value)
            return
    for value in args:
        writeable = value.flags.writeable if type(value) is np.ndarray else _is_foreign_array(value)
        if writeable and not isinstance(value, Tensor) and _owner(value) is owner:
            # A view of the caller's array (ab.reshape(buffer, ...)), which has no counter: a graph
            # saving the result would not see the caller refill the buffer. Copy, as record does.
            copied = copy_array(out.data)
            node = out.grad_fn
            if node is not None:
                node.out = copied
                if type(copied) is np.ndarray:
                    copied.setflags(write=False)
                else:
                    _save_array_versions(node, copied)  # (the node's output is the copy now)
            out.data = copied
            return


def _frozen(value: Any, tensors: list[tuple[Tensor, int]]) -> Any:
    """A keyword value as the vjp will read it: Tensors noted with their version, arrays copied."""
    if isinstance(value, Tensor):
        tensors.append((value, value._version))
    elif isinstance(value, np.ndarray):
        if value.flags.writeable:  # the caller may write into it before backward
            value = value.copy()
            value.setflags(write=False)
    elif _is_foreign_array(value):  # (no read-only flag to set: the copy is the node's own)
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
    return not (isinstance(bound, Tensor | np.ndarray) or _is_foreign_array(bound))


def _fixed(bound: Any) -> Any:
    return operator.index(bound.data if isinstance(bound, Tensor) else bound) if not _is_fixed(bound) else bound


def _freeze_kwargs(node: Node, kwargs: Mapping[str, Any]) -> None:
    tensors: list[tuple[Tensor, int]] = []
    node.kwargs = {name: _frozen(value, tensors) for name, value in kwargs.items()}
    if tensors:
        node.kwarg_versions = tuple(tensors)


def _copy_arrays(args: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple([v.copy() if type(v) is np.ndarray and v.flags.writeable else v for v in args])


def record(opdef: OpDef, result: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Tensor:
    """Wrap an op's result in a Tensor whose ``grad_fn`` remembers how it was made.

    Saved inputs must not change before backward: a Tensor is version-checked then; a writeable numpy
    array (a constant, which has no version) is copied here, unless a tape is tracing (it recognises
    its inputs by identity).
    """
    saved = args
    versioned = False  # whether an input's storage was ever written in place
    for value in args:
        if isinstance(value, Tensor):
            if value.data is result:  # an op returned its input: freeze a view, never the input itself
                result = new_view(result)
            if value._vc is not None and value._vc[0]:
                versioned = True
        elif type(value) is np.ndarray:
            if value is result:
                result = new_view(result)
            if saved is args and _mode.tape is None and value.flags.writeable:
                saved = _copy_arrays(args)
    # Tensor._wrap's work without its call (recording is the eager path's hot spot: W2, W4).
    out = _new_object(Tensor)
    out.data = result if type(result) is np.ndarray else backends.as_array(result)
    out.requires_grad = True
    out.grad = None
    out.name = None
    out._vc = None
    out._hooks = None
    # The node saves the Tensor's own array (numpy scalars become 0-d arrays above): one object
    # for the output wherever it is used, which a tape recognises by identity (autobp.tape).
    node = out.grad_fn = _new_object(Node)
    node.op = opdef
    node._inputs = saved
    node.kwargs = kwargs or NO_KWARGS
    node.out = out.data
    # The versions to check before backward; a node whose inputs are all at version 0 keeps none.
    node.versions = _versions(saved) if versioned else None
    node._rare = None
    if kwargs and _mode.tape is None:
        _freeze_kwargs(node, kwargs)
    if _anomaly_hook is not None:
        _anomaly_hook(node)
    # The output may be saved for backward: writes through `.data` must raise (docs/trust.md).
    if type(out.data) is np.ndarray:
        out.data.setflags(write=False)  # (setflags: half the cost of `flags.writeable = False`)
    else:  # other libraries have no read-only flag (docs/arrays.md)
        _record_foreign(node)
    return out


def _record_foreign(node: Node) -> None:
    """``record``'s care for another library's arrays: copy the array operands a caller could still
    write into (as numpy's are copied), and note the write counts of the saved arrays where the
    library keeps one (torch's ``_version``), so that backward sees writes through ``.data``."""
    inputs = node._inputs or ()
    if _mode.tape is None and any([not isinstance(v, Tensor) and _is_foreign_array(v) for v in inputs]):
        inputs = node._inputs = tuple(
            [copy_array(v) if not isinstance(v, Tensor) and _is_foreign_array(v) else v for v in inputs]
        )
    _save_array_versions(node, node.out)


def _save_array_versions(node: Node, out: Any) -> None:
    """Note the write counts of ``out`` (the node's output array) and of its input Tensors' arrays,
    for libraries that count writes (torch); replaces what was noted before."""
    entries = [(out, out._version, "its output")] if hasattr(out, "_version") else []
    for i, value in enumerate(node._inputs or ()):
        if isinstance(value, Tensor) and hasattr(value.data, "_version") and type(value) is not WeakScalar:
            entries.append((value.data, value.data._version, f"input {i}"))
    if entries:
        node.array_versions = (node.op.name, tuple(entries))


def check_array_versions(saved: tuple[str, tuple[tuple[Any, int, str], ...]]) -> None:
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
    if type(target) is np.ndarray and not _is_foreign_array(data):
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
    xp = backends.namespace(target)
    return Tensor._wrap(xp.asarray(data, dtype=target.dtype, device=xp.device(target), copy=True))


def _versions(args: tuple[Any, ...]) -> tuple[int, ...]:
    """Each input's version now (0 for a non-Tensor), read off the counters (not the property)."""
    return tuple([v._vc[0] if isinstance(v, Tensor) and v._vc is not None else 0 for v in args])


_new_object = object.__new__  # an instance with no slot set: record() fills them

# Set by autobp.anomaly while detect_anomaly() is active; None keeps recording free of its cost.
_anomaly_hook: Callable[[Node], None] | None = None


_PYTHON_NUMBERS = (bool, int, float, complex)


def _as_tensor(value: Any, like: Any = None) -> Tensor:
    """A constant input as a Tensor; a Python number as a ``WeakScalar`` in the library of the
    array ``like`` (an op's output: the number then combines with the op's other arrays)."""
    if type(value) not in _PYTHON_NUMBERS:
        return Tensor._wrap(value)
    scalar = WeakScalar(value)
    if like is not None and type(like) is not np.ndarray and backends.library_of(like) is not None:
        xp = backends.namespace(like)
        scalar.data = xp.asarray(value, dtype=getattr(xp, str(scalar.data.dtype)), device=xp.device(like))
    return scalar


def _binary(apply: Callable[[Any, Any], Any], reflected: bool = False) -> Callable[[WeakScalar, Any], Any]:
    def method(self: WeakScalar, other: Any) -> Any:
        other = other.value if isinstance(other, WeakScalar) else other
        return apply(other, self.value) if reflected else apply(self.value, other)

    return method


class WeakScalar(Tensor):
    """A Python number among an op's inputs, as a vjp rule sees it with ``create_graph=True``.

    Shapes: () (``data`` is a 0-d array, for code that inspects inputs). Arithmetic and
    comparisons act on the number itself (``value``), as they do on the first-order path, so
    numpy treats it as a weak scalar: ``grad * 3`` keeps a float32 ``grad`` float32. (A 0-d
    array would promote it to float64.) Python's operator rules try a subclass's reflected method
    first, so ``grad * y`` reaches ``y.__rmul__`` too.

    >>> import numpy as np
    >>> import autobp as ab
    >>> x = ab.tensor(np.ones(2, np.float32), requires_grad=True)
    >>> (g,) = ab.grad((x ** 3).sum(), [x], create_graph=True)  # the rule computes 3 * x ** 2
    >>> g.dtype
    dtype('float32')
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.value = value

    __hash__ = Tensor.__hash__
    __add__, __radd__ = _binary(operator.add), _binary(operator.add, True)
    __sub__, __rsub__ = _binary(operator.sub), _binary(operator.sub, True)
    __mul__, __rmul__ = _binary(operator.mul), _binary(operator.mul, True)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _binary(operator.truediv, True)
    __pow__, __rpow__ = _binary(operator.pow), _binary(operator.pow, True)  # type: ignore[assignment]
    __and__, __rand__ = _binary(operator.and_), _binary(operator.and_, True)
    __or__, __ror__ = _binary(operator.or_), _binary(operator.or_, True)
    __eq__, __ne__ = _binary(operator.eq), _binary(operator.ne)  # type: ignore[assignment]
    __lt__, __le__ = _binary(operator.lt), _binary(operator.le)
    __gt__, __ge__ = _binary(operator.gt), _binary(operator.ge)

    def __neg__(self) -> Any:
        return -self.value

    def __abs__(self) -> Any:
        return abs(self.value)

    def __bool__(self) -> bool:
        return bool(self.value)
