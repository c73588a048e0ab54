"""Tracing: the recorder that writes a taped function's op calls down, and the input signature.

The recorder is installed as ``graph._mode.tape`` while a function is traced. Every op call
goes through it (each op's public function: ``ops/public_function.py``), and so does every way a
traced value can leave the tape's sight: a read into Python (``bool()``, ``.item()``, ``.numpy()``,
``str()``: ``read``), a ``detach()`` view (``alias``), a Tensor that is no argument (``slot``: its
version is guarded).
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from autobp.backends import library_of
from autobp.functional_args import float64_tensor, floating_array, not_floating
from autobp.graph import WeakScalar
from autobp.ops.registry import Hints, OpDef, describe
from autobp.tensor import Tensor

__all__ = ["Recorder", "Guard", "inputs_and_signature", "wanted_leaves", "as_tensors", "is_array", "promoted"]

# A read whose outcome is one bit is guarded by that bit; the other reads of one value by the
# value's bytes (exact: -0.0 is not 0.0, each NaN payload is its own). Reads of whole arrays
# make the signature eager: a guard on every element would cost what it saves.
_TRUTH_READS = ("bool()",)
_VALUE_READS = (".item()", "__index__")
# Text shows every value (and dtype, shape, grad_fn: fixed by the trace): one value's text is
# guarded by its bytes, like .item(); a longer text is a whole-array read.
_TEXT_READS = ("repr()", "str()", "format()")

_CHECKS: dict[Callable[..., None], OpDef] = {}

Guard = tuple[str, int, Any, str]  # (kind "truth" or "bytes", slot, the traced outcome, how it was read)


class Recorder:
    """Collects op calls while a function is traced (installed as ``graph._mode.tape``).

    Slots number every array a replay holds: the inputs first, then constants and op results
    in the order they appear. An argument is known by identity: the array of an input or of a
    recorded result; anything else is a constant, kept by reference.
    """

    def __init__(self, inputs: list[np.ndarray], arguments: Sequence[Tensor | None] | None = None) -> None:
        self.n_inputs = len(inputs)
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

    def slot(self, value: Any) -> int:
        if isinstance(value, Tensor):
            array = value.data
            known = self.slots.get(id(array))
            if (known is None or not self.computed(known)) and type(value) is not WeakScalar:
                self._guard_version(value)
            elif known is not None and known < self.n_inputs:
                self._check_argument(value, known)
        else:
            array = value
            known = self.slots.get(id(array))
        return known if known is not None else self._add(array, None)

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

    def _guard_version(self, tensor: Tensor) -> None:
        """A Tensor read as a constant: a replay runs only while it holds the same array, unchanged."""
        if id(tensor) not in self.closures:
            self.closures[id(tensor)] = (tensor, tensor.data, tensor._version)

    def record(self, opdef: OpDef, args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Tensor) -> None:
        """Called by every op while tracing, after its forward ran."""
        if kwargs:
            kwargs = {key: self._indices_read(value) for key, value in kwargs.items()}
        if any([self._tracked(value) for value in kwargs.values()]) and self.untapeable is None:
            self.untapeable = f"a keyword argument of '{opdef.name}' is computed from the inputs"
        refs = tuple([self.slot(value) for value in args])
        self.steps.append((opdef, refs, kwargs, self._add(out.data, len(self.steps))))

    def check(self, name: str, function: Callable[..., None], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        """A value check (``graph.check_values``): a step of its own, whose result nothing reads."""
        opdef = _CHECKS.get(function)
        if opdef is None:  # an OpDef outside the registry: a tape step, not an op
            opdef = _CHECKS[function] = OpDef(name, function, None, Hints(), False, composite=False)
        refs = tuple([self.slot(value) for value in args])
        self.steps.append((opdef, refs, kwargs, self._add(object(), len(self.steps))))

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
            return operator.index(bound)  # a numpy constant: its traced value, which the traced shapes assume
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
                self._guard_version(tensor)
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


def is_array(value: Any) -> bool:
    """Whether an argument is a tape input: a Tensor, a numpy array, another library's array.

    Any differentiated argument is one: ``promoted`` makes it an array.
    """
    return isinstance(value, Tensor | np.ndarray) or library_of(value) is not None


def is_differentiated(position: int, n: int, differentiated: tuple[int, ...], directions: int) -> bool:
    """Whether argument ``position`` of ``n`` is named by ``differentiated``, which counts among
    the first ``n - directions`` (the last ``directions`` are ``tape.hvp``'s)."""
    m = n - directions
    return position < m and any([-m <= p < m and p % m == position for p in differentiated])


def is_input_position(position: int, n: int, differentiated: tuple[int, ...], directions: int) -> bool:
    """Whether argument ``position`` of ``n`` is differentiated or one of the ``directions`` last."""
    return position >= n - directions or is_differentiated(position, n, differentiated, directions)


def differentiated_array(value: Any) -> Any:
    """A differentiated argument as the array a tape differentiates: the values and dtype
    ``functional.value_and_grad`` differentiates (``functional_args.differentiated_tensor``).

    A Tensor stays as it is (``wanted_leaves`` refuses one that is not floating-point, as
    ``functional`` does), and so does a floating-point array (not copied: the tape knows arrays
    by identity); a numpy scalar becomes the 0-d array a Tensor would hold; any other array-like
    (a Python number, a list, an integer or bool array) becomes the float64 array ``functional``
    makes of it.
    """
    if isinstance(value, Tensor):
        return value
    if floating_array(value):
        return np.asarray(value) if isinstance(value, np.generic) else value
    return float64_tensor(value).data


def promoted(args: tuple[Any, ...], differentiated: tuple[int, ...], directions: int = 0) -> tuple[Any, ...]:
    """``args`` as the tape takes them: each differentiated argument as ``differentiated_array``
    makes it, each numpy scalar direction (``tape.hvp``'s) as a 0-d array; ``args`` itself when
    that changes none.

    ``functional.value_and_grad`` makes the differentiated arguments Tensors and passes the
    others to ``func`` as they are (a numpy scalar axis, a scale): a tape keys those as static.
    """
    n = len(args)
    m = n - directions
    given = list(args)
    for p in differentiated:
        if -m <= p < m:  # (one out of range is wanted_leaves' error, as functional's)
            given[p % m] = differentiated_array(args[p % m])
    for i in range(m, n):
        if isinstance(args[i], np.generic):
            given[i] = np.asarray(args[i])
    return args if all([a is b for a, b in zip(given, args, strict=True)]) else tuple(given)


def bytes_of(array: Any) -> bytes:
    """An array's values as bytes, to compare bit for bit (-0.0 is not 0.0, NaN payloads differ).

    Another library's array is copied to the host for it: the tape compares values only for a
    guard on a value read into Python (which ``.item()`` itself copies) and to check replays.
    """
    if type(array) is np.ndarray:
        return array.tobytes()
    lib = library_of(array)
    return (lib.to_numpy(array) if lib is not None else np.asarray(array)).tobytes()


class StaticNaN(Exception):
    """A static argument holds a NaN: no two calls share a tape for it."""


def _static_key(value: Any, position: int) -> Any:
    """A static argument as a signature entry: its type and its exact value.

    ``True`` and ``1``, ``0.0`` and ``-0.0``, ``inf`` and ``-inf`` are different keys (``==``
    would merge them); a NaN raises ``StaticNaN``. A numpy scalar is keyed by its bytes, which
    tell every value apart (NaN payloads too).
    """
    kind = type(value)
    if isinstance(value, np.generic):  # (np.float64(0.0) == np.float64(-0.0), and they hash alike)
        return (kind, value.dtype, value.tobytes())
    if kind is float:
        if math.isnan(value):
            raise StaticNaN
        return (kind, value.hex())
    if kind is complex:
        if math.isnan(value.real) or math.isnan(value.imag):
            raise StaticNaN
        return (kind, value.real.hex(), value.imag.hex())
    if isinstance(value, tuple):  # a namedtuple too: its fields are keyed as exactly as plain values
        return (kind, tuple([_static_key(v, position) for v in value]))
    if isinstance(value, frozenset):
        return (kind, frozenset([_static_key(v, position) for v in value]))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # == would merge Config(0.0) and Config(-0.0): key the fields one by one.
        fields = tuple([_static_key(getattr(value, f.name), position) for f in dataclasses.fields(value)])
        return (kind, _hashable(value, position), fields)
    return (kind, _hashable(value, position))


def _hashable(value: Any, position: int) -> Any:
    try:
        hash(value)
    except TypeError:
        raise TypeError(
            f"tape.value_and_grad: argument {position} ({describe(value)}) is static (not a Tensor or array), "
            "so it keys the tape and must be hashable; pass a tuple, or an array if its values change"
        ) from None
    return value


def inputs_and_signature(
    args: tuple[Any, ...], differentiated: tuple[int, ...] = (), directions: int = 0
) -> tuple[list[np.ndarray], tuple[Any, ...]]:
    """The array inputs, and the signature a tape is kept under: shapes, dtypes, static values,
    and which arguments are the same array (a tape reads each array from one slot). A numpy
    scalar is an input where ``is_input_position`` says so, else static; a differentiated
    Python number or list is the float64 array ``differentiated_array`` makes of it.

    A differentiated array that is not floating-point (an integer array) is keyed by its own
    dtype here, so that its signature meets no tape: the caller takes the signature of the
    ``promoted`` arguments then (as no tape is kept under any other, a replay needs no check).

    Raises ``StaticNaN`` for a static NaN, ``TypeError`` for an unhashable static argument.
    """
    arrays: list[np.ndarray] = []
    key: list[Any] = []  # shape, dtype, shape, dtype, ...: flat, it hashes and compares faster
    for position, arg in enumerate(args):
        if type(arg) is np.ndarray:  # the usual argument, taken first (every call of a tape does this)
            arrays.append(arg)
            key += (arg.shape, arg.dtype)
            continue
        if isinstance(arg, Tensor):
            arg = arg.data
        if type(arg) is not np.ndarray:
            if isinstance(arg, np.generic) and not is_input_position(position, len(args), differentiated, directions):
                key.append(("static", _static_key(arg, position)))
                continue
            if isinstance(arg, np.ndarray | np.generic):
                # A numpy scalar or an ndarray subclass: the plain array a Tensor would hold (the
                # tape knows inputs by identity, and Tensors hold plain arrays).
                arg = np.asarray(arg)
            else:
                lib = library_of(arg)
                if lib is None and is_differentiated(position, len(args), differentiated, directions):
                    arg = differentiated_array(arg)  # (a float64 array)
                elif lib is None:
                    key.append(("static", _static_key(arg, position)))
                    continue
                else:
                    key.append((lib.name, lib.device_name(arg)))  # replayed with its library, on its device
        arrays.append(arg)
        key.append(arg.shape)
        key.append(arg.dtype)
    if len(set(map(id, arrays))) != len(arrays):
        ids = [id(a) for a in arrays]
        key.append(("aliases", tuple(ids.index(i) for i in ids)))
    return arrays, tuple(key)


def wanted_leaves(
    positions: tuple[int, ...], args: tuple[Any, ...], argnums: Any, what: str = "tape.value_and_grad"
) -> list[int]:
    """The differentiated arguments of the ``promoted`` ``args``, as indices among the array
    arguments; the errors ``functional.value_and_grad`` raises for them."""
    n = len(args)
    array_positions = [i for i, arg in enumerate(args) if is_array(arg)]
    wanted = []
    for p in positions:
        if not -n <= p < n:
            raise IndexError(f"{what}: argnums {argnums} out of range for {n} positional arguments")
        array = args[p].data if isinstance(args[p], Tensor) else args[p]
        if not floating_array(array):  # (a Tensor: promoted converts any other argument)
            raise not_floating(what, p % n, array)
        wanted.append(array_positions.index(p % n))
    return wanted


def as_tensors(args: tuple[Any, ...], arrays: list[np.ndarray], leaves: list[int]) -> list[Any]:
    """The arguments as ``func`` sees them: the input ``arrays`` as Tensors sharing them (the tape
    knows them by identity), those at ``leaves`` requiring grad; static arguments as they are."""
    tensors, k = [], 0
    for arg in args:
        if is_array(arg):
            tensors.append(Tensor._wrap(arrays[k], k in leaves))
            k += 1
        else:
            tensors.append(arg)
    return tensors
