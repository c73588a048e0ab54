"""Tensor's methods that are functions defined elsewhere, and the one place that installs them.

Two kinds. Table entries in Tensor's class body name an op (``__mul__ = op("mul")``,
``exp = NAMESAKE``): ``install`` replaces each with the op function itself, so ``t * u`` runs
``ab.mul(t, u)`` with no Python frame between (benchmarks/instructions.py w2). And modules that
keep a cohesive group of Tensor's methods (``autobp.tensor.values``, ``autobp.tensor.inplace``)
list them in ``TENSOR_METHODS``; ``install`` sets those functions on Tensor as they are (no
wrapper either). Those modules import Tensor, so they cannot be imported by ``autobp.tensor``;
Tensor's class body declares their methods under ``TYPE_CHECKING`` for type checkers.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["NAMESAKE", "binary", "install", "op", "ops_named"]

_Method = Callable[..., Any]


class _OpEntry:
    """An entry of Tensor's method table: op ``name`` (empty: the attribute's own name), its
    operands swapped when ``reflected`` (``2 - t``). ``install`` puts the op in its place."""

    __slots__ = ("name", "reflected")

    def __init__(self, name: str = "", reflected: bool = False) -> None:
        self.name, self.reflected = name, reflected


def op(name: str = "") -> _Method:
    """The table entry for op ``name`` (typed as a method, so mypy checks ``t.exp()``)."""
    return _OpEntry(name)  # type: ignore[return-value]


def ops_named(*names: str) -> tuple[_Method, ...]:
    """Table entries for several ops, in order: ``__lt__, __le__ = ops_named("less", "less_equal")``."""
    return tuple(op(name) for name in names)


def binary(name: str) -> tuple[_Method, _Method]:
    """The operator and its reflected twin (``__add__``, ``__radd__``) for op ``name``."""
    return op(name), _OpEntry(name, reflected=True)  # type: ignore[return-value]


NAMESAKE = op()  # the op of the attribute's own name: ``exp = NAMESAKE`` makes ``t.exp()`` ``ab.exp(t)``


def install(cls: type, ops: ModuleType, *method_modules: ModuleType) -> None:
    """Make each table entry of ``cls`` the op of ``ops`` it names, and set the functions each of
    ``method_modules`` lists in ``TENSOR_METHODS`` on ``cls`` under their own names."""
    for name, entry in list(vars(cls).items()):
        if isinstance(entry, _OpEntry):
            function = getattr(ops, entry.name or name)
            setattr(cls, name, _swapped(function, name) if entry.reflected else function)
    for module in method_modules:
        for name in module.TENSOR_METHODS:
            setattr(cls, name, getattr(module, name))


def _swapped(function: Callable[..., Any], name: str) -> Callable[[Any, Any], Any]:
    def reflected(self: Any, other: Any) -> Any:
        return function(other, self)

    reflected.__name__ = reflected.__qualname__ = name
    reflected.__doc__ = f"The reflected operator: ``{function.__name__}(other, self)``."
    return reflected
