"""The Tensor: an array, whether it requires a gradient, and the node (``grad_fn``) that made it.

Operators and methods are the ops of ``autobp.ops`` themselves (``t + u`` is ``ab.add(t, u)``,
``t.sum(1)`` is ``ab.sum(t, 1)``), listed in a table in the class body; the Tensor holds no math,
so the engine and the ops stay the only places that touch arrays. Three groups of methods live in
their own modules and are installed as they stand (``install_ops``): handing values to Python and
numpy (``autobp.tensor.values``: repr, len, bool, float, ``__array__``...), in-place assignment
with its version counter (``autobp.tensor.inplace``), and copies and pickles
(``autobp.tensor.copies``); ``autobp.tensor.data`` turns the constructor's data into an array.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from autobp import backends
from autobp.grad_mode import _local  # the per-thread modes
from autobp.tensor import method_table
from autobp.tensor.data import CopyRefused, check_requires_grad, copied_array
from autobp.tensor.method_table import NAMESAKE, binary, ops_named

if TYPE_CHECKING:  # at run time install_ops() binds these names: each of these modules imports Tensor
    from autobp import engine, graph, hooks
    from autobp import ops as _ops
    from autobp.graph import Node
    from autobp.inplace import _inplace
    from autobp.ops.registry import OpDef
    from autobp.tensor import copies as tensor_copies
    from autobp.tensor import inplace as tensor_inplace
    from autobp.tensor import values as tensor_values

__all__ = ["Tensor", "tensor"]


class _InputCount:
    """What a node's ``_more`` holds when its op had one input (in ``_in0``) or two (``_in0``,
    ``_in1``): ``ONE`` or ``TWO``, told apart by identity."""

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count = count

    def __repr__(self) -> str:
        return "ONE" if self.count == 1 else "TWO"


ONE, TWO = _InputCount(1), _InputCount(2)

# Shared by every node recorded without keywords: one empty mapping instead of one per node.
NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


class _Kept:
    """What a node's ``_more`` holds when the node keeps keywords, or another count of inputs than
    one or two: its inputs (any count: a tuple, or ``graph._Recorded`` once its constants were
    wrapped), its op's keywords (``NO_KWARGS`` if none) and its inputs' versions when the op ran
    (None: all 0).

    A node of one or two inputs without keywords (nearly every node) keeps them in ``_in0`` and
    ``_in1`` and, in ``_more``, ``ONE`` or ``TWO`` when it saved no versions (W2's and W4's
    every node), else the plain tuple of its inputs' versions (one per input: a node reading a
    parameter an optimizer stepped, W1's). No slot for keywords or versions: a node fits
    pymalloc's 128-byte size class, where the cycle collector walks a fifth fewer bytes per node
    (W4), and a versioned node costs one tuple, which the collector stops tracking."""

    __slots__ = ("inputs", "kwargs", "versions")

    def __init__(self, inputs: Any, kwargs: Mapping[str, Any], versions: tuple[int, ...] | None) -> None:
        self.inputs, self.kwargs, self.versions = inputs, kwargs, versions


def _read_rare(tensor: Tensor, name: str) -> Any:
    """Field ``name`` of ``tensor``'s rare part (``graph._Rare``), or None without one."""
    rare = getattr(tensor, "_rare", None)  # (unset: a subclass may name a tensor before Tensor.__init__)
    return None if rare is None else getattr(rare, name)


def _write_rare(tensor: Tensor, name: str, value: Any) -> None:
    """Set field ``name`` of ``tensor``'s rare part, making the part on the first value but None."""
    rare = getattr(tensor, "_rare", None)
    if rare is None:
        if value is None:
            return  # None is what a tensor without the part reads already
        rare = tensor._rare = graph._Rare()
    setattr(rare, name, value)


def _rare_field(name: str, doc: str) -> Any:
    """A tensor's attribute stored on its ``_rare`` part: reads give None until set."""
    return property(
        lambda tensor: _read_rare(tensor, name), lambda tensor, value: _write_rare(tensor, name, value), doc=doc
    )


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    Shapes: any; ``data`` is an array of the same shape and dtype: a numpy array, or another
    library's (a torch tensor, a CuPy array), which keeps its library and device. Python floats
    become float64, arrays keep their dtype, and float32 stays float32 through every op and
    gradient. The constructor copies ``data``, so later changes to the caller's array cannot
    change the graph. The copy is a constant: of a Tensor that requires grad (grad mode on) or
    carries a forward-mode tangent, or of a list holding one, it raises ``TypeError`` rather than
    drop that derivative; ``t.clone()`` or ``ab.stack`` keeps it, ``t.detach()`` drops it on
    purpose. Operators and numpy-like methods are the ops themselves (``t.sum(1)`` is
    ``ab.sum(t, 1)``), so they take numpy's keywords (``axis=``, ``keepdims=``).

    >>> import autobp as ab
    >>> x = ab.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> (x * x).sum().backward()
    >>> x.grad.numpy().tolist()
    [[2.0, 4.0], [6.0, 8.0]]
    """

    # The first five are every tensor's (``grad`` is on the rare part: most tensors never get one);
    # the rest are the node's of a tensor an op recorded (its ``grad_fn``): ``op`` is None on any
    # other tensor, and the rest are set by ``graph.record`` only.
    __slots__ = (
        "data",
        "_requires_grad",
        "_vc",
        "_rare",
        "_dual",
        "__weakref__",
        "op",
        "_in0",
        "_in1",
        "_more",
        "out",
        "_seq",
    )

    # numpy must defer to Tensor: `array * tensor` calls Tensor.__rmul__ instead of making an object array.
    __array_ufunc__ = None
    __hash__ = object.__hash__  # identity hashing; __eq__ is elementwise

    data: np.ndarray
    _requires_grad: bool
    # The version counter of this tensor's storage: a one-element list shared by a base and all
    # its views (slices, reshapes, transposes, detach()), bumped by every in-place write through
    # any of them; graph nodes record it (docs/trust.md). None: version 0, storage not shared yet.
    # (A second item, once a tensor that requires grad is on it: a weakref to that tensor.)
    _vc: list[Any] | None
    # What few tensors use (a name, leaf hooks) and few nodes (hooks, retain_grad, anomaly traces):
    # graph._Rare, or None. Read through the properties below, which give None until set.
    _rare: Any
    # Forward mode's tangents of this tensor, by level (autobp.forward.Level): None, or
    # {level: (tangent, the version it describes)}. On the tensor, not in a table of the level's:
    # a table held every intermediate of a forward-mode pass (and its tangent) until the level
    # ended, where forward mode needs only the live ones (jvp of a 200-step loop kept 64 MB).
    _dual: dict[Any, tuple[Any, int]] | None
    # The node's fields (autobp.graph): the op that made this tensor, or None (a leaf, a constant).
    op: OpDef  # (None on a tensor no op recorded: read the other fields where it is set)
    # The op's inputs as it got them: an op of one or two inputs (nearly every one) with no keywords
    # keeps them in _in0 and _in1, and in _more ONE or TWO (no saved versions) or the tuple of its
    # inputs' versions; any other node a _Kept in _more (its inputs, keywords and versions); None
    # once freed. A tuple of inputs per node would be a second object the cycle collector walks,
    # and 56 bytes (W4). Read and written whole through the ``_inputs``, ``kwargs`` and
    # ``versions`` properties, or slot by slot on the engine's hot path.
    _in0: Any
    _in1: Any
    _more: Any
    out: Any  # the output array the rules read (``data`` may be rebound since)
    _seq: int  # when it was recorded: every consumer has a greater number (autobp.engine.order)

    # Fields few tensors use, on the ``_rare`` part (graph._Rare): None until set.
    _hooks = _rare_field("leaf_hooks", "A leaf's gradient hooks by handle key (autobp.hooks), or None.")
    _node_hooks = _rare_field("hooks", "Gradient hooks of a non-leaf tensor (autobp.hooks), or None.")
    _retained = _rare_field("retained", "True when the non-leaf tensor keeps its .grad (retain_grad).")
    _trace = _rare_field("trace", "The forward's user stack, recorded in anomaly mode.")
    _kwarg_versions = _rare_field(
        "kwarg_versions",
        "Tensors the op read from its keywords (an index, say) with their versions: the vjp reads them "
        "again, so an in-place change after the op must be caught as well.",
    )
    _array_versions = _rare_field(
        "array_versions", "Another library's saved arrays with its write counts when the op ran (torch)."
    )

    @property
    def name(self) -> str | None:
        """A label for graph pictures and saved files (nn modules set dotted names); None by default."""
        return _read_rare(self, "name")  # type: ignore[no-any-return]

    @name.setter
    def name(self, name: str | None) -> None:
        _write_rare(self, "name", name)

    @property
    def grad(self) -> Tensor | None:
        """The gradient ``backward`` accumulated into this tensor (a leaf that requires grad, or a
        non-leaf after ``retain_grad()``); None until then. Settable (``p.grad = None``)."""
        rare = self._rare
        return None if rare is None else rare.grad  # type: ignore[no-any-return]

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        _write_rare(self, "grad", value)

    @property
    def _inputs(self) -> tuple[Any, ...] | None:
        """The recorded op's inputs as it got them (Tensors and constants); None once freed."""
        more = self._more
        if more is TWO:
            return (self._in0, self._in1)
        if more is ONE:
            return (self._in0,)
        if type(more) is tuple:  # (the versions of the one or two inputs in the slots)
            return (self._in0, self._in1) if len(more) == 2 else (self._in0,)
        return None if more is None else more.inputs  # type: ignore[no-any-return]

    @_inputs.setter
    def _inputs(self, inputs: tuple[Any, ...] | None) -> None:
        more = getattr(self, "_more", None)
        if type(more) is _Kept:
            self._keep(inputs, more.kwargs, more.versions)
        else:
            self._keep(inputs, NO_KWARGS, more if type(more) is tuple else None)

    @property
    def kwargs(self) -> Mapping[str, Any]:
        """The keyword arguments of the op that made this tensor (empty if none, or once freed)."""
        more = self._more
        return more.kwargs if type(more) is _Kept else NO_KWARGS  # type: ignore[no-any-return]

    @kwargs.setter
    def kwargs(self, kwargs: Mapping[str, Any]) -> None:
        self._keep(self._inputs, kwargs or NO_KWARGS, self.versions)

    @property
    def versions(self) -> tuple[int, ...] | None:
        """The versions of the op's inputs when it ran (None: all were at 0, or freed)."""
        more = self._more
        if type(more) is tuple:
            return more
        return more.versions if type(more) is _Kept else None  # type: ignore[no-any-return]

    @versions.setter
    def versions(self, versions: tuple[int, ...] | None) -> None:
        self._keep(self._inputs, self.kwargs, versions)

    def _keep(self, inputs: Any, kwargs: Mapping[str, Any], versions: tuple[int, ...] | None) -> None:
        """Set the node's inputs, keywords and versions (what ``record`` does, slot by slot, inline)."""
        if inputs is None:  # freed: the keywords and versions go with the inputs
            self._in0 = self._in1 = self._more = None
        elif kwargs is NO_KWARGS and type(inputs) is tuple and 0 < len(inputs) <= 2:
            if len(inputs) == 2:
                self._in0, self._in1 = inputs
            else:
                self._in0, self._in1 = inputs[0], None
            if versions is not None:
                self._more = tuple(versions)  # (a plain tuple: one version per input)
            else:
                self._more = TWO if len(inputs) == 2 else ONE
        else:  # keywords, a tuple of none or three or more, or graph._Recorded (constants wrapped)
            self._in0 = self._in1 = None
            self._more = _Kept(inputs, kwargs, versions)

    def __init__(self, data: Any, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            graph.note_read(data, "a copy into a new Tensor")  # the copy is a constant to a tape
            if data._requires_grad or _local.modes.forward is not None:
                refuse_dropping(data, self, False)
            array = copied_array(data.data, dtype)
        elif type(data) is list or type(data) is tuple:
            # numpy reads the Tensors inside through __array__, which refuses (refuse_dropping)
            # those that would lose a gradient or a tangent while this is set
            modes = _local.modes
            outer, modes.copying = modes.copying, self
            try:
                array = copied_array(data, dtype)
            finally:
                modes.copying = outer
        else:
            array = copied_array(data, dtype)
        if requires_grad:
            check_requires_grad(array, "tensor")
        self.data = array
        self._requires_grad = bool(requires_grad)
        self.op = None  # type: ignore[assignment]
        self._vc = None
        self._rare = None
        self._dual = None

    @classmethod
    def _wrap(cls, array: Any, requires_grad: bool = False) -> Tensor:
        """Wrap an op's result without copying (the fast internal constructor): a tensor on no graph."""
        tensor = object.__new__(cls if cls is Tensor else Tensor)
        tensor.data = array if type(array) is np.ndarray else backends.as_array(array)
        tensor._requires_grad = requires_grad
        tensor.op = None  # type: ignore[assignment]
        tensor._vc = None
        tensor._rare = None
        tensor._dual = None
        return tensor

    # -- array-like attributes -------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype[Any]:
        return self.data.dtype

    @property
    def size(self) -> int:
        # A plain int on purpose: an int subclass that could explain PyTorch's x.size() is not a weak
        # scalar to numpy, so float32 / x.size would turn float64 (tests/test_benchmarks.py, W3).
        data = self.data
        return data.size if type(data) is np.ndarray else math.prod(data.shape)  # torch's .size is a method

    @property
    def is_leaf(self) -> bool:
        """True for tensors made by the user (not by an op on tensors that require grad)."""
        return self.op is None

    @property
    def grad_fn(self) -> Node | None:
        """The op that made this tensor, as a ``graph.Node`` view (``.name``, ``.inputs``,
        ``.next_functions``), or None for a leaf. The tensor is its own graph node: each read gives
        a new view, and views of one node compare equal."""
        return None if self.op is None else graph.Node(self)

    @property
    def T(self) -> Tensor:
        """The transpose (all axes reversed)."""
        return _ops.transpose(self)

    @property
    def library(self) -> str:
        """The array library that holds the data: ``"numpy"``, ``"torch"``, ``"cupy"``..."""
        return backends.library_name(self.data)

    @property
    def device(self) -> str:
        """Where the data lives: ``"cpu"``, ``"cuda:0"``..."""
        return backends.namespace(self.data).device_name(self.data)

    def numpy(self) -> np.ndarray:
        """The data as a numpy array: the array itself for numpy (no copy; do not modify it), a
        copy on the host for other libraries."""
        return self._host(".numpy()")

    def to(self, library: str | None = None, device: Any = None) -> Tensor:
        """This tensor's data in another array library or on another device, as a new leaf.

        ``t.to("torch", device="cuda")``, ``t.to("cupy")``, ``t.to("numpy")``; ``library=None``
        keeps the library and moves the device. The result is a copy, detached from the graph
        (as ``detach()``), with ``requires_grad`` kept; move parameters before building a graph.
        """
        graph.note_read(self, ".to()")
        target = backends.library(library) if library is not None else backends.namespace(self.data)
        moved = Tensor._wrap(backends.move(self.data, target, device), requires_grad=self.requires_grad)
        moved.name = self.name
        return moved

    def item(self) -> Any:
        """The value of a one-element tensor as a Python scalar."""
        if self.size != 1:
            raise ValueError(f"item: only one-element tensors convert to a Python scalar, got shape {self.shape}")
        return self._host(".item()").item()

    def tolist(self) -> Any:
        return self._host(".tolist()").tolist()

    # -- autograd --------------------------------------------------------------------------
    def backward(self, gradient: Any = None, retain_graph: bool | None = None, create_graph: bool = False) -> None:
        """Accumulate the gradient of this tensor into every leaf's ``.grad``.

        ``gradient`` is required unless this tensor has one element. The graph is freed
        afterwards unless ``retain_graph=True`` (or ``create_graph=True``).
        """
        engine.backward(self, gradient, retain_graph, create_graph)

    def detach(self) -> Tensor:
        """The same data, cut from the graph (shares memory).

        The detached view of a tensor that requires grad is read-only, so that writes through it
        cannot change values a graph saved for backward (see docs/trust.md).
        """
        if self.requires_grad and type(self.data) is np.ndarray and self.data.flags.writeable:
            view = self.data.view()
            view.flags.writeable = False
            graph.note_detach(self, view)  # a tape reads the view from self's slot
            detached = Tensor._wrap(view)
        else:
            detached = Tensor._wrap(self.data)
            graph.note_detach(self, self.data)  # a tape guards self (the detached Tensor may be a temporary)
        detached._share_storage_with(self)  # one storage, one version counter (as in PyTorch)
        return detached

    @property
    def requires_grad(self) -> bool:
        """Whether gradients flow back to this tensor (ops on it are recorded).

        Set it on a leaf before computing with the tensor. Turned on afterwards, it also bumps the
        version counter: a graph that used the tensor as a constant then refuses backward, instead
        of giving it the part of its gradient from the ops that happened to be recorded.
        """
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, requires_grad: bool) -> None:
        if self.op is not None:
            if requires_grad:
                return  # (an op's result requires grad already)
            raise RuntimeError(
                "requires_grad: only leaf tensors can change requires_grad; for a value without a graph use t.detach()"
            )
        self._set_requires_grad(requires_grad, "requires_grad")

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` on a leaf, in place; returns self."""
        if not self.is_leaf:
            raise RuntimeError("requires_grad_: only leaf tensors can change requires_grad")
        self._set_requires_grad(requires_grad, "requires_grad_")
        return self

    def _set_requires_grad(self, requires_grad: bool, what: str) -> None:
        if requires_grad:
            check_requires_grad(self.data, what)
            # (getattr: a tensor being unpickled sets its slots one by one, this one maybe first)
            if not getattr(self, "_requires_grad", True):
                counter = self._vc
                if counter is not None:  # views of it exist: they must know
                    tensor_inplace.mark_requiring_grad(counter, self)
                # Turned on after the tensor may have been used as a constant: a graph that saved it
                # would send it only the gradients of the ops recorded for other reasons. The bump
                # makes such a graph refuse backward (engine.versions) instead.
                before = self._version
                self._version = before + 1
                if graph._local.modes.forward is not None:  # (nothing was written: its tangents still hold)
                    from autobp.forward import restamp

                    restamp(self, before)
        self._requires_grad = bool(requires_grad)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> Any:
        """Call ``hook(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it."""
        return hooks.register_hook(self, hook)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf tensor after backward."""
        hooks.retain_grad(self)

    # -- in-place ops: each bumps _version, so graphs that saved this tensor notice ----------
    def add_(self, other: Any) -> Tensor:
        """``self += other`` in place; returns self. Shapes: other broadcasts to self's shape."""
        return _inplace(self, "add_", np.add, other)

    def sub_(self, other: Any) -> Tensor:
        """``self -= other`` in place; returns self. Shapes: other broadcasts to self's shape."""
        return _inplace(self, "sub_", np.subtract, other)

    def mul_(self, other: Any) -> Tensor:
        """``self *= other`` in place; returns self. Shapes: other broadcasts to self's shape."""
        return _inplace(self, "mul_", np.multiply, other)

    def div_(self, other: Any) -> Tensor:
        """``self /= other`` in place; returns self. Shapes: other broadcasts to self's shape."""
        return _inplace(self, "div_", np.true_divide, other)

    def copy_(self, source: Any) -> Tensor:
        """Copy ``source`` into self in place; returns self. Shapes: source broadcasts to self's shape."""
        return _inplace(self, "copy_", lambda out, value: np.copyto(out, value, casting="same_kind"), source)

    def fill_(self, value: Any) -> Tensor:
        """Set every element to the scalar ``value`` in place; returns self."""
        if np.ndim(value.data if isinstance(value, Tensor) else value) != 0:
            raise ValueError(f"fill_: value must be a scalar, got {np.shape(value)}; use copy_ for arrays")
        return _inplace(self, "fill_", lambda out, scalar: out.fill(scalar), value)

    def zero_(self) -> Tensor:
        """Set every element to zero in place; returns self."""
        return _inplace(self, "zero_", lambda out, scalar: out.fill(scalar), 0)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:
        """Clip the values into ``[min, max]`` in place; returns self."""
        if min is None and max is None:
            raise ValueError("clamp_: give at least one of min and max")
        return _inplace(self, "clamp_", lambda out, lo, hi: np.clip(out, lo, hi, out=out), min, max)

    # -- operators and numpy-like methods: the ops themselves, put in place by install_ops, so
    # ``t * u`` runs ab.mul(t, u) with no Python frame between (benchmarks/instructions.py w2) --
    __add__, __radd__ = binary("add")
    __sub__, __rsub__ = binary("sub")
    __mul__, __rmul__ = binary("mul")
    __truediv__, __rtruediv__ = binary("div")
    __pow__, __rpow__ = binary("pow")
    __matmul__, __rmatmul__ = binary("matmul")
    __eq__, __ne__ = ops_named("equal", "not_equal")  # type: ignore[assignment]  # elementwise, as numpy's
    __lt__, __le__, __gt__, __ge__ = ops_named("less", "less_equal", "greater", "greater_equal")
    __neg__, __abs__, __getitem__ = ops_named("neg", "abs", "getitem")
    exp = log = sin = cos = square = sqrt = tanh = sigmoid = relu = abs = clip = astype = NAMESAKE
    # Reductions take numpy's keywords (axis=, keepdims=); PyTorch's dim= is an error saying so.
    sum = mean = max = min = prod = var = std = logsumexp = argmax = argmin = NAMESAKE
    expand_dims = swapaxes = squeeze = flatten = dot = copy = NAMESAKE
    clone = method_table.op("copy")

    if TYPE_CHECKING:  # installed by install_ops() as they stand in their modules (no wrapper frame)
        _host, __array__, __repr__ = tensor_values._host, tensor_values.__array__, tensor_values.__repr__
        __array_function__ = tensor_values.__array_function__
        __len__, __iter__, __bool__ = tensor_values.__len__, tensor_values.__iter__, tensor_values.__bool__
        __float__, __int__, __index__ = tensor_values.__float__, tensor_values.__int__, tensor_values.__index__
        __str__, __format__ = tensor_values.__str__, tensor_values.__format__
        __setitem__, __iadd__, __isub__ = tensor_inplace.__setitem__, tensor_inplace.__iadd__, tensor_inplace.__isub__
        __imul__, __itruediv__ = tensor_inplace.__imul__, tensor_inplace.__itruediv__
        __ipow__, __imatmul__ = tensor_inplace.__ipow__, tensor_inplace.__imatmul__
        __iand__, __ior__ = tensor_inplace.__iand__, tensor_inplace.__ior__
        _version, _share_storage_with = tensor_inplace._version, tensor_inplace._share_storage_with
        __copy__, __deepcopy__ = tensor_copies.__copy__, tensor_copies.__deepcopy__
        __reduce_ex__ = tensor_copies.__reduce_ex__

    def __pos__(self) -> Tensor:
        return self

    # `&`, `|`, `~` are logical on booleans (`flag & t`, as vjp rules on Python numbers write) and
    # refused on anything else: numpy's and PyTorch's meaning on integers is bitwise ([4, 5] & [2, 3]
    # is [0, 1]), which autobp has no op for, and logical_and gave [True, True] there without a word.
    def __and__(self, other: Any) -> Tensor:
        """``self & other``: elementwise logical and of booleans. Shapes: broadcast."""
        return _logic("&", "logical_and", self, other)

    def __rand__(self, other: Any) -> Tensor:
        return _logic("&", "logical_and", other, self)

    def __or__(self, other: Any) -> Tensor:
        """``self | other``: elementwise logical or of booleans. Shapes: broadcast."""
        return _logic("|", "logical_or", self, other)

    def __ror__(self, other: Any) -> Tensor:
        return _logic("|", "logical_or", other, self)

    def __invert__(self) -> Tensor:
        """``~self``: elementwise logical not of booleans. Shapes: same as self."""
        _refuse_non_boolean("~", "logical_not", self)
        return _ops.logical_not(self)  # type: ignore[no-any-return]

    def reshape(self, *shape: Any) -> Tensor:
        return _ops.reshape(self, shape[0] if len(shape) == 1 else shape)

    def transpose(self, *axes: Any) -> Tensor:
        """Permute the axes: ``t.transpose(1, 0)``, ``t.transpose((1, 0))`` or all reversed."""
        order: Any = axes[0] if len(axes) == 1 and (axes[0] is None or isinstance(axes[0], tuple | list)) else axes
        return _ops.transpose(self, order or None)


def refuse_dropping(source: Tensor, made: Tensor, inside: bool) -> None:
    """Refuse ``Tensor(source)`` (or ``source`` inside the list given, ``inside``) where ``source``
    requires grad with grad mode on, or carries a forward-mode tangent at an active level.

    The copy is a new leaf of the same values, a constant by definition (as ``copy.copy``), so the
    gradient or the tangent through it would be lost with no error: ``t -> (ab.tensor(t) * t).sum()``
    got the gradient ``t`` where it is ``2 t``, and its jvp the same. (PyTorch warns and drops it.)
    As numpy's functions refuse such a tensor (``Tensor.__array_function__``): under ``no_grad()``
    a tensor that requires grad is copied as before, a tangent is refused there too (tangents
    flow there). Checked on the copy's rare paths only: other constructions pay nothing.
    """
    lost = derivative_lost(source)
    if lost is None:
        return
    call = "ab.tensor" if type(made) is Tensor else type(made).__name__
    if inside:
        raise CopyRefused(
            f"tensor: the data holds tensor {backends.describe(source)}, which {lost} would be lost "
            f"({call}([...]) makes a constant of the values). Use ab.stack([...]) or ab.concatenate([...]) "
            "to keep it, or detach() the elements for a constant on purpose"
        )
    raise CopyRefused(
        f"tensor: the data is tensor {backends.describe(source)}, which {lost} would be lost "
        f"({call}(t) makes a constant copy). Use t.clone() for a copy that keeps it, or {call}(t.detach()) "
        "for a constant on purpose"
    )


def derivative_lost(source: Any) -> str | None:
    """What a constant made of ``source``'s values would lose, said after "which" (None: nothing):
    ``source`` requires grad with grad mode on, or carries a forward-mode tangent."""
    from autobp.forward import carries_tangent

    if not isinstance(source, Tensor):
        return None
    if source._requires_grad and _local.modes.enabled:
        return "requires grad; the copy is on no graph, so the gradient through it"
    if carries_tangent(source):
        return "carries a forward-mode tangent; the copy carries none, so the tangent through it"
    return None


def first_requiring_grad(values: Any) -> Tensor | None:
    """The first Tensor that requires grad among ``values`` (and the tuples and lists in them),
    or None: what a keyword argument or a numpy function would not differentiate."""
    for value in values:
        if isinstance(value, Tensor):
            if value._requires_grad:
                return value
        elif isinstance(value, tuple | list):  # (namedtuples too)
            found = first_requiring_grad(value)
            if found is not None:
                return found
    return None


def _is_boolean(value: Any) -> bool:
    """Whether ``value`` is a Python or numpy bool, or an array or Tensor of booleans (any library)."""
    if isinstance(value, bool | np.bool_):
        return True
    dtype = getattr(value, "dtype", None)  # (torch.bool, array_api_strict.bool: named bool after a dot)
    return dtype is not None and str(dtype).rpartition(".")[2] == "bool"


def _refuse_non_boolean(symbol: str, name: str, *operands: Any) -> None:
    for value in operands:
        if not _is_boolean(value):
            raise TypeError(
                f"{symbol}: operand {backends.describe(value)} is not boolean. autobp's `{symbol}` is logical, on "
                f"booleans only: on integers numpy and PyTorch compute bitwise, which autobp has no op for. Compare "
                f"first for booleans (t != 0), or call ab.{name} for the logical result of numbers (nonzero is true)"
            )


def _logic(symbol: str, name: str, x: Any, y: Any) -> Tensor:
    """``x <symbol> y`` for the operators: op ``name`` after refusing non-boolean operands."""
    _refuse_non_boolean(symbol, name, x, y)
    return getattr(_ops, name)(x, y)  # type: ignore[no-any-return]


def tensor(data: Any, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Make a Tensor from array-like data (copied); same as ``ab.Tensor(...)``.

    >>> import autobp as ab
    >>> ab.tensor([1.0, 2.0], requires_grad=True)
    tensor([1., 2.], requires_grad=True)
    """
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def install_ops(ops: ModuleType) -> None:
    """Give Tensor its methods from ``ops`` (the table) and from the method modules, and bind the
    modules Tensor delegates to. Called once, by ``autobp/ops/__init__.py`` when every op is
    registered; those modules import Tensor, so this module looks them up late.
    """
    from autobp import engine, graph, hooks, inplace  # (engine needs the ops)
    from autobp.tensor import copies as tensor_copies
    from autobp.tensor import inplace as tensor_inplace
    from autobp.tensor import values as tensor_values

    globals().update(
        _ops=ops, engine=engine, graph=graph, hooks=hooks, _inplace=inplace._inplace, tensor_inplace=tensor_inplace
    )
    method_table.install(Tensor, ops, tensor_values, tensor_inplace, tensor_copies)
