"""Functional transforms: vjp, jvp, jacobian, jacfwd, hessian, hvp, value_and_grad.

The call shapes follow ``torch.autograd.functional``: ``inputs`` is a Tensor or a tuple of
Tensors, and each result mirrors that structure (a Tensor for a Tensor, a tuple for a tuple).
The inputs are never modified and never receive ``.grad``: each transform works on fresh
leaves holding the same values (or, with ``create_graph=True``, on differentiable copies, so
the results can be differentiated again with respect to the original inputs).

``jvp`` and ``jacfwd`` run forward mode (``autobp.forward``): one pass carrying tangents, no
backward graph. ``hvp`` and ``hessian`` run forward-over-reverse: the gradient is computed
with the vjp rules on Tensors inside a forward-mode level, whose tangents along ``v`` are H v.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autobp import graph
from autobp.engine import grad
from autobp.forward import attach, dual_level, tangent_of
from autobp.graph import enable_grad
from autobp.ops import copy as _copy
from autobp.ops import reshape, stack
from autobp.tensor import Tensor

__all__ = ["vjp", "jvp", "jacobian", "jacfwd", "hessian", "hvp", "value_and_grad"]


def _as_tuple(value: Any, what: str, arg: str) -> tuple[bool, tuple[Tensor, ...]]:
    """``(was_tuple, tensors)``; anything but Tensors is an error naming the transform."""
    is_tuple = isinstance(value, tuple | list)
    items = tuple(value) if is_tuple else (value,)
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            where = f"{arg}[{i}]" if is_tuple else arg
            raise TypeError(f"{what}: {where} must be a Tensor, got {type(item).__name__}")
    return is_tuple, items


def _prepare(
    inputs: tuple[Tensor, ...], create_graph: bool, what: str, requires_grad: bool = True
) -> tuple[Tensor, ...]:
    prepared = []
    for i, x in enumerate(inputs):
        if x.dtype.kind != "f":
            raise TypeError(f"{what}: inputs[{i}] has dtype {x.dtype}; only floating-point inputs are differentiable")
        if create_graph and x.requires_grad:
            prepared.append(_copy(x))  # stays connected to x, so results differentiate back to it
        elif graph._mode.forward is not None:  # inside forward mode: a copy keeps x's tangents
            copied = _copy(x)
            copied.requires_grad = copied.requires_grad or requires_grad  # a leaf unless x requires grad
            prepared.append(copied)
        else:
            prepared.append(Tensor._wrap(x.data, requires_grad=requires_grad))
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
    """``(func(inputs), J v)``: the Jacobian-vector product at ``inputs``, by forward mode.

    One evaluation of ``func`` carries the tangents ``v`` along (``autobp.forward``); no
    backward graph is built unless ``create_graph=True`` (then the result is differentiable
    with respect to ``inputs`` and ``v``). Shapes: ``v`` has the inputs' shapes (may be omitted
    for one single-element input); the jvp has the outputs' shapes.

    >>> import autobp as ab
    >>> out, t = jvp(lambda x: x**2, ab.tensor([1.0, 2.0]), ab.tensor([1.0, 0.0]))
    >>> t.tolist()
    [2.0, 0.0]
    """
    _, xs = _as_tuple(inputs, "jvp", "inputs")
    xs = _prepare(xs, create_graph, "jvp", requires_grad=False)
    tangents = _cotangents(v, xs, "jvp")  # same checks: one entry per input, of its shape
    out_tuple, outs, tangent_outs = _forward(func, xs, tangents, create_graph, "jvp")
    return _pack(out_tuple, _result(outs, create_graph)), _pack(out_tuple, _result(tangent_outs, create_graph))


def _forward(
    func: Callable[..., Any], xs: tuple[Tensor, ...], tangents: Sequence[Tensor], create_graph: bool, what: str
) -> tuple[bool, tuple[Tensor, ...], list[Tensor]]:
    """Run ``func`` once in forward mode: ``(out_tuple, outputs, their tangents)``."""
    with dual_level(differentiable=create_graph) as level:
        for x, t in zip(xs, tangents, strict=True):
            attach(level, x, t if t.dtype == x.dtype else t.astype(x.dtype))
        out_tuple, outs = _call(func, xs, what)
        return out_tuple, outs, _tangents_or_zeros(level, outs)


def _tangents_or_zeros(level: dual_level, values: Sequence[Tensor]) -> list[Tensor]:
    """Each value's tangent; zeros for a value that does not depend on the inputs."""
    found = [tangent_of(level, value) for value in values]
    return [Tensor(np.zeros(v.shape, v.dtype)) if t is None else t for t, v in zip(found, values, strict=True)]


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False, strategy: str = "auto") -> Any:
    """The Jacobian of ``func`` at ``inputs``, by forward or reverse mode.

    ``strategy="auto"`` picks by the shapes: forward mode (one jvp per input element, as
    ``jacfwd``) when the inputs have fewer elements in all than the outputs, reverse mode (one
    vjp per output element) otherwise; ``"forward-mode"`` or ``"reverse-mode"`` force one.
    Shapes: entry ``[i][j]`` has shape ``outputs[i].shape + inputs[j].shape``; a Tensor input or
    output drops its index.

    >>> import autobp as ab
    >>> jacobian(lambda x: x * ab.tensor([2.0, 3.0]), ab.tensor([1.0, 1.0])).tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """
    if strategy not in ("auto", "forward-mode", "reverse-mode"):
        raise ValueError(f"jacobian: strategy must be 'auto', 'forward-mode' or 'reverse-mode', got {strategy!r}")
    if strategy == "forward-mode":
        return jacfwd(func, inputs, create_graph)
    in_tuple, xs = _as_tuple(inputs, "jacobian", "inputs")
    xs = _prepare(xs, create_graph, "jacobian")
    out_tuple, outs = _call(func, xs, "jacobian")
    if strategy == "auto" and sum(x.size for x in xs) < sum(o.size for o in outs):
        return jacfwd(func, inputs, create_graph)
    return _jacobian_of(outs, xs, in_tuple, out_tuple, create_graph)


def jacfwd(func: Callable[..., Any], inputs: Any, create_graph: bool = False) -> Any:
    """The Jacobian of ``func`` at ``inputs`` by forward mode: one jvp (a column) per input element.

    Cheaper than reverse mode when the inputs have fewer elements than the outputs.
    Shapes: as ``jacobian``.

    >>> import autobp as ab
    >>> jacfwd(lambda x: ab.stack([x.sum(), (x * x).sum(), x[0]]), ab.tensor([1.0, 2.0])).tolist()
    [[1.0, 1.0], [2.0, 4.0], [1.0, 0.0]]
    """
    in_tuple, xs = _as_tuple(inputs, "jacfwd", "inputs")
    xs = _prepare(xs, create_graph, "jacfwd", requires_grad=False)

    def column(tangents: list[Tensor]) -> tuple[bool, tuple[Tensor, ...], list[Tensor]]:
        return _forward(func, xs, tangents, create_graph, "jacfwd")

    return _columns(column, xs, in_tuple, create_graph)


def _columns(
    run: Callable[[list[Tensor]], tuple[bool, tuple[Tensor, ...], list[Tensor]]],
    xs: tuple[Tensor, ...],
    in_tuple: bool,
    create_graph: bool,
) -> Any:
    """Jacobian blocks from ``run(tangents) -> (out_tuple, outputs, output tangents)``, one input
    element at a time: entry ``[i][j]`` has shape ``outputs[i].shape + xs[j].shape``."""
    columns: list[list[list[Tensor]]] = [[] for _ in xs]  # [j][element] -> the tangent of each output
    out_tuple, outs = False, ()
    for j, x in enumerate(xs):
        for flat in range(x.size):
            tangents = [Tensor(np.zeros(z.shape, z.dtype)) for z in xs]
            unit = np.zeros(x.size, x.dtype)
            unit[flat] = 1.0
            tangents[j] = Tensor(unit.reshape(x.shape))
            out_tuple, outs, tangent_outs = run(tangents)
            columns[j].append(tangent_outs)
    if not any(columns):  # every input is empty: one plain evaluation gives the output shapes
        out_tuple, outs, _ = run([Tensor(np.zeros(z.shape, z.dtype)) for z in xs])
    table = []
    for i, out in enumerate(outs):
        entry = []
        for j, x in enumerate(xs):
            parts = [tangent_outs[i] for tangent_outs in columns[j]]
            if parts and create_graph:  # stacked along a last axis, then that axis becomes x's shape
                block = reshape(stack(parts, axis=-1), out.shape + x.shape)
            elif parts:
                block = Tensor(np.stack([p.data for p in parts], axis=-1).reshape(out.shape + x.shape))
            else:
                block = Tensor(np.zeros(out.shape + x.shape, dtype=out.dtype))
            entry.append(block)
        table.append(_pack(in_tuple, entry))
    return _pack(out_tuple, table)


def _jacobian_of(
    outs: tuple[Tensor, ...], xs: tuple[Tensor, ...], in_tuple: bool, out_tuple: bool, create_graph: bool
) -> Any:
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
    """The Hessian of a scalar ``func`` at ``inputs``, one Hessian-vector product (forward-over-
    reverse, as ``hvp``) per input element.

    Shapes: entry ``[i][j]`` has shape ``inputs[i].shape + inputs[j].shape`` (a Tensor input
    gives one array of shape ``x.shape + x.shape``).

    >>> import autobp as ab
    >>> hessian(lambda x: (x**3).sum(), ab.tensor([1.0, 2.0])).tolist()
    [[6.0, 0.0], [0.0, 12.0]]
    """
    in_tuple, xs = _as_tuple(inputs, "hessian", "inputs")
    xs = _prepare(xs, create_graph, "hessian")

    def column(vectors: list[Tensor]) -> tuple[bool, tuple[Tensor, ...], list[Tensor]]:
        _, products = _forward_over_reverse(func, xs, vectors, create_graph, "hessian")
        return in_tuple, xs, products

    return _columns(column, xs, in_tuple, create_graph)


def _scalar(outs: tuple[Tensor, ...], what: str) -> None:
    if len(outs) != 1 or outs[0].size != 1:
        raise ValueError(f"{what}: func must return a single one-element Tensor, got shapes {[o.shape for o in outs]}")


def _forward_over_reverse(
    func: Callable[..., Any], xs: tuple[Tensor, ...], vectors: Sequence[Tensor], create_graph: bool, what: str
) -> tuple[Tensor, list[Tensor]]:
    """``(func(xs), H v)``: the gradient, computed inside a forward-mode level where ``xs`` carry
    ``vectors``, has tangents ``H v``. Its vjp rules run on Tensors (``create_graph`` for the
    engine) so that they carry the tangents; without ``create_graph`` those run on arrays."""
    with dual_level(differentiable=create_graph) as level:
        for x, t in zip(xs, vectors, strict=True):
            attach(level, x, t if t.dtype == x.dtype else t.astype(x.dtype))
        _, outs = _call(func, xs, what)
        _scalar(outs, what)
        with enable_grad():
            gradient = _grads(outs, xs, [Tensor(np.ones(outs[0].shape, dtype=outs[0].dtype))], create_graph=True)
        return outs[0], _tangents_or_zeros(level, gradient)


def hvp(func: Callable[..., Any], inputs: Any, v: Any, create_graph: bool = False) -> tuple[Tensor, Any]:
    """``(func(inputs), H v)``: the Hessian-vector product of a scalar ``func``, forward-over-reverse.

    The gradient is computed once, carrying tangents along ``v`` (no second backward pass).
    Shapes: ``v`` and the result have the inputs' shapes.

    >>> import autobp as ab
    >>> out, hv = hvp(lambda x: (x**3).sum(), ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
    >>> hv.tolist()
    [6.0, 12.0]
    """
    in_tuple, xs = _as_tuple(inputs, "hvp", "inputs")
    xs = _prepare(xs, create_graph, "hvp")
    vectors = _cotangents(v, xs, "hvp")
    out, products = _forward_over_reverse(func, xs, vectors, create_graph, "hvp")
    return _result((out,), create_graph)[0], _pack(in_tuple, _result(products, create_graph))


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
