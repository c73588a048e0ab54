"""What a graph picture shows, computed once for both the graphviz and the text form.

``build_view`` walks the recorded graph without recursion, orders it as it was recorded (each op
after the ops whose outputs it reads, leaves just before their first use), finds where NaN or Inf
first appears, and keeps the part nearest the root when the graph is larger than ``max_nodes``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autobp.graph import is_node, node_inputs
from autobp.tensor import Tensor
from autobp.viz.groups import clusters, own_name, vertex_names
from autobp.viz.summary import Stats, format_scalar, kwargs_text, more, summarize, where

__all__ = ["FREED_NOTE", "GraphView", "OpView", "TensorView", "build_view", "forward_order"]

Vertex = Tensor  # a recorded op's output (its node: the op and the output), or a leaf

FREED_NOTE = (
    "the graph was freed by backward(): only the root is left. "
    "Call backward(retain_graph=True) (or ab.grad(..., retain_graph=True)) to keep it for drawing"
)


@dataclass
class TensorView:
    """A tensor vertex: a leaf, or the output of one op."""

    id: str
    name: str | None
    kind: str  # "param" (leaf requiring grad), "const", "output" (of an op), "root"
    shape: tuple[int, ...] | None
    dtype: str | None
    value: Stats | None
    grad: Stats | None
    cluster: str | None = None
    # "changed since mul read it (version 0 -> 1)": written in place (or stepped by an optimizer)
    # after an op read it, so its value is newer than what the op's output was computed from.
    changed: str | None = None


@dataclass
class OpView:
    """An op application: its registry name, arguments and the tensor it produced."""

    id: str
    name: str
    args: list[tuple[str, str]]  # per input: ("tensor", id), ("const", "0.5") or ("omitted", "…")
    kwargs: str  # keyword arguments, e.g. "axis=1  keepdims=True"
    output: str
    freed: bool
    first_bad: bool
    cluster: str | None = None
    where: str | None = None  # "train.py:42": the user's line that ran the forward (anomaly mode only)


@dataclass
class GraphView:
    """Everything a picture shows, in recording order (``forward_order``)."""

    tensors: dict[str, TensorView]
    ops: list[OpView]
    total_ops: int
    total_tensors: int
    cut: list[str] = field(default_factory=list)  # ids of ops with inputs left out by max_nodes
    freed: bool = False
    first_bad: str | None = None  # name of the first op producing NaN/Inf, drawn or not
    first_bad_drawn: bool = False

    @property
    def omitted_ops(self) -> int:
        return self.total_ops - len(self.ops)

    @property
    def omitted_tensors(self) -> int:
        return self.total_tensors - len(self.tensors)

    @property
    def omitted(self) -> str:
        """What ``max_nodes`` left out, e.g. ``"99,980 more ops and 1 more leaf"``."""
        leaves = self.omitted_tensors - self.omitted_ops
        return f"{more(self.omitted_ops, 'op', 'ops')} and {more(leaves, 'leaf', 'leaves')}"


def _finite(array: Any) -> bool:
    kind = array.dtype.kind
    if kind not in "fc":
        return True
    if kind == "f" and array.size == 1:  # most nodes of huge graphs are scalars: skip numpy's overhead
        return math.isfinite(array.item())
    return bool(np.isfinite(array).all())


def _vertex(tensor: Tensor) -> Vertex:
    return tensor


def _inputs(vertex: Vertex) -> tuple[Tensor, ...]:
    return (node_inputs(vertex) or ()) if is_node(vertex) else ()


def forward_order(roots: Sequence[Vertex]) -> list[Vertex]:
    """Every vertex reachable from ``roots``: ops in the order they were recorded, each leaf just
    before the first op that reads it (a leaf root that no op reads comes last).

    Recording order, not a depth-first walk: a walk visits a node's inputs in argument order, so
    ``log(...) + sqrt(...)`` would list the log first although the sqrt ran first, and "where
    NaN first appears" would name the wrong op. ``Tensor._seq`` numbers nodes as they are recorded
    (every consumer has a greater number), so sorting by it keeps inputs before their users.
    """
    ops: list[Tensor] = []
    leaves: list[Tensor] = []
    seen: set[int] = set()
    stack: list[Vertex] = list(roots)
    while stack:  # iterative: no graph is too deep to draw
        vertex = stack.pop()
        if id(vertex) in seen:
            continue
        seen.add(id(vertex))
        if not is_node(vertex):
            leaves.append(vertex)
            continue
        ops.append(vertex)
        stack.extend(tensor for tensor in node_inputs(vertex) or ())
    ops.sort(key=lambda node: node._seq)
    order: list[Vertex] = []
    placed: set[int] = set()
    for node in ops:
        for tensor in node_inputs(node) or ():
            if tensor.op is None and id(tensor) not in placed:
                placed.add(id(tensor))
                order.append(tensor)
        order.append(node)
    order.extend(leaf for leaf in leaves if id(leaf) not in placed)
    return order


def _keep(roots: Sequence[Vertex], inlined: set[int], max_nodes: int) -> set[int]:
    """Vertices nearest the roots (breadth first) whose picture nodes fit in ``max_nodes``."""
    kept: set[int] = set()
    used = 0
    queue = deque(roots)
    while queue:
        vertex = queue.popleft()
        if id(vertex) in kept:
            continue
        cost = 2 if is_node(vertex) else 1  # an op draws itself and its output tensor
        if used + cost > max_nodes:
            break
        kept.add(id(vertex))
        used += cost
        queue.extend(_vertex(t) for t in _inputs(vertex) if id(t) not in inlined)
    return kept


def _mark_changed(node: Tensor, view: GraphView, ids: dict[int, str]) -> None:
    """Mark the drawn inputs of ``node`` whose version moved since it ran (autobp.engine.versions)."""
    saved = node.versions  # None: every input was at version 0
    for i, tensor in enumerate(node._inputs or ()):
        if not isinstance(tensor, Tensor):
            continue
        then = saved[i] if saved is not None else 0
        now = tensor._version
        tid = ids.get(id(_vertex(tensor)))
        if now != then and tid is not None and view.tensors[tid].changed is None:
            view.tensors[tid].changed = f"changed since {node.op.name} read it (version {then} -> {now})"


def build_view(
    roots: Sequence[Tensor],
    *,
    names: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    max_nodes: int = 500,
    collapse: Mapping[str, Tensor] | None = None,
    values: bool = True,
    grads: bool = True,
) -> GraphView:
    """The drawable view of the graph behind ``roots``; see ``autobp.viz.draw_graph``."""
    if max_nodes < 1:
        raise ValueError(f"draw_graph: max_nodes must be at least 1, got {max_nodes}")
    for root in roots:
        if not isinstance(root, Tensor):
            raise TypeError(f"draw_graph: the root must be a Tensor, got {type(root).__name__}")
    named = vertex_names(roots, names)
    root_vertices = list(dict.fromkeys(_vertex(r) for r in roots))
    root_ids = {id(v) for v in root_vertices}
    order = forward_order(root_vertices)

    # NaN/Inf: the first op to run (recording order) whose output is bad while all its inputs were finite.
    bad: set[int] = set()
    first_bad_id = None
    for vertex in order:
        array = vertex.out if is_node(vertex) else vertex.data
        if array is not None and not _finite(np.asarray(array)):
            bad.add(id(vertex))
            if first_bad_id is None and is_node(vertex) and not any(id(_vertex(t)) in bad for t in _inputs(vertex)):
                first_bad_id = id(vertex)
    # Unnamed finite scalar constants (the 0.5 in ``0.5 * x``) are printed inside their op, not drawn;
    # not one changed in place since an op read it: printed inside, it showed the new value as the
    # one the op computed with (``x * c`` drawn ``mul(t0, 5)`` after ``c.fill_(5)`` where c was 2).
    changed = {
        id(t)
        for v in order
        if is_node(v)
        for i, t in enumerate(v._inputs or ())
        if isinstance(t, Tensor) and t._version != (v.versions[i] if v.versions is not None else 0)
    }
    inlined = {
        id(v)
        for v in order
        if isinstance(v, Tensor)
        and v.size == 1
        and not v.requires_grad
        and id(v) not in named
        and id(v) not in bad
        and id(v) not in root_ids
        and id(v) not in changed
        and getattr(v, "name", None) is None
    }
    total_ops = sum(is_node(v) for v in order)
    view = GraphView({}, [], total_ops, len(order) - len(inlined))

    kept = _keep(root_vertices, inlined, max_nodes)
    cluster = clusters(order, collapse)
    ids: dict[int, str] = {}
    for vertex in order:
        if id(vertex) not in kept:
            continue
        tid = ids[id(vertex)] = f"t{len(ids)}"
        kind = "root" if id(vertex) in root_ids else "output"
        if is_node(vertex):
            # (what the op computed, kept after backward freed the graph; a non-leaf's .grad: retain_grad's)
            array, grad = vertex.out, vertex.grad
        else:
            array, grad = vertex.data, vertex.grad
            if id(vertex) not in root_ids:
                kind = "param" if vertex.requires_grad else "const"
        value = summarize(array) if array is not None and (values or id(vertex) in bad) else None
        view.tensors[tid] = TensorView(
            id=tid,
            name=named.get(id(vertex)) or own_name(vertex),
            kind=kind,
            shape=None if array is None else tuple(np.shape(array)),
            dtype=None if array is None else str(np.asarray(array).dtype),
            value=value,
            grad=summarize(grad) if grad is not None and grads else None,
            cluster=cluster.get(id(vertex)),
        )
        if is_node(vertex):
            args = []
            for t in node_inputs(vertex) or ():
                if id(t) in inlined:
                    args.append(("const", format_scalar(t.data)))
                elif id(_vertex(t)) in ids:
                    args.append(("tensor", ids[id(_vertex(t))]))
                else:
                    args.append(("omitted", "…"))
            _mark_changed(vertex, view, ids)
            if any(kind == "omitted" for kind, _ in args):
                view.cut.append("op" + tid[1:])
            if id(vertex) == first_bad_id:
                view.first_bad, view.first_bad_drawn = vertex.op.name, True
            view.freed = view.freed or node_inputs(vertex) is None
            op = OpView(
                "op" + tid[1:], vertex.op.name, args, kwargs_text(vertex), tid, node_inputs(vertex) is None, False
            )
            op.first_bad, op.cluster = id(vertex) == first_bad_id, cluster.get(id(vertex))
            if op.first_bad:
                op.where = where(vertex)
            view.ops.append(op)
    if first_bad_id is not None and not view.first_bad_drawn:
        view.first_bad = next(v.op.name for v in order if is_node(v) and id(v) == first_bad_id)
    return view
