"""Functional transforms: vjp, jvp, jacobian, hessian, hvp, value_and_grad.

The call shapes follow ``torch.autograd.functional``: ``inputs`` is a Tensor or a tuple of
Tensors, and each result mirrors that structure (a Tensor for a Tensor, a tuple for a tuple).
The inputs are never modified and never receive ``.grad``: each transform works on fresh
leaves holding the same values (or, with ``create_graph=True``, on differentiable copies, so
the results can be differentiated again with respect to the original inputs).

``jvp`` uses the double-vjp trick: ``u -> J^T u`` is linear in ``u``, so its own vjp with
cotangent ``v`` is ``J v``; the vjp rules are written in autobp ops, which makes this exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autobp.engine import grad
from autobp.graph import enable_grad
from autobp.ops import copy as _copy
from autobp.tensor import Tensor

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "value_and_grad"]


def _as_tuple(value: Any, what: str, arg: str) -> tuple[bool, tuple[Tensor, ...]]:
    """``(was_tuple, tensors)``; anything but Tensors is an error naming the transform."""
    is_tuple = isinstance(value, tuple | list)
    items = tuple(value) if is_tuple else (value,)
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            where = f"{arg}[{i}]" if is_tuple else arg
            raise TypeError(f"{what}: {where} must be a Tensor, got {type(item).__name__}")
    return is_tuple, items


def _prepare(inputs: tuple[Tensor, ...], create_graph: bool, what: str) -> tuple[Tensor, ...]:
    prepared = []
    for i, x in enumerate(inputs):
        if x.dtype.kind != "f":
            raise TypeError(f"{what}: inputs[{i}] has dtype {x.dtype}; only floating-point inputs are differentiable")
        if create_graph and x.requires_grad:
            prepared.append(_copy(x))  # stays connected to x, so results differentiate back to it
        else:
            leaf = Tensor._wrap(x.data, requires_grad=True)
            leaf._share_storage_with(x)  # one storage, one counter: func writing into x is seen
            prepared.append(leaf)
    return tuple(prepared)


def _call(func: Callable[..., Any], inputs: tuple[Tensor, ...], what: str) -> tuple[bool, tuple[Tensor, ...]]:
    with enable_grad():
        outputs = func(*inputs)
    return _as_tuple(outputs, what, "func's output")


def _cotangents(v: Any, outputs: tuple[Tensor, ...], what: str, arg: str = "v") -> list[Tensor]:
    if v is None:
        if len(outputs) != 1 or outputs[0].size != 1:
            shapes = [o.shape for o in outputs]
            raise ValueError(f"{what}: {arg} may be omitted only for one single-element Tensor, got shapes {shapes}")
        return [Tensor(np.ones(outputs[0].shape, dtype=outputs[0].dtype))]
    _, vs = _as_tuple(v, what, arg)
    if len(vs) != len(outputs):
        raise ValueError(f"{what}: {arg} has {len(vs)} entries for {len(outputs)} outputs of func")
    for i, (vi, out) in enumerate(zip(vs, outputs, strict=True)):
        if vi.shape != out.shape:
            raise ValueError(f"{what}: {arg}[{i}] has shape {vi.shape}, but func's output {i} has shape {out.shape}")
    return list(vs)


def _grads(
    outputs: Sequence[Tensor],
    inputs: tuple[Tensor, ...],
    cotangents: Sequence[Tensor],
    create_graph: bool,
    retain_graph: bool | None = None,
) -> tuple[Tensor, ...]:
    """d<cotangents, outputs>/d(inputs), zeros for inputs the outputs do not depend on."""
    pairs = [(o, c) for o, c in zip(outputs, cotangents, strict=True) if o.requires_grad]
    if not pairs:
        found: tuple[Tensor | None, ...] = (None,) * len(inputs)
    else:
        found = grad(
            [o for o, _ in pairs],
            list(inputs),
            grad_outputs=[c for _, c in pairs],
            retain_graph=retain_graph,
            create_graph=create_graph,
            allow_unused=True,
        )
    return tuple(
        Tensor(np.zeros(x.shape, dtype=x.dtype)) if g is None else g for g, x in zip(found, inputs, strict=True)
    )


def _result(values: Sequence[Tensor], create_graph: bool) -> tuple[Tensor, ...]:
    return tuple(v if create_graph else v.detach() for v in values)


def _pack(is_tuple: bool, values: Sequence[Any]) -> Any:
    return tuple(values) if is_tuple else values[0]


def vjp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False) -> tuple[Any, Any]:
    """``(func(inputs), v^T J)``: the vector-Jacobian product at ``inputs``.

    Shapes: ``v`` has the output's shape (may be omitted for a one-element output); the vjp has
    the inputs' shapes.

    >>> import autobp as ab
    >>> out, g = vjp(lambda x: x**2, ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
    >>> g.tolist()
    [2.0, 4.0]
    """
    in_tuple, xs = _as_tuple(inputs, "vjp", "inputs")
    xs = _prepare(xs, create_graph, "vjp")
    out_tuple, outs = _call(func, xs, "vjp")
    cotangents = _cotangents(v, outs, "vjp")
    grads = _grads(outs, xs, cotangents, create_graph)
    return _pack(out_tuple, _result(outs, create_graph)), _pack(in_tuple, _result(grads, create_graph))


def jvp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False) -> tuple[Any, Any]:
    """``(func(inputs), J v)``: the Jacobian-vector product at ``inputs`` (by the double-vjp trick).

    Shapes: ``v`` has the inputs' shapes (may be omitted for one single-element input); the jvp
    has the outputs' shapes.

    >>> import autobp as ab
    >>> out, t = jvp(lambda x: x**2, ab.tensor([1.0, 2.0]), ab.tensor([1.0, 0.0]))
    >>> t.tolist()
    [2.0, 0.0]
    """
    _, xs = _as_tuple(inputs, "jvp", "inputs")
    xs = _prepare(xs, create_graph, "jvp")
    tangents = _cotangents(v, xs, "jvp")  # same checks: one entry per input, of its shape
    out_tuple, outs = _call(func, xs, "jvp")
    # u -> J^T u is linear; differentiating <J^T u, v> with respect to u gives J v.
    dummies = [Tensor(np.zeros(o.shape, dtype=o.dtype), requires_grad=True) for o in outs]
    with enable_grad():
        transposed = _grads(outs, xs, dummies, create_graph=True)
    tangent_outs = _grads(transposed, tuple(dummies), tangents, create_graph)
    return _pack(out_tuple, _result(outs, create_graph)), _pack(out_tuple, _result(tangent_outs, create_graph))


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False) -> Any:
    """The Jacobian of ``func`` at ``inputs``, one row (a vjp) per output element.

    Shapes: entry ``[i][j]`` has shape ``outputs[i].shape + inputs[j].shape``; a Tensor input or
    output drops its index.

    >>> import autobp as ab
    >>> jacobian(lambda x: x * ab.tensor([2.0, 3.0]), ab.tensor([1.0, 1.0])).tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """
    in_tuple, xs = _as_tuple(inputs, "jacobian", "inputs")
    xs = _prepare(xs, create_graph, "jacobian")
    out_tuple, outs = _call(func, xs, "jacobian")
    return _jacobian_of(outs, xs, in_tuple, out_tuple, create_graph)


def _jacobian_of(
    outs: tuple[Tensor, ...], xs: tuple[Tensor, ...], in_tuple: bool, out_tuple: bool, create_graph: bool
) -> Any:
    from autobp.ops import reshape, stack

    table = []
    for i, out in enumerate(outs):
        rows: list[list[Tensor]] = [[] for _ in xs]
        for flat in range(out.size):
            unit = np.zeros(out.size, dtype=out.dtype)
            unit[flat] = 1.0
            one_hot = [Tensor(np.zeros(o.shape, dtype=o.dtype)) for o in outs]
            one_hot[i] = Tensor(unit.reshape(out.shape))
            grads = _grads(outs, xs, one_hot, create_graph, retain_graph=True)
            for j, g in enumerate(grads):
                rows[j].append(g)
        entry = []
        for j, x in enumerate(xs):
            if rows[j] and create_graph:
                block = reshape(stack(rows[j]), out.shape + x.shape)
            elif rows[j]:
                block = Tensor(np.stack([r.data for r in rows[j]]).reshape(out.shape + x.shape))
            else:  # an empty output has an empty Jacobian
                block = Tensor(np.zeros(out.shape + x.shape, dtype=x.dtype))
            entry.append(block)
        table.append(_pack(in_tuple, entry))
    return _pack(out_tuple, table)


def hessian(func: Callable[..., Any], inputs: Any, create_graph: bool = False) -> Any:
    """The Hessian of a scalar ``func`` at ``inputs``: the Jacobian of its gradient.

    Shapes: entry ``[i][j]`` has shape ``inputs[i].shape + inputs[j].shape`` (a Tensor input
    gives one array of shape ``x.shape + x.shape``).

    >>> import autobp as ab
    >>> hessian(lambda x: (x**3).sum(), ab.tensor([1.0, 2.0])).tolist()
    [[6.0, 0.0], [0.0, 12.0]]
    """
    in_tuple, xs = _as_tuple(inputs, "hessian", "inputs")
    xs = _prepare(xs, create_graph, "hessian")
    _, outs = _call(func, xs, "hessian")
    _scalar(outs, "hessian")
    with enable_grad():
        gradient = _grads(outs, xs, [Tensor(np.ones(outs[0].shape, dtype=outs[0].dtype))], create_graph=True)
    return _jacobian_of(gradient, xs, in_tuple, in_tuple, create_graph)


def _scalar(outs: tuple[Tensor, ...], what: str) -> None:
    if len(outs) != 1 or outs[0].size != 1:
        raise ValueError(f"{what}: func must return a single one-element Tensor, got shapes {[o.shape for o in outs]}")


def hvp(func: Callable[..., Any], inputs: Any, v: Any, create_graph: bool = False) -> tuple[Tensor, Any]:
    """``(func(inputs), H v)``: the Hessian-vector product of a scalar ``func``, by two vjps.

    Shapes: ``v`` and the result have the inputs' shapes.

    >>> import autobp as ab
    >>> out, hv = hvp(lambda x: (x**3).sum(), ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
    >>> hv.tolist()
    [6.0, 12.0]
    """
    in_tuple, xs = _as_tuple(inputs, "hvp", "inputs")
    xs = _prepare(xs, create_graph, "hvp")
    vectors = _cotangents(v, xs, "hvp")
    _, outs = _call(func, xs, "hvp")
    _scalar(outs, "hvp")
    with enable_grad():
        gradient = _grads(outs, xs, [Tensor(np.ones(outs[0].shape, dtype=outs[0].dtype))], create_graph=True)
    products = _grads(gradient, xs, vectors, create_graph)
    return _result(outs, create_graph)[0], _pack(in_tuple, _result(products, create_graph))


def value_and_grad(func: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., tuple[Tensor, Any]]:
    """A function computing ``(func(*args), d func / d args[argnums])`` for a scalar ``func``.

    Arguments at ``argnums`` may be Tensors or array-likes (made float64 Tensors); the others
    pass through unchanged. The gradient is a Tensor for an int ``argnums``, a tuple otherwise.
    Shapes: each gradient has its argument's shape.

    >>> import autobp as ab
    >>> value, g = value_and_grad(lambda x: (x * x).sum())(ab.tensor([1.0, 2.0]))
    >>> value.item(), g.tolist()
    (5.0, [2.0, 4.0])
    """
    positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def run(*args: Any, **kwargs: Any) -> tuple[Tensor, Any]:
        for p in positions:
            if not -len(args) <= p < len(args):
                raise IndexError(f"value_and_grad: argnums {argnums} out of range for {len(args)} positional arguments")
        values = list(args)
        for p in positions:
            value = values[p] if isinstance(values[p], Tensor) else Tensor(values[p], dtype=np.float64)
            values[p] = value
        xs = _prepare(tuple(values[p] for p in positions), False, "value_and_grad")
        for p, x in zip(positions, xs, strict=True):
            values[p] = x
        with enable_grad():
            out = func(*values, **kwargs)
        _, outs = _as_tuple(out, "value_and_grad", "func's output")
        _scalar(outs, "value_and_grad")
        grads = _grads(outs, xs, [Tensor(np.ones(outs[0].shape, dtype=outs[0].dtype))], False)
        return outs[0].detach(), _pack(not isinstance(argnums, int), list(grads))

    return run
