"""Forward mode: tangents carried alongside values, one pass, from the ops' jvp rules.

Inside ``dual_level()``, ``make_dual(primal, tangent)`` gives a Tensor that carries a tangent;
every op applied to tensors that carry one computes its output's tangent from the op's jvp
rules (``OpDef.jvp_rules``, next to the vjp rules) and attaches it; ``unpack_dual`` reads it
back. No backward graph is built for the tangents beyond what grad mode records anyway.

>>> import autobp as ab
>>> with ab.forward_ad.dual_level():
...     x = ab.forward_ad.make_dual(ab.tensor([1.0, 2.0]), ab.tensor([1.0, 0.0]))
...     y = ab.forward_ad.unpack_dual(x * x)
>>> y.tangent.tolist()
[2.0, 0.0]

Levels nest (forward-of-forward): a rule of one level runs with only the levels outside it
active, so their tangents flow through it, and its own tangents are never differentiated by
itself. Rules are written in autobp ops, so tangents are differentiable in reverse mode too,
and gradients computed with ``create_graph=True`` inside a level carry tangents
(forward-over-reverse: ``autobp.functional.hvp``). A first-order backward inside a level runs
its rules on plain arrays: its gradients carry no tangent (``unpack_dual`` gives None).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from autobp import graph
from autobp.tensor import Tensor

__all__ = ["dual_level", "make_dual", "unpack_dual", "UnpackedDual", "ForwardModeError"]

_mode = graph._mode


class ForwardModeError(NotImplementedError):
    """An op without a jvp rule met a tensor carrying a tangent."""


class _Level:
    """One forward-mode level: the tangents of the tensors made or marked inside it.

    Tangents are keyed by the tensor's ``grad_fn`` when it has one (the engine wraps a node's
    output anew when it runs vjp rules on Tensors: the node finds the tangent again), else by
    the tensor itself. A leaf's entry keeps its version: an in-place change afterwards makes
    the tangent stale, and reading it then raises. A level whose tangents are not
    differentiated (``plain``) keeps them as arrays, which its rules then take as they are.
    """

    __slots__ = ("tangents", "plain", "active")

    def __init__(self, differentiable: bool) -> None:
        self.tangents: dict[Any, tuple[Any, Tensor, int]] = {}
        self.plain = not differentiable  # tangents are arrays, computed without recording
        self.active = True

    def get(self, value: Any) -> Tensor | None:
        """The tangent of ``value`` (a Tensor, or a constant: None) at this level, or None."""
        if not isinstance(value, Tensor):
            return None
        entry = self.tangents.get(value.grad_fn or value)
        if entry is None:
            return None
        tangent, tensor, version = entry
        if tensor._version != version:
            raise _stale(tensor)
        return Tensor._wrap(tangent) if self.plain else tangent

    def set(self, tensor: Tensor, tangent: Tensor) -> None:
        self.tangents[tensor.grad_fn or tensor] = (tangent.data if self.plain else tangent, tensor, tensor._version)


def _stale(tensor: Tensor) -> RuntimeError:
    return RuntimeError(
        f"forward mode: tensor {tensor.dtype}{list(tensor.shape)} was modified in place after it received a "
        "tangent, which no longer describes it; make the dual again after the change"
    )


def _error(opdef: Any) -> ForwardModeError:
    return ForwardModeError(
        f"{opdef.name}: forward mode (jvp, hvp, make_dual) reached this op with a tangent, but it has no jvp "
        f"rule; give it one with {opdef.name}.defjvp(...) (see docs/custom-ops.md)"
    )


def propagate(opdef: Any, args: Sequence[Any], kwargs: Any, out: Tensor) -> None:
    """Attach to ``out`` its tangent at every active level where an input carries one.

    Called by each op (``autobp.ops.registry``) while a level is active. Outer levels go first:
    a rule of an inner level then sees the outer tangents of the output it reads.
    """
    levels = _mode.forward
    if len(levels) == 1 and levels[0].plain and opdef.jvp_plain_arrays and opdef.jvp_rules and _mode.tape is None:
        _propagate_on_arrays(opdef, levels[0], args, kwargs, out)  # the fast path (W5, benchmarks/w5_hvp.py)
        return
    for depth, level in enumerate(levels):
        tangents = [level.get(value) for value in args]
        if not any(t is not None for t in tangents) or not opdef.differentiable:
            continue  # no tangent here, or integer or boolean results: nothing to carry
        if not opdef.has_jvp:
            raise _error(opdef)
        # The rule runs with only the outer levels on: they differentiate it, this one does not.
        _mode.forward = levels[:depth] or None
        try:
            with graph.set_grad_enabled(not level.plain and graph.is_grad_enabled()):
                tangent = _on_tensors(opdef, tangents, args, kwargs, out)
        finally:
            _mode.forward = levels
        if tangent is not None:
            level.set(out, tangent)


def _propagate_on_arrays(opdef: Any, level: _Level, args: Sequence[Any], kwargs: Any, out: Tensor) -> None:
    """``propagate`` for one plain level and rules that take arrays: the rules cost what numpy costs."""
    known, rules = level.tangents, opdef.jvp_rules
    parts = []
    for i, value in enumerate(args):
        if isinstance(value, Tensor):
            entry = known.get(value.grad_fn or value)
            if entry is not None:
                if entry[1]._version != entry[2]:
                    raise _stale(entry[1])
                if rules[i] is not None:
                    parts.append((rules[i], entry[0]))
    if not parts:
        return
    arrays = [value.data if isinstance(value, Tensor) else value for value in args]
    previous = _mode.arrays
    _mode.arrays = True  # the rules' ops act as numpy functions
    try:
        total = _quiet_parts(parts, out.data, arrays, kwargs)
    finally:
        _mode.arrays = previous
    if total is not None:
        level.tangents[out.grad_fn or out] = (_fit(total, out.data), out, out._version)


def _parts(parts: list[tuple[Any, Any]], out: np.ndarray, arrays: list[Any], kwargs: Any) -> Any:
    total = None
    for rule, tangent in parts:
        part = rule(tangent, out, *arrays, **kwargs)
        if part is not None:
            total = part if total is None else total + part
    return total


# Rules on arrays use numpy's operators, not the ops' quiet forwards: silence numpy's warnings,
# as the engine does (errstate as a decorator costs half of a ``with`` block per call).
_quiet_parts = np.errstate(all="ignore")(_parts)


def _on_tensors(opdef: Any, tangents: list[Any], args: Sequence[Any], kwargs: Any, out: Tensor) -> Tensor | None:
    """The output's tangent from the op's rules run on Tensors (constants wrapped)."""
    inputs = [value if isinstance(value, Tensor) else Tensor._wrap(value) for value in args]
    if opdef.jvp_variadic_rule is not None:
        result = opdef.jvp_variadic_rule(tangents, out, *inputs, **kwargs)
    else:
        result = None
        for rule, tangent in zip(opdef.jvp_rules, tangents, strict=True):
            if tangent is not None and rule is not None:
                part = rule(tangent, out, *inputs, **kwargs)
                if part is not None:
                    result = part if result is None else result + part
    if result is None:
        return None
    if not isinstance(result, Tensor):
        result = Tensor._wrap(result)
    if result.shape != out.shape:
        result = _broadcast(result, out.shape)
    if result.dtype != out.dtype:
        result = result.astype(out.dtype)
    return result


def _broadcast(tangent: Tensor, shape: tuple[int, ...]) -> Tensor:
    from autobp.ops.shape import broadcast_to

    return broadcast_to(tangent, shape)  # type: ignore[no-any-return]


def _fit(tangent: Any, out: np.ndarray) -> np.ndarray:
    """A tangent array of the output's shape and dtype (a rule's part may broadcast)."""
    if type(tangent) is not np.ndarray:
        tangent = np.asarray(tangent)
    if tangent.shape != out.shape:
        tangent = np.broadcast_to(tangent, out.shape)
    if tangent.dtype != out.dtype:
        tangent = tangent.astype(out.dtype)
    return tangent


# -- the user API ------------------------------------------------------------------------------------
class dual_level:
    """Context manager: a forward-mode level; tangents made inside it are dropped on exit.

    ``differentiable=False`` computes tangents without recording a graph for them (faster; what
    ``autobp.functional.jvp`` does unless ``create_graph=True``).
    """

    def __init__(self, differentiable: bool = True) -> None:
        self.level = _Level(differentiable)

    def __enter__(self) -> dual_level:
        graph.refuse_while_tracing("forward mode (dual_level, jvp, hvp)")
        levels = _mode.forward or ()
        _mode.forward = (*levels, self.level)
        return self

    def __exit__(self, *exc: object) -> None:
        levels = _mode.forward or ()
        if not levels or levels[-1] is not self.level:
            raise RuntimeError("dual_level: levels must be exited in the reverse order of entering them")
        _mode.forward = levels[:-1] or None
        self.level.active = False
        self.level.tangents.clear()


def _innermost(what: str) -> _Level:
    if _mode.forward is None:
        raise RuntimeError(f"{what}: no forward-mode level is active; use it inside `with dual_level():`")
    level: _Level = _mode.forward[-1]
    return level


def make_dual(primal: Any, tangent: Any, level: dual_level | None = None) -> Tensor:
    """A Tensor with the values of ``primal`` that carries ``tangent`` at the innermost level.

    The result is a new Tensor (``primal`` itself carries no tangent); when ``primal`` requires
    grad the result is differentiable with respect to it. Shapes: ``tangent`` has the shape of
    ``primal``; it is cast to ``primal``'s dtype, which must be floating point.

    >>> import autobp as ab
    >>> with ab.forward_ad.dual_level():
    ...     x = ab.forward_ad.make_dual(ab.tensor(3.0), ab.tensor(1.0))
    ...     ab.forward_ad.unpack_dual(x**2).tangent.item()
    6.0
    """
    target = level.level if level is not None else _innermost("make_dual")
    if not target.active:
        raise RuntimeError("make_dual: its dual_level has been exited")
    primal = primal if isinstance(primal, Tensor) else Tensor(primal)
    tangent = tangent if isinstance(tangent, Tensor) else Tensor(tangent)
    if primal.dtype.kind != "f":
        raise TypeError(f"make_dual: primal has dtype {primal.dtype}; only floating-point tensors carry tangents")
    if tangent.shape != primal.shape:
        raise ValueError(
            f"make_dual: tangent has shape {tangent.shape} but primal has shape {primal.shape}; they must match"
        )
    if tangent.dtype != primal.dtype:
        tangent = tangent.astype(primal.dtype)
    if primal.requires_grad and graph.is_grad_enabled():
        from autobp.ops.elementwise import copy

        saved, _mode.forward = _mode.forward, None  # the copy must not take primal's own tangents
        try:
            dual = copy(primal)
        finally:
            _mode.forward = saved
    else:
        dual = Tensor._wrap(primal.data.view())  # a view: the primal's array never carries the tangent
    target.set(dual, tangent)
    return dual


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

    The primal is ``tensor`` cut from its tangent (and from the graph). Shapes: both have
    ``tensor``'s shape.
    """
    target = level.level if level is not None else _innermost("unpack_dual")
    if not isinstance(tensor, Tensor):
        raise TypeError(f"unpack_dual: expected a Tensor, got {type(tensor).__name__}")
    return UnpackedDual(Tensor._wrap(tensor.data), target.get(tensor))
