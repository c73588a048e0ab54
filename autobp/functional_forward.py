"""Forward-mode transforms: ``jvp``, ``jacfwd``, and forward-over-reverse ``hvp`` and ``hessian``.

They run ``autobp.forward``: the inputs carry tangents through one evaluation of ``func``. For
``hvp`` the gradient is computed inside the forward-mode level, its vjp rules run on Tensors, so
that its tangent along ``v`` is ``H v``. Public through ``autobp.functional``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autobp.forward_ad import attach, dual_level, tangent_of
from autobp.functional_args import (
    SameEveryCall,
    as_tensors,
    call_func,
    check_scalar,
    checked_vectors,
    detached_tangents,
    differentiable,
    filled,
    fresh_inputs,
    input_grads,
    maybe_detached,
    numel,
    one_hot,
    packed,
    stacked,
)
from autobp.grad_mode import enable_grad
from autobp.ops import reshape, stack
from autobp.tensor import Tensor

__all__ = ["jvp", "jacfwd", "hessian", "hvp"]

# One call of func for one column of a Jacobian: (out_tuple, the outputs, their tangents, the
# values every such call must compute alike, each named for the error SameEveryCall raises).
Column = tuple[bool, tuple[Tensor, ...], list[Tensor], list[tuple[str, Tensor]]]


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
    create_graph = differentiable(create_graph)  # (inside another forward-mode transform too)
    _, xs = as_tensors(inputs, "jvp", "inputs")
    xs = fresh_inputs(xs, create_graph, "jvp", requires_grad=False)
    tangents = checked_vectors(v, xs, "jvp", pairs_with="inputs")  # one entry per input, of its shape
    out_tuple, outs, tangent_outs = _forward(func, xs, tangents, create_graph, "jvp")
    return packed(out_tuple, maybe_detached(outs, create_graph)), packed(
        out_tuple, detached_tangents(tangent_outs, create_graph, tangents)
    )


def _forward(
    func: Callable[..., Any], xs: tuple[Tensor, ...], tangents: Sequence[Tensor], create_graph: bool, what: str
) -> tuple[bool, tuple[Tensor, ...], list[Tensor]]:
    """Run ``func`` once in forward mode: ``(out_tuple, outputs, their tangents)``."""
    with dual_level(differentiable=create_graph) as level:
        for x, t in zip(xs, tangents, strict=True):
            attach(level, x, t if t.data.dtype == x.data.dtype else t.astype(x.dtype))
        out_tuple, outs = call_func(func, xs, what)
        return out_tuple, outs, _tangents_or_zeros(level, outs)


def _tangents_or_zeros(level: dual_level, values: Sequence[Tensor]) -> list[Tensor]:
    """Each value's tangent; zeros for a value that does not depend on the inputs."""
    found = [tangent_of(level, value) for value in values]
    return [filled(v, 0) if t is None else t for t, v in zip(found, values, strict=True)]


def jacfwd(func: Callable[..., Any], inputs: Any, create_graph: bool = False) -> Any:
    """The Jacobian of ``func`` at ``inputs`` by forward mode: one jvp (a column) per input element.

    Cheaper than reverse mode when the inputs have fewer elements than the outputs. ``func`` runs
    once per column, so it must be pure (no in-place writes to its inputs, no random draws): a
    call whose outputs differ from the first call's raises ``RuntimeError`` (for a func that
    draws random numbers, ``jacobian(..., strategy="reverse-mode")`` calls it once).
    Shapes: as ``jacobian``.

    >>> import autobp as ab
    >>> jacfwd(lambda x: ab.stack([x.sum(), (x * x).sum(), x[0]]), ab.tensor([1.0, 2.0])).tolist()
    [[1.0, 1.0], [2.0, 4.0], [1.0, 0.0]]
    """
    return forward_jacobian(func, inputs, create_graph, "jacfwd", JACFWD_ADVICE)


JACFWD_ADVICE = 'use jacobian(func, inputs, strategy="reverse-mode"), which calls func once.'


def forward_jacobian(func: Callable[..., Any], inputs: Any, create_graph: bool, what: str, advice: str) -> Any:
    """``jacfwd`` for the transform ``what`` (``jacobian`` in forward mode too): errors name it, and
    the one for a func that computes different values on repeated calls ends with ``advice``."""
    create_graph = differentiable(create_graph)  # (inside another forward-mode transform too)
    in_tuple, xs = as_tensors(inputs, what, "inputs")
    xs = fresh_inputs(xs, create_graph, what, requires_grad=False)

    def column(tangents: list[Tensor]) -> Column:
        out_tuple, outs, tangent_outs = _forward(func, xs, tangents, create_graph, what)
        named = [(f"output {i}" if out_tuple else "the output", out) for i, out in enumerate(outs)]
        return out_tuple, outs, tangent_outs, named

    return _columns(column, xs, in_tuple, create_graph, SameEveryCall(what, advice))


def _columns(
    run: Callable[[list[Tensor]], Column],
    xs: tuple[Tensor, ...],
    in_tuple: bool,
    create_graph: bool,
    same: SameEveryCall,
) -> Any:
    """Jacobian blocks from ``run(tangents) -> Column``, one input element at a time: entry
    ``[i][j]`` has shape ``outputs[i].shape + xs[j].shape``. Each call's primal values go to
    ``same``, which raises when one differs from the first call's: the columns would then come
    from different functions (a func drawing random numbers), and the result would be wrong."""
    columns: list[list[list[Tensor]]] = [[] for _ in xs]  # [j][element] -> the tangent of each output
    out_tuple: bool = False
    outs: tuple[Tensor, ...] = ()
    for j, x in enumerate(xs):
        for flat in range(numel(x)):
            tangents = [filled(z, 0) for z in xs]
            tangents[j] = one_hot(x, flat)
            out_tuple, outs, tangent_outs, primals = run(tangents)
            same.check(primals, f"inputs[{j}] element {flat}" if in_tuple else f"input element {flat}")
            columns[j].append(tangent_outs)
    if not any(columns):  # every input is empty: one plain evaluation gives the output shapes
        out_tuple, outs, _, _ = run([filled(z, 0) for z in xs])
    table = []
    for i, out in enumerate(outs):
        entry = []
        for j, x in enumerate(xs):
            parts = [tangent_outs[i] for tangent_outs in columns[j]]
            if parts and create_graph:  # stacked along a last axis, then that axis becomes x's shape
                block = reshape(stack(parts, axis=-1), out.shape + x.shape)
            elif parts:
                block = stacked(parts, -1, out.shape + x.shape)
            else:
                block = filled(out, 0, out.shape + x.shape)
            entry.append(block)
        table.append(packed(in_tuple, entry))
    return packed(out_tuple, table)


def hessian(func: Callable[..., Any], inputs: Any, create_graph: bool = False) -> Any:
    """The Hessian of a scalar ``func`` at ``inputs``, one Hessian-vector product (forward-over-
    reverse, as ``hvp``) per input element.

    ``func`` runs once per input element, so it must be pure: a call whose value or gradient
    differs from the first call's (a func that draws random numbers) raises ``RuntimeError``.
    Shapes: entry ``[i][j]`` has shape ``out.shape + inputs[i].shape + inputs[j].shape``, as
    ``jacobian`` of ``jacobian`` and ``torch.func.hessian`` give (a Tensor input gives one array,
    of shape ``x.shape + x.shape`` for the usual 0-d output; a one-element output of shape
    ``(1, 1)`` keeps its axes: ``(1, 1) + x.shape + x.shape``).

    >>> import autobp as ab
    >>> hessian(lambda x: (x**3).sum(), ab.tensor([1.0, 2.0])).tolist()
    [[6.0, 0.0], [0.0, 12.0]]
    """
    create_graph = differentiable(create_graph)  # (inside another forward-mode transform too)
    in_tuple, xs = as_tensors(inputs, "hessian", "inputs")
    xs = fresh_inputs(xs, create_graph, "hessian")

    out_shape: list[tuple[int, ...]] = []  # func's output shape (one element: () or (1, 1)...)

    def column(vectors: list[Tensor]) -> Column:
        value, gradient, products = _gradient_and_products(func, xs, vectors, create_graph, "hessian")
        if not out_shape:
            out_shape.append(tuple(value.shape))
        # The value alone could repeat with another random draw (dropout's mask of the same
        # size); the gradient shows where the draw fell.
        names = [f"func's gradient for inputs[{j}]" if in_tuple else "func's gradient" for j in range(len(xs))]
        return in_tuple, xs, products, [("func's value", value), *zip(names, gradient, strict=True)]

    table = _columns(column, xs, in_tuple, create_graph, SameEveryCall("hessian", HESSIAN_ADVICE))
    if not out_shape[0]:
        return table
    # A one-element output that is not 0-d keeps its axes in front, as jacobian's rule gives: the
    # (n, n) Hessian of a (1, 1) output was returned as if it were 0-d (torch.func: (1, 1, n, n)).
    if not in_tuple:
        return reshape(table, out_shape[0] + tuple(table.shape))
    return tuple(tuple(reshape(block, out_shape[0] + tuple(block.shape)) for block in row) for row in table)


HESSIAN_ADVICE = (
    "differentiate one call of func twice, by reverse mode: for a Tensor input x, "
    'jacobian(lambda x: ab.grad(func(x), [x], create_graph=True)[0], x, strategy="reverse-mode").'
)


def _forward_over_reverse(
    func: Callable[..., Any], xs: tuple[Tensor, ...], vectors: Sequence[Tensor], create_graph: bool, what: str
) -> tuple[Tensor, list[Tensor]]:
    """``(func(xs), H v)``: the gradient, computed inside a forward-mode level where ``xs`` carry
    ``vectors``, has tangents ``H v``."""
    value, _, products = _gradient_and_products(func, xs, vectors, create_graph, what)
    return value, products


def _gradient_and_products(
    func: Callable[..., Any], xs: tuple[Tensor, ...], vectors: Sequence[Tensor], create_graph: bool, what: str
) -> tuple[Tensor, tuple[Tensor, ...], list[Tensor]]:
    """``(func(xs), its gradient, H v)``: the gradient, computed inside a forward-mode level where
    ``xs`` carry ``vectors``, has tangents ``H v``. Its vjp rules run on Tensors (``create_graph``
    for the engine) so that they carry the tangents; without ``create_graph`` they record nothing
    (``engine.grad_carrying_tangents``), and the graph is freed as the gradient is computed."""
    with dual_level(differentiable=create_graph) as level:
        for x, t in zip(xs, vectors, strict=True):
            attach(level, x, t if t.data.dtype == x.data.dtype else t.astype(x.dtype))
        _, outs = call_func(func, xs, what)
        check_scalar(outs, what)
        with enable_grad():  # (without create_graph, H v is all that is wanted: the rules record nothing)
            seed = [filled(outs[0], 1)]
            gradient = input_grads(outs, xs, seed, create_graph=create_graph, carry_tangents=not create_graph)
        return outs[0], gradient, _tangents_or_zeros(level, gradient)


def _reverse_over_forward(
    func: Callable[..., Any], xs: tuple[Tensor, ...], vectors: Sequence[Tensor], create_graph: bool, what: str
) -> tuple[Tensor, list[Tensor]]:
    """``(func(xs), H v)`` as the gradient of the directional derivative ``<grad f, v>``: forward
    mode gives that scalar, its tangent ops recorded, and one backward differentiates it."""
    with dual_level(differentiable=True) as level:
        for x, t in zip(xs, vectors, strict=True):
            attach(level, x, t if t.data.dtype == x.data.dtype else t.astype(x.dtype))
        _, outs = call_func(func, xs, what)
        check_scalar(outs, what)
        slope = tangent_of(level, outs[0])
    if slope is None:  # func does not depend on xs
        return outs[0], [filled(x, 0) for x in xs]
    ones = filled(slope, 1)
    return outs[0], list(input_grads([slope], xs, [ones], create_graph))


HVP_STRATEGIES = {"forward-over-reverse": _forward_over_reverse, "reverse-over-forward": _reverse_over_forward}


def hvp(
    func: Callable[..., Any],
    inputs: Any,
    v: Any,
    create_graph: bool = False,
    strategy: str = "forward-over-reverse",
) -> tuple[Tensor, Any]:
    """``(func(inputs), H v)``: the Hessian-vector product of a scalar ``func``.

    ``strategy="forward-over-reverse"`` computes the gradient once, carrying tangents along ``v``
    (no second backward pass). ``"reverse-over-forward"`` computes the directional derivative
    ``<grad f, v>`` in forward mode and differentiates it by one first-order backward: the same
    ``H v`` (the Hessian is symmetric), and faster in autobp's eager mode on an MLP (W5 in
    ``benchmarks/``), because that backward runs its rules on plain arrays.
    Shapes: ``v`` and the result have the inputs' shapes.

    >>> import autobp as ab
    >>> out, hv = hvp(lambda x: (x**3).sum(), ab.tensor([1.0, 2.0]), ab.tensor([1.0, 1.0]))
    >>> hv.tolist()
    [6.0, 12.0]
    """
    if strategy not in HVP_STRATEGIES:
        raise ValueError(f"hvp: strategy must be one of {sorted(HVP_STRATEGIES)}, got {strategy!r}")
    create_graph = differentiable(create_graph)  # (inside another forward-mode transform too)
    in_tuple, xs = as_tensors(inputs, "hvp", "inputs")
    xs = fresh_inputs(xs, create_graph, "hvp")
    vectors = checked_vectors(v, xs, "hvp", pairs_with="inputs")
    out, products = HVP_STRATEGIES[strategy](func, xs, vectors, create_graph, "hvp")
    return maybe_detached((out,), create_graph)[0], packed(in_tuple, detached_tangents(products, create_graph, vectors))
