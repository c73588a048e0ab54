"""``save`` and ``load``: state dicts in ``.npz`` files that never run code when read.

A state dict (nested dicts, lists and tuples of Tensors, arrays and scalars) is flattened to one
array per leaf. Each entry's name spells its path and kinds, so no pickle and no JSON is needed:
``d:model/d:fc1.weight|tensor`` is the Tensor at ``obj["model"]["fc1.weight"]``. Path segments
are ``d:key`` (dict with str key), ``i:key`` (dict with int key), ``l:index`` (list) and
``t:index`` (tuple); ``/`` and ``%`` inside keys are percent-escaped. Reading uses
``allow_pickle=False``, and a file that carries a pickled object is refused with an error naming
the file and the entry.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from autobp.tensor import Tensor

__all__ = ["save", "load"]

_LEAF_KINDS = (
    "tensor",
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
)
_EMPTY = {"empty_dict": dict, "empty_list": list, "empty_tuple": tuple}


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace("/", "%2F").replace("|", "%7C")


def _unescape(key: str) -> str:
    return key.replace("%7C", "|").replace("%2F", "/").replace("%25", "%")


def _leaf(value: Any, where: str) -> tuple[str, np.ndarray]:
    if isinstance(value, Tensor):
        kind, array = "tensor", value.data
    elif isinstance(value, np.ndarray):
        kind, array = "array", value
    elif isinstance(value, np.generic):
        kind, array = "scalar", np.asarray(value)
    elif isinstance(value, bool):
        kind, array = "bool", np.asarray(value)
    elif isinstance(value, int):
        kind, array = "int", np.asarray(value, dtype=np.int64)
    elif isinstance(value, float):
        kind, array = "float", np.asarray(value, dtype=np.float64)
    elif isinstance(value, str):
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


def _flatten(obj: Any, path: str) -> Iterator[tuple[str, np.ndarray]]:
    if isinstance(obj, dict | list | tuple) and len(obj) == 0:
        kind = "empty_dict" if isinstance(obj, dict) else "empty_list" if isinstance(obj, list) else "empty_tuple"
        yield f"{path}|{kind}", np.zeros(0)
    elif isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str):
                segment = f"d:{_escape(key)}"
            elif isinstance(key, int) and not isinstance(key, bool):
                segment = f"i:{key}"
            else:
                raise TypeError(f"save: dict keys must be str or int, got {key!r} at {path or 'the top'!r}")
            yield from _flatten(value, f"{path}/{segment}" if path else segment)
    elif isinstance(obj, list | tuple):
        tag = "l" if isinstance(obj, list) else "t"
        for index, value in enumerate(obj):
            yield from _flatten(value, f"{path}/{tag}:{index}" if path else f"{tag}:{index}")
    else:
        kind, array = _leaf(obj, path)
        yield f"{path}|{kind}", array


def save(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` (a Tensor, array, scalar, or nested dict/list/tuple of them) to an ``.npz`` file.

    Values are stored exactly (dtype and shape kept); nothing is pickled.

    >>> import autobp as ab, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> ab.save({"w": ab.tensor([1.0, 2.0]), "step": 3}, path)
    >>> ab.load(path)
    {'w': tensor([1., 2.]), 'step': 3}
    """
    entries = dict(_flatten(obj, ""))
    with open(path, "wb") as file:
        # numpy's stubs read **entries as the allow_pickle flag
        np.savez(file, **entries)  # type: ignore[arg-type]


def _value(kind: str, array: np.ndarray) -> Any:
    if kind == "tensor":
        return Tensor(array)
    if kind == "array":
        return array
    if kind == "scalar":
        return array[()]
    if kind in _EMPTY:
        return _EMPTY[kind]()
    if kind == "none":
        return None
    return {"float": float, "int": int, "bool": bool, "str": str}[kind](array.item())


def _parse_segment(segment: str, where: str) -> tuple[str, Any]:
    tag, _, key = segment.partition(":")
    if tag == "d":
        return "d", _unescape(key)
    if tag in ("i", "l", "t") and key.lstrip("-").isdigit():
        return tag, int(key)
    raise ValueError(f"load: {where}: malformed entry name")


def _unflatten(items: list[tuple[str, Any]], where: str) -> Any:
    root: dict[str, Any] = {}
    for name, value in items:
        segments = name.split("/") if name else []
        node: Any = root
        key: Any = ""
        for segment in segments:
            node = node.setdefault(key, {})
            key = _parse_segment(segment, f"{where}, entry {name!r}")
        node[key] = value
    return _build(root.get("", root))


def _build(node: Any) -> Any:
    # Containers were read as dicts keyed by (tag, key); turn lists and tuples back into sequences.
    if not isinstance(node, dict) or not node or not all(isinstance(k, tuple) for k in node):
        return node
    tags = {tag for tag, _ in node}
    if tags <= {"l"} or tags <= {"t"}:
        items = [_build(node[k]) for k in sorted(node, key=lambda k: k[1])]
        return items if tags == {"l"} else tuple(items)
    return {key: _build(value) for (_, key), value in node.items()}


def load(path: str | os.PathLike[str]) -> Any:
    """Read an object written by ``save``. Pickled content is never unpickled: it is refused.

    Raises:
        ValueError: the file holds a pickled object or an object array, or is not an autobp file.
    """
    where = os.fspath(path)
    try:
        archive = np.load(where, allow_pickle=False)
    except ValueError as error:  # numpy refuses anything it would have to unpickle, before reading it
        raise ValueError(
            f"load: {where} is not an .npz file written by ab.save: numpy would have to unpickle it, "
            f"which autobp never does ({error})"
        ) from error
    except zipfile.BadZipFile as error:
        raise ValueError(f"load: cannot read {where} as an .npz file: {error}") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"load: {where} is a single .npy array, not a file written by ab.save")
    items = []
    with archive:
        for name in archive.files:
            stem, _, kind = name.rpartition("|")
            if kind not in _LEAF_KINDS:
                raise ValueError(f"load: {where}: entry {name!r} was not written by ab.save")
            try:
                array = archive[name]
            except ValueError as error:
                raise ValueError(
                    f"load: {where}: entry {name!r} holds a pickled object array; refused (never unpickled)"
                ) from error
            items.append((stem, _value(kind, array)))
    return _unflatten(items, where)
