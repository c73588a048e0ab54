"""Tensor's methods that hand its values to Python and numpy: ``repr``, ``str``, ``format``,
``len``, iteration, ``bool``, ``float``, ``int``, ``__index__``, ``__array__`` and
``__array_function__`` (numpy's functions given Tensors).

Each reads the values out of the graph, so a tape notes the read (``graph.note_read``). They are
Tensor's methods as they stand here, installed by ``autobp.tensor.method_table.install`` (this module
imports Tensor, so Tensor's module cannot import it); Tensor's class body declares them for type
checkers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from autobp import backends, graph
from autobp.forward import first_carrying_tangent
from autobp.grad_mode import is_grad_enabled
from autobp.tensor import Tensor, first_requiring_grad, refuse_dropping

TENSOR_METHODS = (
    "_host",
    "__array__",
    "__array_function__",
    "__len__",
    "__iter__",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
    "__repr__",
    "__str__",
    "__format__",
)


def _host(self: Tensor, how: str) -> np.ndarray:
    """The data as a numpy array, for a value that goes into Python (a tape notes the read).

    Shapes: the tensor's.
    """
    graph.note_read(self, how)
    data = self.data
    return data if type(data) is np.ndarray else backends.namespace(data).to_numpy(data)


def __array__(self: Tensor, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
    """The numpy array itself (numpy reading the tensor); refused for other libraries' arrays."""
    graph.note_read(self, "__array__ (numpy reading the tensor)")
    made = graph._local.modes.copying
    if made is not None:  # an element of the list a Tensor is made from
        refuse_dropping(self, made, True)
    if type(self.data) is not np.ndarray:
        raise TypeError(
            f"numpy cannot read a {self.library} tensor in place (no silent copy to the host); "
            "call t.numpy() for a host copy, or t.to('numpy')"
        )
    if dtype is not None and dtype != self.data.dtype:
        if copy is False:  # numpy 2's contract: never a silent copy where none was allowed
            raise ValueError(
                f"__array__: a {self.data.dtype} tensor read as {np.dtype(dtype)} is a copy, and copy=False was "
                "given; use np.asarray(t, dtype=...) (copy=None) to allow one"
            )
        return self.data.astype(dtype)
    return self.data.copy() if copy else self.data


def __array_function__(self: Tensor, func: Any, types: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """numpy's functions given Tensors (``np.dot(a, t)``, ``np.where``, ``np.clip``...): numpy's
    own implementation, which reads them as it did before numpy asked (``__array__``, ``.shape``),
    with one refusal. A floating-point result computed, with grad mode on, from a tensor that
    requires grad is on no graph: the gradient through it would be lost with no error
    (``(x * x).sum() + np.dot(a, x)`` gave ``x.grad`` without the ``np.dot`` term). That is a
    ``TypeError`` naming the numpy function and the tensor, as PyTorch refuses ``numpy()`` of
    such a tensor; predicates and indices (``np.allclose``, ``np.argmax``), Tensors an
    implementation hands back (``np.sum`` calls ``t.sum``), and calls under ``no_grad()`` are as
    before. The same holds in forward mode, under ``no_grad()`` too (tangents flow there): a
    tensor carrying a tangent at an active level would lose it (``jvp`` of
    ``exp(x) + np.clip(x, 0, 1)`` gave the ``exp`` term only), so it is refused alike."""
    try:
        result = func._implementation(*args, **kwargs)  # (numpy >= 2.1, which autobp requires, has it)
    except TypeError as error:
        if "unexpected keyword argument" not in str(error):
            raise
        # numpy's reductions call the Tensor's own method with numpy's keywords (out=, dtype=)
        name = func.__name__
        own = f"ab.{name}(t) or t.{name}()" if _autobp_has(name) else "autobp's ops"
        raise TypeError(
            f"{func.__module__}.{name}: numpy calls the tensor's own method with numpy's keywords, which it "
            f"does not take ({error}); use {own}, or np.{name}(t.numpy()) for a numpy result"
        ) from error
    if backends.holds_floats(result):
        tracked = first_requiring_grad((*args, *kwargs.values())) if is_grad_enabled() else None
        why = "which requires grad; numpy's result is on no graph, so the gradient through it"
        levels = graph._local.modes.forward
        if tracked is None and levels:
            tracked = first_carrying_tangent((*args, *kwargs.values()), levels)
            why = "which carries a forward-mode tangent; numpy's result carries none, so the tangent through it"
        if tracked is not None:
            name = func.__name__
            own = f"ab.{name}" if _autobp_has(name) else "autobp's ops"
            raise TypeError(
                f"{func.__module__}.{name}: given tensor {backends.describe(tracked)}, {why} would be lost. "
                f"Compute it with {own}, or pass t.detach() for a constant"
            )
    return result


def _autobp_has(name: str) -> bool:
    """Whether autobp has a function of numpy's ``name`` (to name it in an error)."""
    import autobp  # (loaded by now: a Tensor exists)

    return hasattr(autobp, name)


def __len__(self: Tensor) -> int:
    if self.ndim == 0:
        raise TypeError("len() of a 0-d tensor")
    return int(self.shape[0])


def __iter__(self: Tensor) -> Iterator[Tensor]:
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    for i in range(len(self)):
        yield self[i]


def __bool__(self: Tensor) -> bool:
    if self.size != 1:
        raise ValueError(
            f"bool(): the truth value of a tensor of shape {self.shape} is ambiguous; reduce it "
            "first, e.g. bool((t > 0).numpy().all())"
        )
    return bool(_host(self, "bool()"))


def __float__(self: Tensor) -> float:
    return float(self.item())


def __int__(self: Tensor) -> int:
    return int(self.item())


def __index__(self: Tensor) -> int:
    """A one-element integer tensor as a Python int (``range(t)``, ``items[t]``), as PyTorch allows."""
    value = _host(self, "__index__").item() if self.size == 1 else None
    if type(value) is not int:  # (a bool is no index either)
        raise TypeError(
            f"__index__: only one-element integer tensors can be used as an index, got {backends.describe(self)}"
        )
    return value


def __repr__(self: Tensor) -> str:
    return _text(self, "repr()")


def __str__(self: Tensor) -> str:
    return _text(self, "str()")


def __format__(self: Tensor, spec: str) -> str:
    if spec:  # as object.__format__, which would otherwise read the values through str() unnoted
        raise TypeError(f"unsupported format string passed to {type(self).__name__}.__format__")
    return _text(self, "format()")


def _text(self: Tensor, how: str) -> str:
    """The values as text: Python code can decide on it (its length, say) as on ``.item()``."""
    graph.note_read(self, how)
    data = self.data
    extras = []
    if type(data) is not np.ndarray:
        xp = backends.namespace(data)
        data = xp.to_numpy(data)
        extras.append(f"library={xp.name}")
        if xp.device_name(self.data) != "cpu":
            extras.append(f"device={xp.device_name(self.data)}")
    body = np.array2string(data, separator=", ", prefix="tensor(")
    if data.dtype not in (np.float64, np.int64, np.bool_):
        extras.append(f"dtype={data.dtype}")
    if self.op is not None:
        extras.append(f"grad_fn=<{self.op.name}>")
    elif self.requires_grad:
        extras.append("requires_grad=True")
    return "tensor(" + ", ".join([body, *extras]) + ")"
