"""The array libraries autobp computes with, found from the arrays themselves.

``namespace(*arrays)`` gives the library of its array arguments as one object ``xp``: the array
API standard's functions (``xp.exp``, ``xp.sum``, ``xp.matmul``) and the few extras the standard
lacks (``xp.scatter_add``, ``xp.to_numpy``...), which each library's module here supplies:
``numpy.py``, ``torch.py``, ``cupy.py`` and ``strict.py`` (``array-api-strict``, the standard and
nothing more, which the test suite runs on to prove no numpy-only call slipped into an op).

Python scalars (and numpy scalars) belong to no library: they combine with any array. Arrays of
two libraries in one call are an error naming both; autobp never moves data behind your back.
With no array at all, the library is numpy.
"""

from __future__ import annotations

import importlib
import reprlib
import types
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "Namespace",
    "MixedArraysError",
    "LIBRARIES",
    "namespace",
    "refuse_complex",
    "holds_floats",
    "holds_complex",
    "library",
    "library_of",
    "library_name",
    "as_array",
    "move",
    "describe",
    "int_out_of_bounds",
]

# A library's name, as users write it in Tensor.to(...), and the module that adapts it.
LIBRARIES = {
    "numpy": "autobp.backends.numpy",
    "torch": "autobp.backends.torch",
    "cupy": "autobp.backends.cupy",
    "array_api_strict": "autobp.backends.strict",
}
_ALIASES = {"np": "numpy", "strict": "array_api_strict", "pytorch": "torch", "cp": "cupy"}
# The top-level module of an array type -> the library name (for types seen the first time).
_MODULE_ROOTS = {"numpy": "numpy", "torch": "torch", "cupy": "cupy", "array_api_strict": "array_api_strict"}
# Libraries whose arrays may not say `__array_namespace__` (torch's tensors; CuPy 14's ndarray on a
# GPU machine did not, and autobp took a CuPy array for a Python object: every op failed there).
_NO_NAMESPACE = frozenset({"torch", "cupy"})


class MixedArraysError(TypeError):
    """Arrays of two libraries (or devices) met in one operation."""


class Namespace(types.SimpleNamespace):
    """One array library: the standard's functions and autobp's extras, as attributes.

    ``name`` is the library's name (``"numpy"``, ``"torch"``...). Attribute lookups are plain
    instance-dict reads, as fast as a module's: ops call ``xp.exp`` on the hot path.
    """

    name: str

    def __repr__(self) -> str:
        return f"<autobp array library {self.name}>"


def _assemble(module: types.ModuleType) -> Namespace:
    """The standard namespace of a backend module's library, with the module's extras on top."""
    standard = module.standard()
    # The module's own dict, not dir() + getattr: numpy loads submodules (f2py, ma, testing) lazily
    # on attribute access, which would add a tenth of a second to `import autobp`.
    names: dict[str, Any] = {
        k: v for k, v in vars(standard).items() if not k.startswith("_") and not isinstance(v, types.ModuleType)
    }
    names.update({k: getattr(module, k) for k in module.__all__})
    names["name"] = module.NAME
    return Namespace(**names)


_LOADED: dict[str, Namespace] = {}
# An array type -> its library (None: a scalar, belonging to none). Filled as types are met.
_BY_TYPE: dict[type, Namespace | None] = {float: None, int: None, bool: None, complex: None, type(None): None}


def library(name: str) -> Namespace:
    """The library called ``name`` (``"numpy"``, ``"torch"``, ``"cupy"``, ``"array_api_strict"``)."""
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key in _LOADED:
        return _LOADED[key]
    if key not in LIBRARIES:
        raise ValueError(f"unknown array library {name!r}; autobp knows {', '.join(LIBRARIES)}")
    try:
        module = importlib.import_module(LIBRARIES[key])
        loaded = _LOADED[key] = _assemble(module)
    except ImportError as error:
        raise ImportError(
            f"array library {key!r} is not installed ({error}); "
            f"e.g. pip install 'autobp[{key.replace('array_api_', '')}]'"
        ) from error
    return loaded


def _identify(kind: type) -> Namespace | None:
    root = kind.__module__.split(".")[0]
    name = "numpy" if issubclass(kind, np.ndarray) else _MODULE_ROOTS.get(root)  # (subclasses: any module)
    if name == "numpy":
        found = library("numpy") if issubclass(kind, np.ndarray) else None  # numpy scalars: no library
    elif name is not None and (
        hasattr(kind, "__array_namespace__") or (name in _NO_NAMESPACE and hasattr(kind, "dtype"))
    ):
        found = library(name)
    elif hasattr(kind, "__array_namespace__"):
        raise TypeError(
            f"autobp has no backend for arrays of type {root}.{kind.__name__}; it computes with "
            f"{', '.join(LIBRARIES)} arrays"
        )
    else:
        found = None  # lists, tuples, slices, dtypes...: not arrays of a library
    _BY_TYPE[kind] = found
    return found


def library_of(value: Any) -> Namespace | None:
    """The library of one array (None for Python and numpy scalars and other non-arrays)."""
    kind = type(value)
    try:
        return _BY_TYPE[kind]
    except KeyError:
        return _identify(kind)


def holds_floats(value: Any) -> bool:
    """Whether a result holds floating-point values, real or complex: an array of any library, a
    numpy or Python scalar, or a tuple or list holding one (integers, bools and others do not).
    What can carry a gradient: an op's result that does not is a constant."""
    if isinstance(value, np.ndarray | np.generic):
        return value.dtype.kind in "fc"
    if isinstance(value, tuple | list):
        return any(holds_floats(item) for item in value)
    if isinstance(value, float | complex):
        return True
    lib = library_of(value)
    return lib is not None and bool(lib.isdtype(value.dtype, ("real floating", "complex floating")))


def holds_complex(value: Any) -> bool:
    """Whether an op's result holds complex values: an array of any library, a numpy or Python
    scalar. A real function's graph cannot carry them (``public_function``, ``forward.propagate``)."""
    if isinstance(value, np.ndarray | np.generic):
        return value.dtype.kind == "c"
    if isinstance(value, complex):
        return True
    lib = library_of(value)
    return lib is not None and bool(lib.isdtype(value.dtype, "complex floating"))


def refuse_complex(value: Any, what: str, role: str) -> None:
    """A ``TypeError`` for a complex ``value`` (an array, or a Tensor's) given as a real function's
    ``role`` (a tangent, a gradient): cast to the real dtype, it would lose its imaginary part with
    no more than a warning. Called where the dtype differs from the real one, off the usual path."""
    from autobp.tensor import Tensor  # (autobp.tensor imports this module)

    data = value.data if isinstance(value, Tensor) else value
    lib = library_of(data)
    complex_dtype = (
        np.asarray(data).dtype.kind == "c" if lib is None else bool(lib.isdtype(data.dtype, "complex floating"))
    )
    if complex_dtype:
        raise TypeError(
            f"{what}: {role} is {describe(value)}, complex, but autobp's functions are real: cast to "
            "the real dtype, its imaginary part would be dropped; pass its real part, or the real and "
            "imaginary parts as two real directions"
        )


def namespace(*arrays: Any) -> Namespace:
    """The library of the arrays among ``arrays`` (numpy when there are none).

    Raises:
        MixedArraysError: arrays of two libraries, or of one library on two devices.
    """
    found: Namespace | None = None
    first: Any = None
    for value in arrays:
        kind = type(value)
        try:
            lib = _BY_TYPE[kind]
        except KeyError:
            lib = _identify(kind)
        if lib is None:
            continue
        if found is None:
            found, first = lib, value
        elif lib is not found:
            raise MixedArraysError(
                f"arrays of two libraries in one operation: {describe(first)} and {describe(value)}; "
                "move one first, e.g. t.to('numpy') or t.to('torch', device='cuda')"
            )
        elif lib.name != "numpy" and lib.device_name(value) != lib.device_name(first):
            raise MixedArraysError(
                f"arrays on two devices in one operation: {describe(first)} and {describe(value)}; "
                "move one first, e.g. t.to(device='cuda')"
            )
    return found if found is not None else library("numpy")


_SCALARS = (np.generic, float, int)  # (a tuple: isinstance walks a `|` union more slowly)


def as_array(value: Any) -> Any:
    """An op's result as an array: another library's array as it is, anything else through numpy."""
    if isinstance(value, _SCALARS):  # numpy's scalar results (a total sum, a 0-d op's result)
        return np.asarray(value)
    return value if library_of(value) not in (None, _numpy()) else np.asarray(value)


def _numpy() -> Namespace:
    return library("numpy")


def move(array: Any, target: Namespace, device: Any = None) -> Any:
    """A copy of ``array`` in library ``target`` on ``device`` (None: the default device, or the
    array's own device when the library does not change)."""
    source = namespace(array)
    if source is target:
        if device is None:
            device = source.device(array)
        return target.asarray(array, device=device, copy=True) if source.name != "numpy" else np.array(array, copy=True)
    return target.from_numpy(source.to_numpy(array), device)


def library_name(value: Any) -> str:
    """``"numpy"``, ``"torch"``...: the library of an array (numpy for scalars)."""
    lib = library_of(value)
    return "numpy" if lib is None else lib.name


def int_out_of_bounds(array: Any, value: Any) -> int | None:
    """The first Python int in ``value`` (a number, or lists and tuples of them) that the integer
    dtype of ``array`` cannot hold; None where there is none, or ``array`` holds no integers.

    numpy 2 raises ``OverflowError`` for such an int (``u8 + 300``, ``u8[0] = -1``); torch wraps
    it silently (to 44, to 255), so autobp raises numpy's error there itself.
    """
    if type(value) is not int and not isinstance(value, list | tuple):  # (bools are not ints here)
        return None
    dtype = getattr(array, "dtype", None)
    key = (type(dtype), dtype)  # (never == between two libraries' dtypes: array-api-strict warns)
    try:
        bounds = _BOUNDS[key]
    except KeyError:  # (once per dtype: ops on torch meet `t * 2` all the time)
        lib = library_of(array) or _numpy()  # (numpy scalars: numpy's dtypes)
        integral = dtype is not None and lib.isdtype(dtype, "integral")
        bounds = _BOUNDS[key] = (int(lib.iinfo(dtype).min), int(lib.iinfo(dtype).max)) if integral else None
    if bounds is None:
        return None
    return next((n for n in _python_ints(value) if not bounds[0] <= n <= bounds[1]), None)


# (dtype type, dtype) -> the (min, max) of its integers, None for other dtypes.
_BOUNDS: dict[tuple[type, Any], tuple[int, int] | None] = {}


def _python_ints(value: Any) -> Iterator[int]:
    if type(value) is int:
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _python_ints(item)


_REPR = reprlib.Repr()
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 6
_REPR.maxstring = _REPR.maxother = 60


def _short_repr(value: Any) -> str:
    """``repr(value)`` cut short: an error message shows a long list's first items, not all of them."""
    return _REPR.repr(value)


def describe(value: Any) -> str:
    """How every error message shows a value: ``float64[3, 4]`` for numpy arrays and Tensors,
    ``torch float32[3] on cuda:0`` for other libraries' (and their Tensors), ``float 2.0`` for scalars.

    >>> import autobp as ab
    >>> describe(ab.zeros(3, 4)), describe(2.0)
    ('float64[3, 4]', 'float 2.0')
    """
    from autobp.tensor import Tensor  # (an error path: autobp.tensor imports this module)

    data = value.data if isinstance(value, Tensor) else value
    lib = library_of(data)
    if lib is None:
        if isinstance(data, np.generic):
            return f"{data.dtype}[]"
        return f"{type(value).__name__} {_short_repr(value)}"
    shown = f"{lib.dtype_name(data.dtype)}{list(data.shape)}"
    if lib.name == "numpy":
        return shown
    device = lib.device_name(data)
    return f"{lib.name} {shown}" + ("" if device == "cpu" else f" on {device}")
