"""Tracing: the recorder that writes a taped function's op calls down, and the guards it keeps.

The recorder is installed as ``graph._local.modes.tape`` while a function is traced. Every op call
goes through it (each op's public function: ``ops/public_function.py``), and so does every way a
traced value can leave the tape's sight: a read into Python (``bool()``, ``.item()``, ``.numpy()``,
``str()``: ``read``), a ``detach()`` view (``alias``), a Tensor that is no argument (``slot``: its
version is guarded).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from autobp.backends import library_of
from autobp.graph import WeakScalar
from autobp.ops.registry import Hints, OpDef, describe
from autobp.tensor import Tensor

__all__ = ["Recorder", "Guard", "bytes_of", "trace_inputs"]

# A read whose outcome is one bit is guarded by that bit; the other reads of one value by the
# value's bytes (exact: -0.0 is not 0.0, each NaN payload is its own). Reads of whole arrays
# make the signature eager: a guard on every element would cost what it saves.
_TRUTH_READS = ("bool()",)
_VALUE_READS = (".item()", "__index__")
# Text shows every value (and dtype, shape, grad_fn: fixed by the trace): one value's text is
# guarded by its bytes, like .item(); a longer text is a whole-array read.
_TEXT_READS = ("repr()", "str()", "format()")

_CHECKS: dict[Callable[..., None], OpDef] = {}

Guard = tuple[str, int, Any, str]  # (kind "truth", "bytes" or "array", slot, the traced outcome, how it was read)

# Ops whose ``index`` keyword may hold an integer array that a replay reads as it is then: the
# positions it picks change no shape (the index array's shape does, and in place it cannot change).
_LIVE_INDEX_OPS = frozenset({"getitem", "scatter_add"})


class Recorder:
    """Collects op calls while a function is traced (installed as ``graph._local.modes.tape``).

    Slots number every array a replay holds: the inputs first, then constants and op results
    in the order they appear. An argument is known by identity: the array of an input or of a
    recorded result; anything else is a constant, kept by reference.
    """

    def __init__(
        self,
        inputs: list[np.ndarray],
        arguments: Sequence[Tensor | None] | None = None,
        given: Sequence[Any] = (),
    ) -> None:
        self.n_inputs = len(inputs)
        # The caller's arrays, where ``inputs`` are views of them (``trace_inputs``): the function
        # may hold one of them itself (a closure), which is not the argument.
        self.given = {id(array): k for k, array in enumerate(given)}
        # The Tensors func receives for the inputs: another Tensor on an input's array (func closing
        # over the Tensor it was also given) is no argument, and a replay could not tell the two apart.
        self.arguments = arguments  # None for an input func never sees (tape.hvp's directions)
        # Whether forward mode's tangents may go on the tape: only tape.hvp's own level, set by it.
        self.forward_mode = False
        self.values: list[Any] = list(inputs)  # keeps every array alive, so no two share an id
        self.made_by: list[int | None] = [None] * len(inputs)  # the step that computes each slot
        self.slots: dict[int, int] = {id(array): k for k, array in enumerate(inputs)}
        self.steps: list[tuple[OpDef, tuple[int, ...], Mapping[str, Any], int]] = []
        self.untapeable: str | None = None  # why the function must run eagerly, if it must
        self.guards: list[Guard] = []  # outcomes of Python reads, checked on every replay
        # Tensors the trace read that are no argument: each (tensor, its array, its version).
        self.closures: dict[int, tuple[Tensor, Any, int]] = {}
        self._kept: list[Any] = []  # views known by alias, kept alive so that no id is reused
        # Slots of arrays the function passed to ops as they are (a numpy array it closes over):
        # their owner may change them in place between calls, so a replay reads them as they are
        # then, and no step reading one is folded into a traced value (``Tape``).
        self.live: set[int] = set()
        # Steps that read such an array through a keyword (an integer index ``c[idx]``): replayed,
        # even where every operand is a constant.
        self.live_steps: set[int] = set()

    def slot(self, value: Any) -> int:
        if isinstance(value, Tensor):
            array = value.data
            known = self.slots.get(id(array))
            if known is None and (id(array) in self.given or (self.live and self._views_live(array))):
                # A Tensor wrapped around an array the function holds itself (``x * arr`` wraps
                # ``arr``), where that array is the caller's argument (``trace_inputs``) or one a vjp
                # rule's Tensor views (an ndarray subclass, a memmap, becomes a plain view of it):
                # read as it is then, as the array is (a memmap was folded: x * memmap gave the
                # traced gradient after memmap[0] = 100, with no error).
                known = self._add(array, None)
                self.live.add(known)
            if (known is None or not self.computed(known)) and type(value) is not WeakScalar:
                self._guard_version(value)
            elif known is not None and known < self.n_inputs:
                self._check_argument(value, known)
        else:
            array = value
            known = self.slots.get(id(array))
            # (an ndarray subclass too: a memmap, a masked array; its owner may change it alike)
            if known is None and (isinstance(array, np.ndarray) or library_of(array) is not None):
                known = self._add(array, None)
                self.live.add(known)
        return known if known is not None else self._add(array, None)

    def _views_live(self, array: Any) -> bool:
        """Whether ``array`` is a numpy view of the memory of an array the function passed to ops
        as it is (``live``). Asked of Tensors the trace meets on arrays it does not know, so tracing only."""
        if type(array) is not np.ndarray or array.base is None:
            return False
        live = [self.values[k] for k in self.live]
        return any([isinstance(other, np.ndarray) and np.may_share_memory(array, other) for other in live])

    def _check_argument(self, tensor: Tensor, k: int) -> None:
        """``tensor`` holds input ``k``'s array: fine if it is that argument or shares its storage
        counter (its ``detach()``); else func closes over a Tensor it was also given, and runs eagerly."""
        argument = None if self.arguments is None else self.arguments[k]
        if argument is None or tensor is argument or (tensor._vc is not None and tensor._vc is argument._vc):
            return
        if self.untapeable is None:
            self.untapeable = (
                f"func reads a Tensor it does not take as an argument ({describe(tensor)}) that holds the "
                f"same array as array argument {k}; a replay could not tell the two apart"
            )

    def computed(self, k: int) -> bool:
        """Whether slot ``k`` is an input or an op's result (else a constant, kept by reference)."""
        return k < self.n_inputs or self.made_by[k] is not None

    def _add(self, array: Any, step: int | None) -> int:
        self.slots[id(array)] = len(self.values)
        self.values.append(array)
        self.made_by.append(step)
        return len(self.values) - 1

    def _guard_version(self, tensor: Tensor, read: bool = False) -> None:
        """A Tensor read as a constant: a replay runs only while it holds the same array, unchanged.

        One that holds the very array the caller passed as an argument: a replay reads an op's
        operand as it is then (``slot``), but a Python ``read`` of it or a keyword would be guarded
        by a version that a write into the caller's array does not move: the signature runs eagerly."""
        if id(tensor) not in self.closures:
            k = self.given.get(id(tensor.data))
            if k is not None and (read or self.slots.get(id(tensor.data)) not in self.live) and self.untapeable is None:
                self.untapeable = (
                    f"func reads a Tensor it does not take as an argument ({describe(tensor)}) that holds the "
                    f"same array as array argument {k}; a replay could not tell the two apart"
                )
            self.closures[id(tensor)] = (tensor, tensor.data, tensor._version)

    def record(self, opdef: OpDef, args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Tensor) -> None:
        """Called by every op while tracing, after its forward ran."""
        if kwargs:
            kwargs = {key: self._indices_read(value) for key, value in kwargs.items()}
            if any([self._tracked(value) for value in kwargs.values()]) and self.untapeable is None:
                self.untapeable = f"a keyword argument of '{opdef.name}' is computed from the inputs"
            for key, value in kwargs.items():
                self._keyword_arrays(opdef.name, key, value)
        refs = tuple([self.slot(value) for value in args])
        self.steps.append((opdef, refs, kwargs, self._add(out.data, len(self.steps))))

    def check(self, name: str, function: Callable[..., None], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """A value check (``graph.check_values``): a step of its own, whose result nothing reads."""
        opdef = _CHECKS.get(function)
        if opdef is None:  # an OpDef outside the registry: a tape step, not an op
            opdef = _CHECKS[function] = OpDef(name, function, None, Hints(), False, composite=False)
        refs = tuple([self.slot(value) for value in args])
        self.steps.append((opdef, refs, kwargs, self._add(object(), len(self.steps))))

    def _keyword_arrays(self, op: str, key: str, value: Any) -> None:
        """Arrays from outside the tape in a keyword (a numpy index, mask or axis the function closes
        over): its owner may change them in place between calls, and the replay passes the same
        object. An integer index array (``c[idx]``) is read as it is then, as eagerly, by a step never
        folded into its traced value; any other array (a boolean mask, an axis: the shapes follow its
        values) is guarded by its shape, dtype and bytes. Before, ``c[idx]`` of a constant ``c`` kept
        its traced value, and an axis changed in place broke the replay's traced shapes."""
        if type(value) is tuple or type(value) is list:
            for part in value:
                self._keyword_arrays(op, key, part)
            return
        if isinstance(value, Tensor) or not (isinstance(value, np.ndarray) or library_of(value) is not None):
            return
        k = self.slots.get(id(value))
        if k is not None and self.computed(k):  # an input's or a result's array: ``_tracked``'s (eager)
            return
        if op in _LIVE_INDEX_OPS and key == "index" and _integral(value):
            self.slot(value)  # (a new numpy array becomes a live slot)
            self.live_steps.add(len(self.steps))
        else:
            self._guard_array(value, f"keyword {key} of '{op}'")

    def _guard_array(self, array: Any, how: str) -> None:
        """A replay runs only while ``array`` (a constant: an array from outside the tape) holds its
        traced shape, dtype and values."""
        k = self.slot(array)
        if not any([guard[0] == "array" and guard[1] == k for guard in self.guards]):
            self.guards.append(("array", k, (tuple(array.shape), array.dtype, bytes_of(array)), how))

    def _indices_read(self, value: Any) -> Any:
        """A keyword value with each index the forward read from a traced value as that int: an
        array slice bound (``x[:n]``), an axis given as a traced one-element integer Tensor.

        The object the trace saw must not be replayed: a Tensor on an input's array is the
        trace's, and the caller may refill that array. An index decides shapes, so it is a read
        like ``__index__``: the replay keeps the traced int and guards where it came from.
        """
        if type(value) is slice:
            bounds = (value.start, value.stop, value.step)
            if all([b is None or type(b) is int for b in bounds]):
                return value
            return slice(*[self._bound(b) for b in bounds])
        if type(value) is tuple:  # an index of several parts (x[1, :n]), or of axes (axis=(0, t))
            parts = tuple([self._indices_read(v) for v in value])
            return value if all([p is v for p, v in zip(parts, value, strict=True)]) else parts
        if isinstance(value, Tensor) and self._read_as_index(value):
            return operator.index(value)  # (as the forward read it: a read already guarded)
        return value

    def _read_as_index(self, tensor: Tensor) -> bool:
        """Whether the trace read ``tensor``, a traced value, with ``__index__``: an op that took it
        as an axis did (``sum(x, axis=t)``). Its value is then guarded on every replay, and the
        replay passes the op that int. (Any other keyword Tensor computed from the inputs makes
        the signature eager, ``_tracked``.)"""
        k = self.slots.get(id(tensor.data))
        if k is None or not self.computed(k):
            return False
        return ("bytes", k, bytes_of(tensor.data), "__index__") in self.guards

    def _bound(self, bound: Any) -> Any:
        if isinstance(bound, Tensor):
            self.read(bound, "__index__")  # computed: its bytes are guarded; a constant: its version
            return operator.index(bound.data)
        if isinstance(bound, np.ndarray) or library_of(bound) is not None:
            k = self.slots.get(id(bound))
            if k is not None and self.computed(k):  # an input's or a result's array (read through .data)
                guard: Guard = ("bytes", k, bytes_of(bound), "__index__")
                if guard not in self.guards:
                    self.guards.append(guard)
            # A constant (a numpy array the function closes over): the traced shapes assume its traced
            # value, so a replay checks that it still holds it (before, a change in place went unseen).
            self._guard_array(bound, "__index__")
            return operator.index(bound)
        return bound  # None, an int, or an object that is its own index (np.int64)

    def _tracked(self, value: Any) -> bool:
        """Whether a keyword value holds an input or a computed array (a tape would freeze it).

        A keyword Tensor that is a constant (an index tensor the function closes over) is
        guarded by its version instead.
        """
        if isinstance(value, tuple | list):
            return any([self._tracked(v) for v in value])
        if isinstance(value, Tensor | np.ndarray) or library_of(value) is not None:
            k = self.slots.get(id(value.data if isinstance(value, Tensor) else value))
            if k is not None and self.computed(k):
                return True
            if isinstance(value, Tensor) and type(value) is not WeakScalar:
                self._guard_version(value)
        return False

    def read(self, tensor: Tensor, how: str) -> None:
        """``tensor``'s values go into Python: guard the outcome, or make the signature eager."""
        k = self.slots.get(id(tensor.data))
        if k is None or not self.computed(k):  # a constant: its version is guarded
            if type(tensor) is not WeakScalar:
                self._guard_version(tensor, read=True)
            return
        if k < self.n_inputs:
            self._check_argument(tensor, k)
        if how in _TRUTH_READS:
            guard: Guard = ("truth", k, bool(tensor.data), how)
        elif how in _VALUE_READS or (how in _TEXT_READS and math.prod(tensor.shape) == 1):
            guard = ("bytes", k, bytes_of(tensor.data), how)
        else:
            if self.untapeable is None:  # the first reason is the one shown; later reads change nothing
                self.untapeable = (
                    f"func reads a traced value ({describe(tensor)}) into Python with {how}; a tape would "
                    "freeze what it computes from it"
                )
            return
        if guard not in self.guards:
            self.guards.append(guard)

    def alias(self, tensor: Tensor, view: Any) -> None:
        """``view`` shows ``tensor``'s array (a ``detach()``): a replay reads it from the same slot."""
        k = self.slot(tensor)
        self.slots[id(view)] = k
        self._kept.append(view)


def _integral(array: Any) -> bool:
    """Whether an array (numpy's or another library's) holds integers (not bools)."""
    if isinstance(array, np.ndarray):
        return array.dtype.kind in "iu"
    lib = library_of(array)
    return lib is not None and bool(lib.isdtype(array.dtype, "integral"))


def trace_inputs(arrays: list[Any]) -> list[Any]:
    """The input arrays a trace runs on: a view of each numpy array (one per array given twice).

    The tape knows an input by the identity of its array, so the function's Tensors for the
    arguments hold these views; an array the function holds itself (a closure, a global) that is
    the very array the caller passed is then another object, read at each replay as it is then
    (``Recorder.live``), as eagerly. Before, it was read from the argument's slot: a replay on new
    arguments gave ``ab.sum(arr)`` of the new argument where eager sums the closure ``arr``.
    """
    views: dict[int, Any] = {}
    inputs = []
    for array in arrays:
        if type(array) is np.ndarray or library_of(array) is not None:
            # (``[...]``: a new object on the same memory, laid out alike, in every library)
            view = views.get(id(array))
            if view is None:
                view = views[id(array)] = array.view() if type(array) is np.ndarray else array[...]
            array = view
        inputs.append(array)
    return inputs


def bytes_of(array: Any) -> bytes:
    """An array's values as bytes, to compare bit for bit (-0.0 is not 0.0, NaN payloads differ).

    Another library's array is copied to the host for it: the tape compares values only for a
    guard on a value read into Python (which ``.item()`` itself copies) and to check replays.
    """
    if type(array) is np.ndarray:
        return array.tobytes()
    lib = library_of(array)
    return (lib.to_numpy(array) if lib is not None else np.asarray(array)).tobytes()
