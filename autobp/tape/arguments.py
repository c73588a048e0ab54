"""A taped function's arguments: which are tape inputs, the signature a tape is kept under, and
how ``func`` receives them.

Arrays (numpy's, another library's, a Tensor's) and every differentiated argument are inputs:
a replay reads them from their slots, and the signature holds their shapes and dtypes; the
differentiated ones are taken as ``functional.value_and_grad`` takes them
(``differentiated_array``). Any other argument is static: it keys the signature by its type and
exact value, and reaches ``func`` as it is.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from autobp.backends import library_of
from autobp.functional_args import float64_tensor, floating_array, not_floating
from autobp.ops.registry import describe
from autobp.tensor import Tensor

__all__ = ["StaticNaN", "as_tensors", "inputs_and_signature", "is_array", "promoted", "wanted_leaves"]


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
    by identity) unless ``laid_out_as_a_tensor`` copies it; a numpy scalar becomes the 0-d array
    a Tensor would hold; any other array-like (a Python number, a list, an integer or bool
    array) becomes the float64 array ``functional`` makes of it.
    """
    if isinstance(value, Tensor):
        return value
    if floating_array(value):
        return np.asarray(value) if isinstance(value, np.generic) else laid_out_as_a_tensor(value)
    return float64_tensor(value).data


def laid_out_as_a_tensor(value: Any) -> Any:
    """A numpy array laid out as the Tensor ``functional`` makes of it would be: itself, or where
    its strides are not those of its copy (a view taking every other column: a copy packs it), the
    copy. Computed on the packed copy, a ``matmul`` or a ``sum`` adds in another order than on the
    view, so a tape computes on what ``functional.value_and_grad`` computes on."""
    if type(value) is np.ndarray:
        if value.flags.c_contiguous or value.flags.f_contiguous:
            return value
        copy = np.array(value, copy=True)  # (order "K", as ``Tensor`` copies)
        return value if copy.strides == value.strides else copy
    lib = library_of(value)
    if lib is None:
        return value
    copy = Tensor(value).data  # (another library's copy, as the Tensor functional makes)
    return value if lib.strides(copy) == lib.strides(value) else copy


def promoted(args: tuple[Any, ...], differentiated: tuple[int, ...], directions: int = 0) -> tuple[Any, ...]:
    """``args`` as the tape takes them: each differentiated argument as ``differentiated_array``
    makes it, each numpy scalar direction (``tape.hvp``'s) as a 0-d array and each direction laid
    out as ``laid_out_as_a_tensor`` lays it out; ``args`` itself when that changes none.

    ``functional.value_and_grad`` makes the differentiated arguments Tensors and passes the
    others to ``func`` as they are (a numpy scalar axis, a scale): a tape keys those as static.
    """
    n = len(args)
    m = n - directions
    given = list(args)
    for p in differentiated:
        if -m <= p < m:  # (one out of range is wanted_leaves' error, as functional's)
            given[p % m] = differentiated_array(args[p % m])
    for i in range(m, n):  # (``functional.hvp`` makes Tensors of the directions too)
        given[i] = np.asarray(args[i]) if isinstance(args[i], np.generic) else laid_out_as_a_tensor(args[i])
    return args if all([a is b for a, b in zip(given, args, strict=True)]) else tuple(given)


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
    """The array inputs, and the signature a tape is kept under: shapes, dtypes, strides, static values,
    and which arguments are the same array (a tape reads each array from one slot). A numpy
    scalar is an input where ``is_input_position`` says so, else static; a differentiated
    Python number or list is the float64 array ``differentiated_array`` makes of it.

    A differentiated array that is not floating-point (an integer array) is keyed by its own
    dtype here, so that its signature meets no tape: the caller takes the signature of the
    ``promoted`` arguments then (as no tape is kept under any other, a replay needs no check).

    Raises ``StaticNaN`` for a static NaN, ``TypeError`` for an unhashable static argument.
    """
    arrays: list[np.ndarray] = []
    # Per array: its dtype, then each dimension; flat, so that a call builds no tuple per array
    # and the kept key is one object (the harness times calls after gc.collect(), whose sweep leaves
    # every object a cache miss away: W5 taped). Each dtype starts an array's entry, so (2, 3), (4,)
    # and (2,), (3, 4) differ; a static entry is a tuple, never a dtype or an int. A numpy array's
    # strides follow its shape (as many): a tape's shortcuts hold for the traced layout only.
    key: list[Any] = []
    for position, arg in enumerate(args):
        if type(arg) is np.ndarray:  # the usual argument, taken first (every call of a tape does this)
            arrays.append(arg)
            key.append(arg.dtype)
            key += arg.shape
            key += arg.strides  # (a layout decides the order a sum adds in: see tape.compile)
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
                    # replayed with its library, on its device; laid out as it is (strides: numpy's below)
                    key.append((lib.name, lib.device_name(arg), lib.strides(arg)))
        arrays.append(arg)
        key.append(arg.dtype)
        key += arg.shape
        if type(arg) is np.ndarray:
            key += arg.strides
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
