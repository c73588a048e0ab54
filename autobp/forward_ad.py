"""Dual tensors for forward mode, under PyTorch's names: ``ab.forward_ad``.

Inside ``dual_level()``, ``make_dual(primal, tangent)`` gives a Tensor that carries a tangent;
every op carries it on (``autobp.forward``); ``unpack_dual`` reads the tangent of a result.

>>> import autobp as ab
>>> with ab.forward_ad.dual_level():
...     x = ab.forward_ad.make_dual(ab.tensor([1.0, 2.0]), ab.tensor([1.0, 0.0]))
...     y = ab.forward_ad.unpack_dual(x * x)
>>> y.tangent.tolist()
[2.0, 0.0]
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from autobp import grad_mode, graph
from autobp.backends import MixedArraysError, describe, namespace, refuse_complex
from autobp.forward import ForwardModeError, Level
from autobp.tensor import Tensor

__all__ = ["dual_level", "make_dual", "unpack_dual", "UnpackedDual", "ForwardModeError"]

_local = graph._local  # the per-thread modes


class dual_level:
    """Context manager: a forward-mode level; tangents made inside it are dropped on exit.

    ``differentiable=False`` computes tangents without recording a graph for them (faster; what
    ``autobp.functional.jvp`` does unless ``create_graph=True``). Entered inside another level or
    inside a function a transform differentiates, the level is differentiable all the same, as
    ``autobp.functional``'s own levels are there (``functional_args.differentiable``).
    """

    def __init__(self, differentiable: bool = True) -> None:
        self.differentiable = differentiable
        self.level = Level(differentiable)

    def __enter__(self) -> dual_level:
        graph.refuse_while_tracing("forward mode (dual_level, jvp, hvp)")
        modes = _local.modes
        # A plain level's tangents are arrays, on no graph and carrying no outer tangent: an outer
        # level or transform read them as constants, and jvp of a hand-written inner jvp gave 0
        # where the second derivative is 1.5155. (Decided on entering, before any tangent is kept.)
        self.level.plain = not (self.differentiable or modes.forward is not None or modes.transforms > 0)
        levels = modes.forward or ()
        _local.modes.forward = (*levels, self.level)
        return self

    def __exit__(self, *exc: object) -> None:
        levels = _local.modes.forward or ()
        if not levels or levels[-1] is not self.level:
            raise RuntimeError("dual_level: levels must be exited in the reverse order of entering them")
        _local.modes.forward = levels[:-1] or None
        self.level.active = False  # (the entries tensors keep at it are never looked up again)


def _innermost(what: str) -> Level:
    if _local.modes.forward is None:
        raise RuntimeError(f"{what}: no forward-mode level is active; use it inside `with dual_level():`")
    level: Level = _local.modes.forward[-1]
    return level


def make_dual(primal: Any, tangent: Any, level: dual_level | None = None) -> Tensor:
    """A Tensor with the values of ``primal`` that carries ``tangent`` at the innermost level.

    The result is a new Tensor (``primal`` itself carries no tangent at this level; the tangents
    it carries at other levels, the result carries too); when ``primal`` requires grad the result
    is differentiable with respect to it. Shapes: ``tangent`` has the shape of
    ``primal``; it is cast to ``primal``'s dtype, which must be floating point.

    >>> import autobp as ab
    >>> with ab.forward_ad.dual_level():
    ...     x = ab.forward_ad.make_dual(ab.tensor(3.0), ab.tensor(1.0))
    ...     ab.forward_ad.unpack_dual(x**2).tangent.item()
    6.0
    """
    # Inside tape.hvp's trace it would mark tape.hvp's own level, with a view the tape cannot see.
    graph.refuse_while_tracing("forward mode (make_dual)")
    target = level.level if level is not None else _innermost("make_dual")
    if not target.active:
        raise RuntimeError("make_dual: its dual_level has been exited")
    primal = primal if isinstance(primal, Tensor) else Tensor(primal)
    tangent = tangent if isinstance(tangent, Tensor) else Tensor(tangent)
    if not _is_float(primal):
        raise TypeError(f"make_dual: primal is {describe(primal)}; only floating-point tensors carry tangents")
    if type(tangent.data) is not type(primal.data):
        try:
            namespace(primal.data, tangent.data)  # another library or device: an error naming both
        except MixedArraysError as error:
            raise MixedArraysError(f"make_dual: the primal and the tangent are {error}") from None
    if tangent.shape != primal.shape:
        raise ValueError(
            f"make_dual: tangent has shape {tangent.shape} but primal has shape {primal.shape}; they must match"
        )
    if tangent.dtype != primal.dtype:
        refuse_complex(tangent, "make_dual", "the tangent")
        tangent = tangent.astype(primal.dtype)
    if primal.requires_grad and grad_mode.is_grad_enabled():
        from autobp.ops.elementwise import copy

        saved, _local.modes.forward = _local.modes.forward, None  # the copy must not take primal's own tangents
        try:
            dual = copy(primal)
        finally:
            _local.modes.forward = saved
    else:
        dual = Tensor._wrap(graph.new_view(primal.data))  # a view: the primal's array never carries the tangent
        dual._share_storage_with(primal)  # one storage, one counter: a write through the dual is seen by graphs
    # The tangents primal carries at the other levels go with it (make_dual of a tensor that is
    # dual at an outer level, as nested forward mode does): dropped, they read as zeros there.
    for other in _local.modes.forward or ():
        if other is not target:
            carried = other.get(primal)
            if carried is not None:
                other.set(dual, carried)
    target.set(dual, tangent)
    return dual


def _is_float(tensor: Tensor) -> bool:
    data = tensor.data
    return data.dtype.kind == "f" if type(data) is np.ndarray else bool(namespace(data).float_dtype(data.dtype))


def attach(level: dual_level, tensor: Tensor, tangent: Tensor) -> None:
    """Give ``tensor`` itself ``tangent`` at ``level`` (for the functional transforms, whose fresh
    leaves are theirs to mark; users call ``make_dual``). Shapes and dtypes must already match."""
    level.level.set(tensor, tangent)


def tangent_of(level: dual_level, tensor: Tensor) -> Tensor | None:
    """The tangent of ``tensor`` at ``level``, or None."""
    return level.level.get(tensor)  # type: ignore[no-any-return]


class UnpackedDual(NamedTuple):
    """What ``unpack_dual`` returns: the values and the tangent (None when there is none)."""

    primal: Tensor
    tangent: Tensor | None


def unpack_dual(tensor: Tensor, level: dual_level | None = None) -> UnpackedDual:
    """``(primal, tangent)`` of ``tensor`` at the innermost level; the tangent is None if it has none.

    The primal is ``tensor`` cut from its tangent and from the graph: ``tensor.detach()``, which
    shares its memory and version counter (read-only if ``tensor`` requires grad), so that a
    write through it cannot change what a graph saved unnoticed. Shapes: both have ``tensor``'s shape.
    """
    target = level.level if level is not None else _innermost("unpack_dual")
    if not isinstance(tensor, Tensor):
        raise TypeError(f"unpack_dual: expected a Tensor, got {type(tensor).__name__}")
    return UnpackedDual(tensor.detach(), target.get(tensor))
