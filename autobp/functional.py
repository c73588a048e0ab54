"""Functional transforms: vjp, jvp, jacobian, jacfwd, hessian, hvp, value_and_grad.

The call shapes follow ``torch.autograd.functional``: ``inputs`` is a Tensor or a tuple of
Tensors, and each result mirrors that structure (a Tensor for a Tensor, a tuple for a tuple).
The inputs are never modified and never receive ``.grad``: each transform works on fresh
leaves holding the same values (or, with ``create_graph=True``, on differentiable copies, so
the results can be differentiated again with respect to the original inputs).

``jvp`` and ``jacfwd`` run forward mode (``autobp.forward``): one pass carrying tangents, no
backward graph. ``hvp`` and ``hessian`` run forward-over-reverse: the gradient is computed with
the vjp rules on Tensors inside a forward-mode level, whose tangents along ``v`` are H v. They
live in ``autobp.functional_forward``. ``jacfwd``, ``jacobian`` in forward mode and ``hessian``
call ``func`` once per input element; a call that computes other values than the first (a
``func`` drawing random numbers) raises ``RuntimeError`` rather than mixing samples.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autobp.functional_args import (
    as_tensors,
    call_func,
    check_scalar,
    checked_vectors,
    differentiable,
    differentiated_tensor,
    differentiating,
    distinct_argnums,
    filled,
    fresh_inputs,
    input_grads,
    maybe_detached,
    numel,
    one_hot,
    packed,
    stacked,
)
from autobp.functional_forward import forward_jacobian, hessian, hvp, jacfwd, jvp
from autobp.grad_mode import enable_grad
from autobp.ops import reshape, stack
from autobp.tensor import Tensor

__all__ = ["vjp", "jvp", "jacobian", "jacfwd", "hessian", "hvp", "value_and_grad"]


def vjp(func: Callable[..., Any], inputs: Any, v: Any = None, create_graph: bool = False) -> tuple[Any, Any]:
    """``(func(inputs), v^T J)``: the vector-Jacobian product at ``inputs``.

    Shapes: ``v`` has the output's shape (may be omitted for a one-element output); the vjp has
    the inputs' shapes.

    >>> import autobp as ab
    >>> out, g = vjp(lambda x: x**2, ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
    >>> g.tolist()
    [2.0, 4.0]
    """
    create_graph = differentiable(create_graph)  # (inside a forward-mode transform too)
    in_tuple, xs = as_tensors(inputs, "vjp", "inputs")
    xs = fresh_inputs(xs, create_graph, "vjp")
    out_tuple, outs = call_func(func, xs, "vjp")
    cotangents = checked_vectors(v, outs, "vjp")
    grads = input_grads(outs, xs, cotangents, create_graph)
    return packed(out_tuple, maybe_detached(outs, create_graph)), packed(in_tuple, maybe_detached(grads, create_graph))


def jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool = False, strategy: str = "auto") -> Any:
    """The Jacobian of ``func`` at ``inputs``, by forward or reverse mode.

    ``strategy="auto"`` picks by the shapes: forward mode (one jvp per input element, as
    ``jacfwd``) when the inputs have fewer elements in all than the outputs, reverse mode (one
    vjp per output element) otherwise; ``"forward-mode"`` or ``"reverse-mode"`` force one.
    Forward mode calls ``func`` once per input element, and raises ``RuntimeError`` when a call
    computes other values than the first (a func that draws random numbers); reverse mode calls
    it once.
    Shapes: entry ``[i][j]`` has shape ``outputs[i].shape + inputs[j].shape``; a Tensor input or
    output drops its index.

    >>> import autobp as ab
    >>> jacobian(lambda x: x * ab.tensor([2.0, 3.0]), ab.tensor([1.0, 1.0])).tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """
    create_graph = differentiable(create_graph)  # (inside a forward-mode transform too)
    if strategy not in ("auto", "forward-mode", "reverse-mode"):
        raise ValueError(f"jacobian: strategy must be 'auto', 'forward-mode' or 'reverse-mode', got {strategy!r}")
    if strategy == "forward-mode":
        return forward_jacobian(func, inputs, create_graph, "jacobian", FORWARD_ADVICE)
    in_tuple, xs = as_tensors(inputs, "jacobian", "inputs")
    xs = fresh_inputs(xs, create_graph, "jacobian")
    out_tuple, outs = call_func(func, xs, "jacobian")
    if strategy == "auto" and sum(numel(x) for x in xs) < sum(numel(o) for o in outs):
        return forward_jacobian(func, inputs, create_graph, "jacobian", FORWARD_ADVICE)
    return _jacobian_of(outs, xs, in_tuple, out_tuple, create_graph)


FORWARD_ADVICE = (
    'pass strategy="reverse-mode", which calls func once '
    '(strategy="auto" picks forward mode when the inputs have fewer elements than the outputs).'
)


def _jacobian_of(
    outs: tuple[Tensor, ...], xs: tuple[Tensor, ...], in_tuple: bool, out_tuple: bool, create_graph: bool
) -> Any:
    table = []
    for i, out in enumerate(outs):
        rows: list[list[Tensor]] = [[] for _ in xs]
        for flat in range(numel(out)):
            units = [filled(o, 0) for o in outs]
            units[i] = one_hot(out, flat)
            grads = input_grads(outs, xs, units, create_graph, retain_graph=True)
            for j, g in enumerate(grads):
                rows[j].append(g)
        entry = []
        for j, x in enumerate(xs):
            if rows[j] and create_graph:
                block = reshape(stack(rows[j]), out.shape + x.shape)
            elif rows[j]:
                block = stacked(rows[j], 0, out.shape + x.shape)
            else:  # an empty output has an empty Jacobian
                block = filled(x, 0, out.shape + x.shape)
            entry.append(block)
        table.append(packed(in_tuple, entry))
    return packed(out_tuple, table)


def value_and_grad(func: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., tuple[Tensor, Any]]:
    """A function computing ``(func(*args), d func / d args[argnums])`` for a scalar ``func``.

    Arguments at ``argnums`` may be Tensors (floating-point ones) or array-likes: a
    floating-point array (numpy's, a numpy scalar, or another library's) keeps its dtype, as
    ``ab.tensor`` does, and any other array-like (Python numbers, lists, integer and bool
    arrays) becomes a float64 Tensor; the others pass through unchanged. ``autobp.tape``'s
    ``value_and_grad`` and ``hvp`` take them alike. The gradient is a Tensor for an int
    ``argnums``, a tuple otherwise. Shapes: each gradient has its argument's shape.

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
        distinct_argnums(argnums, positions, len(args), "value_and_grad")
        values = list(args)
        for p in positions:
            values[p] = differentiated_tensor(values[p], p % len(args), "value_and_grad")
        keep = differentiable(False)  # inside a forward-mode transform: results carry its tangents
        xs = fresh_inputs(tuple(values[p] for p in positions), keep, "value_and_grad")
        for p, x in zip(positions, xs, strict=True):
            values[p] = x
        with enable_grad(), differentiating():
            out = func(*values, **kwargs)
        _, outs = as_tensors(out, "value_and_grad", "func's output")
        check_scalar(outs, "value_and_grad")
        grads = input_grads(outs, xs, [filled(outs[0], 1)], keep)
        return maybe_detached(outs, keep)[0], packed(not isinstance(argnums, int), list(grads))

    return run
