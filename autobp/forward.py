"""Forward mode: tangents carried alongside values, one pass, from the ops' jvp rules.

While a level is active (``autobp.forward_ad.dual_level``), every op applied to tensors that
carry a tangent computes its output's tangent from the op's jvp rules (``OpDef.jvp_rules``,
next to the vjp rules; ``propagate`` is called by each op) and attaches it to the output. No
backward graph is built for the tangents beyond what grad mode records anyway.

Levels nest (forward-of-forward): a rule of one level runs with only the levels outside it
active, so their tangents flow through it, and its own tangents are never differentiated by
itself. Rules are written in autobp ops, so tangents are differentiable in reverse mode too,
and gradients computed with ``create_graph=True`` inside a level carry tangents
(forward-over-reverse: ``autobp.functional.hvp``); so do first-order ``ab.grad`` gradients
taken inside a level (their rules then run on Tensors, ``engine.grad``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from autobp import backends, graph
from autobp.backends.numpy_errors import quiet, quietly
from autobp.tensor import Tensor

__all__ = ["ForwardModeError", "propagate", "linear_jvp", "carries_tangent"]

_local = graph._local  # the per-thread modes (a global of this module: read per op)


class ForwardModeError(NotImplementedError):
    """An op without a jvp rule met a tensor carrying a tangent."""


class Level:
    """One forward-mode level: the key under which the tensors made or marked inside it keep their
    tangents (``Tensor._dual``: ``{level: (tangent, version)}``).

    The tangents live on the tensors, so an intermediate of a forward-mode pass is freed with its
    tangent as soon as nothing needs it, as its primal alone would be (a recorded op's output is
    its node: the engine hands rules on Tensors that tensor itself, which finds its tangent). An
    entry keeps the version the tangent describes: an in-place change afterwards makes it stale,
    and reading it then raises. A level whose tangents are not differentiated (``plain``) keeps
    them as arrays, which its rules then take as they are. Once the level has ended nothing looks
    its entries up (only active levels are asked); one a tensor still holds is dropped when it is
    next given a tangent (``set``).
    """

    __slots__ = ("plain", "active")

    def __init__(self, differentiable: bool) -> None:
        self.plain = not differentiable  # tangents are arrays, computed without recording
        self.active = True

    def get(self, value: Any) -> Tensor | None:
        """The tangent of ``value`` (a Tensor, or a constant: None) at this level, or None."""
        if not isinstance(value, Tensor):
            return None
        duals = value._dual
        entry = duals.get(self) if duals is not None else None
        if entry is None:
            return None
        counter = value._vc  # (the version without the property's frame)
        if (0 if counter is None else counter[0]) != entry[1]:
            raise _stale(value)
        return Tensor._wrap(entry[0]) if self.plain else entry[0]

    def set(self, tensor: Tensor, tangent: Tensor) -> None:
        counter = tensor._vc
        keep(tensor, self, tangent.data if self.plain else tangent, 0 if counter is None else counter[0])

    def has(self, tensor: Tensor) -> bool:
        """Whether ``tensor`` has an entry at this level (stale or not)."""
        duals = tensor._dual
        return duals is not None and self in duals


def keep(tensor: Tensor, level: Level, tangent: Any, version: int) -> None:
    """Give ``tensor`` the entry ``(tangent, version)`` at ``level``; entries of ended levels go."""
    duals = tensor._dual
    if duals is None:
        tensor._dual = {level: (tangent, version)}
        return
    for old in [old for old in duals if not old.active]:
        duals.pop(old, None)  # (another thread using the tensor may have dropped it first)
    duals[level] = (tangent, version)


def carries_tangent(value: Any) -> bool:
    """Whether ``value`` is a Tensor with a tangent at an active level."""
    levels = _local.modes.forward
    if not levels or not isinstance(value, Tensor) or value._dual is None:
        return False
    return any(level.has(value) for level in levels)


def first_carrying_tangent(values: Any, levels: Any) -> Tensor | None:
    """The first Tensor among ``values`` (and the lists and tuples in them) with a tangent at one
    of the active forward-mode ``levels``, or None: what a keyword argument or a numpy function
    would drop (``public_function``, ``Tensor.__array_function__`` refuse it)."""
    for value in values:
        if isinstance(value, Tensor):
            for level in levels:
                if level.has(value):
                    return value
        elif type(value) is list or type(value) is tuple:
            found = first_carrying_tangent(value, levels)
            if found is not None:
                return found
    return None


def restamp(tensor: Tensor, before: int) -> None:
    """``tensor``'s version moved from ``before`` without a write (``requires_grad`` turned on):
    the tangents it carries still describe it, so their entries take the new version."""
    now = tensor._version
    duals = tensor._dual
    for level in _local.modes.forward or ():
        entry = duals.get(level) if duals is not None else None
        if entry is not None and entry[1] == before:
            duals[level] = (entry[0], now)  # type: ignore[index]


def _stale(tensor: Tensor) -> RuntimeError:
    return RuntimeError(
        f"forward mode: tensor {backends.describe(tensor)} was modified in place after it received a "
        "tangent, which no longer describes it; make the dual again after the change"
    )


def _error(opdef: Any) -> ForwardModeError:
    return ForwardModeError(
        f"{opdef.name}: forward mode (jvp, hvp, make_dual) reached this op with a tangent, but it has no jvp "
        f"rule; give it one with {opdef.name}.defjvp(...) (see docs/custom-ops.md)"
    )


def _complex_result_error(name: str, result: Any, carrier: Tensor) -> TypeError:
    """Op ``name`` gave a complex ``result`` from ``carrier``, which carries a tangent: forward
    mode carries real tangents only and would drop it (``jvp`` of ``abs(x * 1j)`` read 0). Reverse
    mode refuses the complex gradient where it reaches a real tensor (``engine.values.cast_like``)."""
    return TypeError(
        f"{name}: the result is complex ({backends.describe(result)}), computed from tensor "
        f"{backends.describe(carrier)}, which carries a forward-mode tangent; autobp differentiates real "
        "functions only, so a derivative through a complex value would be wrong. Compute the real and "
        "imaginary parts with real ops, or .detach() the tensor"
    )


def propagate(opdef: Any, args: Sequence[Any], kwargs: Any, out: Tensor) -> None:
    """Attach to ``out`` its tangent at every active level where an input carries one.

    Called by each op (``autobp.ops.registry``) while a level is active. Outer levels go first:
    a rule of an inner level then sees the outer tangents of the output it reads.
    """
    data = out.data
    if not opdef.differentiable or (
        data.dtype.kind != "f" if type(data) is np.ndarray else not backends.namespace(data).float_dtype(data.dtype)
    ):
        if opdef.differentiable and backends.holds_complex(data):  # a tangent would be dropped: refused
            carrier = first_carrying_tangent(args, _local.modes.forward)
            if carrier is not None:
                raise _complex_result_error(opdef.name, data, carrier)
        return  # integer or boolean results (comparisons, argmax, astype to int): nothing to carry
    modes = _local.modes
    levels = modes.forward
    if len(levels) == 1 and levels[0].plain and opdef.jvp_plain_arrays and modes.tape is None:
        if opdef.jvp_rules:
            _propagate_on_arrays(opdef, levels[0], args, kwargs, out)  # the fast path (W5, benchmarks/w5_hvp.py)
            return
        if opdef.jvp_variadic_rule is not None:
            _propagate_variadic_on_arrays(opdef, levels[0], args, kwargs, out)
            return
    for depth, level in enumerate(levels):
        tangents = [level.get(value) for value in args]
        if not any(t is not None for t in tangents):
            continue
        # A tape records the tangents' ops only for ``tape.hvp``, whose level it made and whose
        # tangents it returns; a dual tensor reaching any other traced function is refused.
        if modes.tape is not None and not modes.tape.forward_mode:
            graph.refuse_while_tracing("forward mode (a tensor carrying a tangent)")
        if not opdef.has_jvp:
            raise _error(opdef)
        # The rule runs with only the outer levels on: they differentiate it, this one does not.
        modes.forward = levels[:depth] if depth else None
        recording = modes.enabled
        try:
            if level.plain and recording:  # a plain level's tangents are constants: record nothing
                modes.enabled = False
            if modes.quiet:  # inside the engine's walk, numpy's warnings are off already
                tangent = _on_tensors(opdef, tangents, args, kwargs, out)
            else:  # the rules' ops are not all quiet (mul: 0 * inf), as on arrays (_quiet_parts)
                tangent = _quiet_on_tensors(opdef, tangents, args, kwargs, out)
        finally:
            modes.forward = levels
            modes.enabled = recording
        if tangent is not None:
            level.set(out, tangent)


def _propagate_on_arrays(opdef: Any, level: Level, args: Sequence[Any], kwargs: Any, out: Tensor) -> None:
    """``propagate`` for one plain level and rules that take arrays: the rules cost what numpy costs."""
    rules = opdef.jvp_rules
    parts = []
    arrays = []  # (built in the same pass: a list comprehension's frame per op costs W5 2%)
    for i, value in enumerate(args):
        if isinstance(value, Tensor):
            arrays.append(value.data)
            duals = value._dual
            entry = duals.get(level) if duals is not None else None
            if entry is not None:
                counter = value._vc  # (its version without the property's frame: once per tangent read)
                if (0 if counter is None else counter[0]) != entry[1]:
                    raise _stale(value)
                rule = rules[i]
                if rule is not None:
                    parts.append((rule, entry[0]))
        else:
            arrays.append(value)
    if not parts:
        return
    data = out.data
    modes = _local.modes
    previous = modes.arrays
    modes.arrays = True  # the rules' ops act as numpy functions
    try:
        if modes.quiet:  # inside the engine's walk, numpy's warnings are off already: no errstate per op
            if len(parts) == 1:  # (one input carries a tangent, as in most ops: the rule without _parts' frame)
                rule, tangent = parts[0]
                total = rule(tangent, data, *arrays, **kwargs) if kwargs else rule(tangent, data, *arrays)
            else:
                total = _parts(parts, data, arrays, kwargs)
        else:
            total = _quiet_parts(parts, data, arrays, kwargs)
    finally:
        modes.arrays = previous
    if total is None:
        return
    # (`is` first: numpy's builtin dtypes are singletons; _fit for the rest)
    if type(total) is not np.ndarray or total.shape != data.shape or total.dtype is not data.dtype:
        total = _fit(total, data)
    counter = out._vc
    if out._dual is None:  # (a fresh output, as every op's is: its first entry, without keep's call)
        out._dual = {level: (total, 0 if counter is None else counter[0])}
    else:
        keep(out, level, total, 0 if counter is None else counter[0])


def _propagate_variadic_on_arrays(opdef: Any, level: Level, args: Sequence[Any], kwargs: Any, out: Tensor) -> None:
    """``_propagate_on_arrays`` for an op with one jvp rule for all its inputs (``defjvp_variadic``):
    the rule gets every input's tangent array, None where an input carries none."""
    tangents: list[Any] = []
    arrays: list[Any] = []
    for value in args:
        entry = None
        if isinstance(value, Tensor):
            arrays.append(value.data)
            duals = value._dual
            entry = duals.get(level) if duals is not None else None
            if entry is not None:
                counter = value._vc
                if (0 if counter is None else counter[0]) != entry[1]:
                    raise _stale(value)
        else:
            arrays.append(value)
        tangents.append(None if entry is None else entry[0])
    if all(tangent is None for tangent in tangents):
        return
    data = out.data
    modes = _local.modes
    previous = modes.arrays
    modes.arrays = True  # the rule's ops act as numpy functions
    try:
        with quietly():  # (numpy's operators in the rule, as _quiet_parts)
            total = opdef.jvp_variadic_rule(tangents, data, *arrays, **kwargs)
    finally:
        modes.arrays = previous
    if total is None:
        return
    if type(total) is not np.ndarray or total.shape != data.shape or total.dtype is not data.dtype:
        total = _fit(total, data)
    counter = out._vc
    keep(out, level, total, 0 if counter is None else counter[0])


def _parts(parts: list[tuple[Any, Any]], out: np.ndarray, arrays: list[Any], kwargs: Any) -> Any:
    if len(parts) == 1:  # one input carries a tangent (most ops of a network: x @ w, tanh)
        rule, tangent = parts[0]
        return rule(tangent, out, *arrays, **kwargs) if kwargs else rule(tangent, out, *arrays)
    total = None
    for rule, tangent in parts:
        part = rule(tangent, out, *arrays, **kwargs) if kwargs else rule(tangent, out, *arrays)
        if part is None:
            continue
        if total is None:
            total = part
        # (an array part of the buffer's dtype and shape: np.shape and np.result_type, which let a few
        # more through to the same sum, cost W5 1%; `out` positionally: numpy parses no keyword)
        elif (
            type(part) is np.ndarray
            and type(total) is np.ndarray
            and part.dtype is total.dtype
            and part.shape == total.shape
            and _owned(total, parts)
        ):
            np.add(total, part, total)  # into the first part's own fresh buffer (W5: one array fewer)
        else:
            total = total + part
    return total


def _owned(array: Any, parts: list[tuple[Any, Any]]) -> bool:
    """Whether ``array`` is a rule's fresh result, safe to add into: a writeable array that owns
    its memory and is none of the input tangents (``add``'s rule returns its tangent itself)."""
    if type(array) is not np.ndarray or array.base is not None or not array.flags.writeable:
        return False
    for _, tangent in parts:  # noqa: SIM110  (a loop, not all() over a generator: a frame fewer per call, W5)
        if array is tangent:
            return False
    return True


# Rules on arrays use numpy's operators, not the ops' quiet forwards: silence numpy's warnings,
# as the engine does.
_quiet_parts = quiet(_parts)


def _on_tensors(opdef: Any, tangents: list[Any], args: Sequence[Any], kwargs: Any, out: Tensor) -> Tensor | None:
    """The output's tangent from the op's rules run on Tensors (constants wrapped)."""
    # A Python number stays weak (a WeakScalar, as the engine wraps it): a float32 tangent times
    # 0.3 is computed in float32, as the rules on arrays compute it, not in float64 and cast.
    inputs = [value if isinstance(value, Tensor) else graph._as_tensor(value, out.data) for value in args]
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


_quiet_on_tensors = quiet(_on_tensors)


def _broadcast(tangent: Tensor, shape: tuple[int, ...]) -> Tensor:
    from autobp.ops.shape import broadcast_to

    return broadcast_to(tangent, shape)  # type: ignore[no-any-return]


def _fit(tangent: Any, out: Any) -> Any:
    """A tangent array of the output's shape and dtype (a rule's part may broadcast)."""
    if type(out) is not np.ndarray:
        xp = backends.namespace(out)
        tangent = xp.asarray(tangent, device=xp.device(out))  # (a Python number from a rule: out's library)
        if tuple(tangent.shape) != tuple(out.shape):
            tangent = xp.broadcast_to(tangent, out.shape)
        return tangent if tangent.dtype == out.dtype else xp.astype(tangent, out.dtype)
    if type(tangent) is not np.ndarray:
        tangent = np.asarray(tangent)
    if tangent.shape != out.shape:
        tangent = np.broadcast_to(tangent, out.shape)
    if tangent.dtype != out.dtype:
        tangent = tangent.astype(out.dtype)
    return tangent


def linear_jvp(opdef: Any) -> None:
    """Set the jvp rules of a linear op (``@op(..., linear=True)``): the op applied to the tangents."""
    public = opdef.public
    if opdef.arity == 1:
        # d f(x) = f(dx) for a linear f
        opdef.defjvp(lambda tangent, out, x, **kwargs: public(tangent, **kwargs), plain_arrays=True)
        return

    def jvp_of_linear(tangents: Sequence[Any], out: Any, *inputs: Any, **kwargs: Any) -> Any:
        # d f(x, y, ...) = f(dx, dy, ...) for f linear in all inputs together; no tangent: zeros.
        given = [t.data if isinstance(t, Tensor) else t for t in tangents if t is not None]
        xp = backends.namespace(*given)
        dtype = xp.result_type(*[t.dtype for t in given])
        device = xp.device(given[0])
        filled = [
            xp.zeros(tuple(np.shape(x)), dtype=dtype, device=device) if t is None else t
            for t, x in zip(tangents, inputs, strict=True)
        ]
        return public(*filled, **kwargs)

    if opdef.arity is not None:
        raise TypeError(f"{opdef.name}: linear=True needs arity 1 or None; give defjvp rules instead")
    opdef.defjvp_variadic(jvp_of_linear, plain_arrays=True)
