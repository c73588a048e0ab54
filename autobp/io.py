"""``save`` and ``load``: state dicts in ``.npz`` files that never run code when read.

A state dict (nested dicts, lists and tuples of Tensors, arrays and scalars) is flattened to one
array per leaf. Each entry's name spells its path and kinds, so no pickle and no JSON is needed:
``d:model/d:fc1.weight|tensor`` is the Tensor at ``obj["model"]["fc1.weight"]`` (``|grad_tensor``
for one that requires grad, which loads as one). A Tensor or array met again (one object in two
places: a weight tied to two layers) is stored once; the later places hold ``|same``, the path of
the first, and load as that one object, as ``torch.load`` gives them. A Tensor's ``.name`` is an
entry of its own, ``|name``, beside the Tensor's. Path segments
are ``d:key`` (dict with str key), ``i:key`` (dict with int key), ``l:index`` (list) and
``t:index`` (tuple); ``/`` and ``%`` inside keys are percent-escaped. Reading parses each
``.npy`` header itself and never unpickles: a file that carries a pickled object is refused with
an error naming the file and the entry.

``load`` checks every size against the file before it allocates, reads every member to its CRC,
and checks that the entries fit one tree: a damaged, cut or foreign file raises ``LoadError``
(a ``ValueError``), never a wrong object, ``MemoryError``, ``EOFError`` or ``BadZipFile``.

Tensors and arrays of other libraries (torch, cupy...) are saved as host copies; ``load(path,
library="torch", device="cuda")`` puts every tensor and array it reads there (or load, then
``model.load_state_dict``, which copies into the model's own library and device).
"""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np

from autobp import backends
from autobp.npz_reader import DAMAGE, LoadError, declared_entries, member_infos, read_member, refuse_foreign
from autobp.tensor import Tensor

__all__ = ["save", "load", "LoadError"]

_LEAF_KINDS = (
    "tensor",
    "grad_tensor",  # a Tensor that requires grad: loaded as one
    "array",
    "scalar",
    "float",
    "int",
    "bool",
    "str",
    "none",
    "empty_dict",
    "empty_list",
    "empty_tuple",
    "same",  # a Tensor or array stored at another entry (the path it holds): loaded as that object
    "name",  # the .name of the Tensor stored at the same path (a label for graph pictures)
)
_ARRAY_KINDS = ("tensor", "grad_tensor", "array")
_EMPTY = {"empty_dict": dict, "empty_list": list, "empty_tuple": tuple}


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace("/", "%2F").replace("|", "%7C")


def _unescape(key: str) -> str:
    return key.replace("%7C", "|").replace("%2F", "/").replace("%25", "%")


def _host(array: Any, where: str, what: str) -> np.ndarray:
    """A numpy array as it is; another library's array as a host copy (saving copies it anyway).

    One of a dtype numpy lacks (PyTorch's bfloat16, float8, complex32) is refused naming its place:
    torch's own error ("Got unsupported ScalarType BFloat16") named neither the entry nor a way out."""
    if isinstance(array, np.ndarray):
        return array
    try:
        return backends.namespace(array).to_numpy(array)
    except (TypeError, RuntimeError) as error:
        cast = "ab.astype(t, 'float32')" if what == "Tensor" else "t.to(torch.float32)"
        raise TypeError(
            f"save: cannot store the {backends.describe(array)} {what} at {where or 'the top'!r}: numpy, which "
            f"writes the file, has no such dtype ({error}); cast it to one numpy has before saving, e.g. {cast} "
            "(float32 holds every bfloat16 and float8 value exactly; complex64 every complex32 one), and back "
            "after loading"
        ) from error


def _leaf(value: Any, where: str) -> tuple[str, np.ndarray]:
    if isinstance(value, Tensor):
        kind, array = "grad_tensor" if value.requires_grad else "tensor", _host(value.data, where, "Tensor")
    elif isinstance(value, np.ma.MaskedArray):  # (its mask would be lost: .npy holds the data alone)
        raise TypeError(
            f"save: the masked array at {where or 'the top'!r} would lose its mask; save its .data and "
            ".mask as two entries (np.ma.getmaskarray gives the full mask)"
        )
    elif isinstance(value, np.ndarray) or backends.library_of(value) is not None:
        kind, array = "array", _host(value, where, "array")
    elif isinstance(value, np.generic):
        kind, array = "scalar", np.asarray(value)
    elif isinstance(value, bool):
        kind, array = "bool", np.asarray(value)
    elif isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise OverflowError(f"save: the int at {where or 'the top'!r} does not fit in 64 bits: {value}")
        kind, array = "int", np.asarray(value, dtype=np.int64)
    elif isinstance(value, float):
        kind, array = "float", np.asarray(value, dtype=np.float64)
    elif isinstance(value, str):
        if value.endswith("\x00"):  # numpy's strings are padded with NULs: a trailing one is cut on reading
            raise ValueError(
                f"save: the str at {where or 'the top'!r} ends with a NUL character, which .npy cannot keep"
            )
        kind, array = "str", np.asarray(value)
    elif value is None:
        kind, array = "none", np.zeros(0)
    elif callable(getattr(value, "state_dict", None)):  # a Module (or an optimizer): its state is what to save
        raise TypeError(
            f"save: cannot store the {type(value).__name__} itself at {where or 'the top'!r}; save its state: "
            f"ab.save(model.state_dict(), path), and restore it with model.load_state_dict(ab.load(path))"
        )
    else:
        raise TypeError(f"save: cannot store {type(value).__name__} at {where!r}; use Tensors, arrays, scalars")
    if array.dtype.hasobject:
        raise TypeError(f"save: array at {where!r} has dtype object, which would need pickling; refused")
    return kind, array


def _flatten(obj: Any, path: str, seen: dict[int, str]) -> Iterator[tuple[str, np.ndarray]]:
    """The entries of ``obj``; ``seen`` maps the id of each Tensor or array stored so far to its path
    (a second place of one object is a reference to the first: two copies untied a tied weight)."""
    if isinstance(obj, dict | list | tuple) and len(obj) == 0:
        kind = "empty_dict" if isinstance(obj, dict) else "empty_list" if isinstance(obj, list) else "empty_tuple"
        yield f"{path}|{kind}", np.zeros(0)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str):
                if "\x00" in key:  # a zip member's name ends at a NUL: the entry could not be read back
                    raise ValueError(f"save: dict key {key!r} at {path or 'the top'!r} holds a NUL character; refused")
                segment = f"d:{_escape(key)}"
            elif isinstance(key, int) and not isinstance(key, bool):
                segment = f"i:{key}"
            else:
                raise TypeError(f"save: dict keys must be str or int, got {key!r} at {path or 'the top'!r}")
            yield from _flatten(value, f"{path}/{segment}" if path else segment, seen)
    elif isinstance(obj, list | tuple):
        tag = "l" if isinstance(obj, list) else "t"
        for index, value in enumerate(obj):
            yield from _flatten(value, f"{path}/{tag}:{index}" if path else f"{tag}:{index}", seen)
    elif id(obj) in seen:
        yield f"{path}|same", np.asarray(seen[id(obj)])
    else:
        kind, array = _leaf(obj, path)
        if kind in _ARRAY_KINDS:
            seen[id(obj)] = path  # (obj lives in the object being saved: its id is not reused meanwhile)
        yield f"{path}|{kind}", array
        if isinstance(obj, Tensor) and obj.name is not None:  # (it came back None: the label was lost)
            name = str(obj.name)
            if name.endswith("\x00"):
                raise ValueError(f"save: the name of the Tensor at {path or 'the top'!r} ends with a NUL character")
            yield f"{path}|name", np.asarray(name)


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` (a Tensor, array, scalar, or nested dict/list/tuple of them) to an ``.npz`` file.

    Values are stored exactly (dtype and shape kept); nothing is pickled.

    >>> import autobp as ab, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> ab.save({"w": ab.tensor([1.0, 2.0]), "step": 3}, path)
    >>> ab.load(path)
    {'w': tensor([1., 2.]), 'step': 3}
    """
    entries = dict(_flatten(obj, "", {}))
    with open(path, "wb") as file:
        # numpy's stubs read **entries as the allow_pickle flag
        np.savez(file, **entries)  # type: ignore[arg-type]


_SCALAR_KINDS = {"float": "f", "int": "iu", "bool": "b", "str": "U"}


class _Same(NamedTuple):
    """A ``|same`` entry: the path of the entry holding the object, resolved once all are read."""

    path: str


def _value(kind: str, array: np.ndarray, entry: str, target: backends.Namespace | None, device: Any) -> Any:
    if kind in ("tensor", "grad_tensor", "array") and target is not None:
        try:
            array = target.from_numpy(array, device)
        except (TypeError, ValueError, RuntimeError) as error:
            there = target.name if device is None else f"{target.name} on {device}"
            raise TypeError(
                f"{entry} holds {backends.describe(array)}, which {there} cannot hold ({error}); "
                "load it without library= and convert what it holds"
            ) from error
    if kind in ("tensor", "grad_tensor"):
        return Tensor(array, requires_grad=kind == "grad_tensor")
    if kind == "array":
        return array
    if kind in _EMPTY:
        return _EMPTY[kind]()
    if kind == "none":
        return None
    if kind == "same":
        if array.ndim != 0 or array.dtype.kind != "U":
            raise LoadError(f"{entry} holds {backends.describe(array)}, which no same entry of ab.save holds")
        return _Same(str(array.item()))
    # ab.save writes every scalar as a 0-d array of its own dtype kind
    if array.ndim != 0 or (kind in _SCALAR_KINDS and array.dtype.kind not in _SCALAR_KINDS[kind]):
        raise LoadError(f"{entry} holds {backends.describe(array)}, which no {kind} entry of ab.save holds")
    if kind == "scalar":
        return array[()]
    return {"float": float, "int": int, "bool": bool, "str": str}[kind](array.item())


def _parse_segment(segment: str, entry: str) -> tuple[str, Any]:
    tag, _, key = segment.partition(":")
    if tag == "d":
        return "d", _unescape(key)
    if (tag == "i" and re.fullmatch(r"-?[0-9]+", key)) or (tag in ("l", "t") and re.fullmatch(r"[0-9]+", key)):
        return tag, int(key)
    raise LoadError(f"{entry}: malformed entry name (segment {segment!r})")


class _Leaf(NamedTuple):
    """A value read from one entry, told apart from the dicts that hold the tree being rebuilt."""

    value: Any


def _unflatten(items: list[tuple[str, Any]], where: str) -> Any:
    if not items:
        raise LoadError(f"load: {where} holds no entries; ab.save writes at least one")
    root: dict[Any, Any] = {}
    for name, value in items:
        entry = f"load: {where}: entry {name!r}"
        keys = [("", "")] + [_parse_segment(segment, entry) for segment in (name.split("/") if name else [])]
        node = root
        for depth, key in enumerate(keys[:-1]):
            node = node.setdefault(key, {})
            if isinstance(node, _Leaf):
                inside = "/".join(name.split("/")[:depth]) or "the top"
                raise LoadError(f"{entry} lies inside {inside!r}, which another entry stores as a value")
        if keys[-1] in node:
            raise LoadError(f"{entry} collides with another entry for the same place")
        node[keys[-1]] = _Leaf(value)
    return _build(root[("", "")], where, "the top")


def _build(node: Any, where: str, path: str) -> Any:
    # Containers were read as dicts keyed by (tag, key); turn lists and tuples back into sequences.
    if isinstance(node, _Leaf):
        return node.value
    tags = {tag for tag, _ in node}
    child = {key: f"{path}/{tag}:{key}" if path != "the top" else f"{tag}:{key}" for tag, key in node}
    if tags <= {"d", "i"}:
        return {key: _build(value, where, child[key]) for (_, key), value in node.items()}
    if tags == {"l"} or tags == {"t"}:
        indices = sorted(key for _, key in node)
        if indices != list(range(len(indices))):
            raise LoadError(f"load: {where}: the sequence at {path!r} has items {indices}, not 0..{len(indices) - 1}")
        (tag,) = tags
        items = [_build(node[(tag, index)], where, child[index]) for index in indices]
        return items if tag == "l" else tuple(items)
    raise LoadError(f"load: {where}: entries under {path!r} mix container kinds {sorted(tags)}")


def load(path: str | os.PathLike[str], library: str | None = None, device: Any = None) -> Any:
    """Read an object written by ``save``. Pickled content is never unpickled: it is refused.

    Tensors and arrays are numpy's, or ``library``'s on ``device`` when given (e.g.
    ``ab.load(path, library="torch", device="cuda")``); scalars stay Python values.

    Raises:
        LoadError: (a ``ValueError``) the file is empty, cut short or damaged, holds a pickled
            object or an object array, or is not an autobp file; the message names the entry.
        OSError: the file cannot be opened (``FileNotFoundError`` for a missing one).
        TypeError: ``library`` cannot hold an array the file holds (torch has no str arrays); the
            message names the entry. Big-endian arrays are put in the machine's byte order.
    """
    where = os.fspath(path)
    target = backends.library(library or "numpy") if library is not None or device is not None else None
    if target is not None and target.name == "numpy" and device is None:
        target = None  # numpy arrays as read: no copy
    with open(where, "rb") as file:  # errors opening the file are not damage: they propagate
        file_size = os.fstat(file.fileno()).st_size
        refuse_foreign(where, file.read(8))
        try:
            declared = declared_entries(file, file_size, where)
            file.seek(0)
            with zipfile.ZipFile(file) as archive:
                read = []
                for info in member_infos(archive, where, declared):
                    stem, _, kind = info.filename[:-4].rpartition("|")
                    if kind not in _LEAF_KINDS:
                        raise LoadError(f"load: {where}: entry {info.filename[:-4]!r} was not written by ab.save")
                    entry = f"load: {where}: entry {info.filename[:-4]!r}"
                    read.append((stem, kind, read_member(archive, info, where, file_size), entry))
        except LoadError:
            raise
        except DAMAGE as error:
            raise LoadError(
                f"load: {where} is damaged or not written by ab.save ({type(error).__name__}: {error})"
            ) from error
    names = {stem: _name(array, entry) for stem, kind, array, entry in read if kind == "name"}
    read = [item for item in read if item[1] != "name"]
    # Into the library once the file is read: what it refuses (a dtype or device it lacks) is no damage.
    values = [(stem, _value(kind, array, entry, target, device)) for stem, kind, array, entry in read]
    arrays = {stem: value for (stem, value), (_, kind, _, _) in zip(values, read, strict=True) if kind in _ARRAY_KINDS}
    for stem, name in names.items():
        tensor = arrays.get(stem)
        if not isinstance(tensor, Tensor):
            raise LoadError(f"load: {where}: entry {stem + '|name'!r} names no Tensor stored at {stem!r}")
        tensor.name = name
    return _unflatten(_resolve(values, arrays, where), where)


def _name(array: np.ndarray, entry: str) -> str:
    if array.ndim != 0 or array.dtype.kind != "U":
        raise LoadError(f"{entry} holds {backends.describe(array)}, which no name entry of ab.save holds")
    return str(array.item())


def _resolve(values: list[tuple[str, Any]], arrays: dict[str, Any], where: str) -> list[tuple[str, Any]]:
    """``values`` with each ``|same`` entry replaced by the one object (in ``arrays``) its path names."""
    resolved = []
    for stem, value in values:
        if isinstance(value, _Same):
            if value.path not in arrays:
                raise LoadError(
                    f"load: {where}: entry {stem + '|same'!r} refers to {value.path!r}, which holds no Tensor or array"
                )
            value = arrays[value.path]
        resolved.append((stem, value))
    return resolved
