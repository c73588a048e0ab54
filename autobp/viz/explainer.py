"""The backward pass step by step, from the graph autobp really differentiates: ``ab.viz.explain(loss)``.

``explain`` runs autobp's engine (``ab.grad``) on the recorded graph with a hook on every tensor:
the hooks record, in the order the engine visits them, the gradient that reaches each node. Each
visited node becomes a ``Step``: its op, the vjp rule as a formula (``explain_rules``), the
incoming gradient, the saved values the rule reads, and what the registry's own vjp rules send
to each input (run again on the recorded values, and checked against what the engine delivered).
Where the graph is the seed's sigmoid network, ``explain_seed`` adds which of the book's equations
BP1-BP4 each step realises, checked against ``autobp.reference``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from autobp.backends import describe
from autobp.engine import grad as engine_grad
from autobp.engine.rule_paths import _run_rules as run_rules
from autobp.grad_mode import no_grad
from autobp.graph import is_node, node_inputs
from autobp.hooks import register_hook
from autobp.ops import sum_to
from autobp.tensor import Tensor
from autobp.viz import explain_seed
from autobp.viz.explain_model import Explanation, Flow, Step
from autobp.viz.explain_rules import RuleFormula, formula_for
from autobp.viz.groups import vertex_names, vertex_of
from autobp.viz.model import forward_order
from autobp.viz.summary import format_scalar, kwargs_text

__all__ = ["explain"]

MAX_STEPS = 200  # a page per node stops teaching long before this


def _labels(
    root: Tensor, order: list[Any], given: Mapping[int, str]
) -> tuple[dict[int, str], dict[int, Tensor], list[tuple[str, Tensor]]]:
    """Vertex id -> label and vertex id -> Tensor, for every vertex; unnamed ones get ``t0``, ``t1``...

    Unnamed scalar constants are labelled by their value and left out of ``drawn``, as the graph
    picture prints them inside their op.
    """
    tensors: dict[int, Tensor] = {id(vertex_of(root)): root}
    for vertex in order:
        if is_node(vertex):
            for tensor in node_inputs(vertex) or ():
                tensors.setdefault(id(vertex_of(tensor)), tensor)
    labels: dict[int, str] = {}
    constants: set[int] = set()
    taken = set(given.values()) | {str(t.name) for t in tensors.values() if t.name is not None}
    counter = 0
    used: set[str] = set()
    for vertex in order:
        key = id(vertex)
        tensor = tensors[key]
        name = given.get(key) or (None if tensor.name is None else str(tensor.name))
        if name:
            # Two tensors with one name would share a box's id in the picture: number the later ones.
            label, copy = name, 2
            while label in used:
                label, copy = f"{name}#{copy}", copy + 1
            labels[key] = label
            used.add(label)
            continue
        if tensor.size == 1 and not tensor.requires_grad and tensor.op is None and tensor.name is None:
            labels[key] = format_scalar(tensor.data)  # a constant such as the 0.5 of 0.5 * x
            constants.add(key)
            continue
        while f"t{counter}" in taken:
            counter += 1
        labels[key] = f"t{counter}"
        taken.add(labels[key])
        used.add(labels[key])
    drawn = [(labels[id(v)], tensors[id(v)]) for v in order if id(v) not in constants]
    return labels, tensors, drawn


def _capture(root: Tensor, tensors: dict[int, Tensor]) -> tuple[list[tuple[Any, np.ndarray]], dict[int, np.ndarray]]:
    """Run the engine with a hook on every tensor: (vertex, gradient) in visiting order, and leaf gradients."""
    visited: list[tuple[Any, np.ndarray]] = []
    handles = []
    leaves = [t for t in tensors.values() if t.requires_grad and t.op is None]
    try:
        for tensor in tensors.values():
            if tensor.requires_grad:
                vertex = vertex_of(tensor)

                def seen(grad: Tensor, vertex: Any = vertex) -> None:
                    visited.append((vertex, np.array(grad.data, copy=True)))

                handles.append(register_hook(tensor, seen))
        # ab.grad, not backward: the user's .grad stays as it was; the graph is kept for the walk.
        found = engine_grad(root, leaves, retain_graph=True)
    finally:
        for handle in handles:
            handle.remove()
    return visited, {id(leaf): g.data for leaf, g in zip(leaves, found, strict=True) if g is not None}


def _rule_gradients(node: Tensor, incoming: np.ndarray) -> list[np.ndarray | None]:
    """The registry's vjp rules of ``node`` applied to ``incoming``, summed to each input's shape."""
    inputs = node_inputs(node)
    if inputs is None:
        raise RuntimeError(f"explain: the graph of op '{node.op.name}' was freed; call explain before backward()")
    grad, out = Tensor._wrap(incoming), Tensor._wrap(node.out)
    with no_grad():
        # (the engine's own dispatch: a rule per input that needs a gradient, or the variadic rule
        # told which, its count checked)
        results = run_rules(node, grad, out, inputs, inputs)
        gradients: list[np.ndarray | None] = []
        for tensor, result in zip(inputs, results, strict=True):
            if result is None or not tensor.requires_grad:
                gradients.append(None)
                continue
            array = np.asarray(result.data if isinstance(result, Tensor) else result)
            if array.shape != tensor.shape:  # what the engine does after every rule
                array = np.asarray(sum_to(Tensor._wrap(array), tensor.shape).data)
            gradients.append(array.astype(tensor.dtype, copy=False))
    return gradients


def _saved(node: Tensor, formulas: list[RuleFormula], labels: Mapping[int, str]) -> list[tuple[str, Any]]:
    inputs = node_inputs(node) or ()
    values: dict[str, tuple[str, Any]] = {}
    for formula in formulas:
        for name in formula.reads:
            if name == "out":
                values[name] = (f"out = {labels[id(node)]}", node.out)
            elif name in ("x", "y") and len(inputs) > "xy".index(name):
                tensor = inputs["xy".index(name)]
                label = labels[id(vertex_of(tensor))]
                constant = tensor.size == 1 and label == format_scalar(tensor.data)  # 0.5 names itself
                values[name] = (name if constant else f"{name} = {label}", tensor.data)
            elif name == "x.shape" and inputs:
                values[name] = ("x.shape", tuple(inputs[0].shape))
            elif name == "inputs":
                for i, tensor in enumerate(inputs):
                    values[f"input{i}"] = (f"input {i} = {labels[id(vertex_of(tensor))]}", tensor.data)
    return list(values.values())


def explain(
    loss: Tensor,
    *,
    names: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    eta: float | None = None,
    title: str | None = None,
) -> Explanation:
    """Walk the backward pass of ``loss`` node by node, in the engine's order, with every number shown.

    Runs ``ab.grad`` on the graph (the user's ``.grad`` is left alone; the graph is kept). Where
    the graph is the seed's sigmoid network (``Network.cost``, or the same ops written by hand),
    each step also says which of BP1-BP4 it realises and compares its value with
    ``autobp.reference``; ``eta`` then adds one gradient-descent step with the cost before and
    after. ``names`` labels tensors (``model.named_parameters()`` works); others get ``t0``, ``t1``...

    Shapes: ``loss`` a scalar (any graph up to 200 ops).

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0], requires_grad=True)
    >>> steps = ab.viz.explain((x * x).sum(), names={"x": x}).steps
    >>> [(s.op, s.incoming.tolist(), s.flows[0].gradient.tolist()) for s in steps]
    [('sum', 1.0, [1.0, 1.0]), ('mul', [1.0, 1.0], [1.0, 2.0])]
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"explain: loss must be a Tensor, got {type(loss).__name__}")
    if not loss.requires_grad or loss.op is None:
        raise ValueError(
            f"explain: loss {describe(loss)} has no graph; compute it from tensors made with "
            "requires_grad=True, outside ab.no_grad()"
        )
    if loss.size != 1:
        raise ValueError(f"explain: loss must be a scalar, got shape {loss.shape}; reduce it first, e.g. loss.sum()")
    order = forward_order([loss])
    ops = sum(is_node(v) for v in order)
    if ops > MAX_STEPS:
        raise ValueError(f"explain: the graph has {ops} ops; explain shows up to {MAX_STEPS}, one step each")
    if any(is_node(v) and v._inputs is None for v in order):
        raise RuntimeError("explain: the graph was freed by backward(); call explain(loss) before loss.backward()")
    seed = explain_seed.match(loss)
    given = explain_seed.names(seed) if seed is not None else {}
    given.update(vertex_names([loss], names))
    labels, tensors, drawn = _labels(loss, order, given)

    # Gradient hooks (the user's, before explain adds its own) change what the engine passes back:
    # at a hooked tensor and below it, the numbers are no longer dC/d of the cost.
    hooked = {id(v) for v in order if (v._node_hooks if is_node(v) else v._hooks)}
    below = _below(order, hooked)
    visited, leaf_grads = _capture(loss, tensors)
    delivered = {id(vertex): g for vertex, g in visited}
    sent: dict[int, np.ndarray] = {}
    steps: list[Step] = []
    for vertex, incoming in visited:
        if not is_node(vertex):
            continue
        inputs = node_inputs(vertex) or ()
        formulas = [formula_for(vertex.op.name, i, len(inputs)) for i in range(len(inputs))]
        gradients = _rule_gradients(vertex, incoming)
        flows = []
        for tensor, formula, gradient in zip(inputs, formulas, gradients, strict=True):
            key = id(vertex_of(tensor))
            flows.append(Flow(labels[key], formula, gradient))
            if gradient is not None:
                sent[key] = sent[key] + gradient if key in sent else gradient
        needed = [f for f, g in zip(formulas, gradients, strict=True) if g is not None]
        steps.append(
            Step(
                len(steps) + 1,
                vertex.op.name,
                labels[id(vertex)],
                kwargs_text(vertex),
                incoming,
                _saved(vertex, needed, labels),
                flows,
                hooked="hook" if id(vertex) in hooked else "below" if id(vertex) in below else "",
            )
        )
    # Every gradient the rules sent, summed per tensor, against what the engine delivered there.
    engine_diff = max((float(np.max(np.abs(g - delivered[k]), initial=0.0)) for k, g in sent.items()), default=0.0)
    leaves = [(labels[k], g) for k, g in leaf_grads.items()]
    # A one-element loss need not be 0-d (shape (1, 1) passes the size check): read its one value.
    cost = float(np.asarray(loss.data).reshape(()))
    explanation = Explanation(title or "a user's graph", cost, steps, leaves, engine_diff, loss, drawn)
    explanation.hooks = [labels[id(v)] for v in order if id(v) in hooked]
    explanation.hooked_leaves = [labels[k] for k in leaf_grads if k in hooked or k in below]
    if seed is not None:
        explain_seed.annotate(explanation, seed, {id(v): s for (v, _), s in zip(_nodes(visited), steps, strict=True)})
        if eta is not None:
            explanation.descent = explain_seed.descent(seed, leaf_grads, cost, eta)
    return explanation


def _below(order: list[Any], hooked: set[int]) -> set[int]:
    """Vertices a hooked gradient flows into: the inputs, recursively, of every hooked node."""
    below: set[int] = set()
    for vertex in reversed(order):  # consumers before the vertices they read
        if is_node(vertex) and (id(vertex) in hooked or id(vertex) in below):
            below.update(id(vertex_of(t)) for t in node_inputs(vertex) or () if t.requires_grad)
    return below


def _nodes(visited: list[tuple[Any, np.ndarray]]) -> list[tuple[Any, np.ndarray]]:
    return [(v, g) for v, g in visited if is_node(v)]
