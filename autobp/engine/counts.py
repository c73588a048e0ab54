"""The reverse walk's bookkeeping: how many gradient contributions each vertex still awaits.

A vertex (a ``Node``, or a leaf Tensor) is ready once every consumer has passed it a gradient
(or a zero, as ``None``); ``count_consumers`` counts them before the walk, ``skip_node`` counts
down a node that received no gradient at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from autobp.engine.errors import freed_error
from autobp.graph import Node
from autobp.tensor import Tensor

__all__ = ["Vertex", "count_consumers", "skip_node"]

Vertex = Node | Tensor


def count_consumers(roots: Sequence[Vertex]) -> dict[Vertex, int]:
    """How many gradient contributions each vertex will receive, by an iterative DFS."""
    # Vertices key the dicts by identity: Tensor hashes by id and live objects never share one.
    consumers: dict[Vertex, int] = {}
    # Each root once: an output given twice (``grad([y, y], ...)``) would count its inputs twice,
    # and the walk, which runs it once, would wait forever for the second contribution.
    stack = list(dict.fromkeys([v for v in roots if type(v) is Node]))
    started = set(stack)  # the roots, walked from the start
    while stack:
        node = stack.pop()
        inputs = node._inputs
        if inputs is None:
            raise freed_error(node)
        for value in inputs:
            if not isinstance(value, Tensor) or not value.requires_grad:
                continue
            parent = value.grad_fn
            vertex: Vertex = parent or value
            count = consumers.get(vertex, 0)
            consumers[vertex] = count + 1
            # A node is walked when its first consumer is found: the counts double as the set of
            # nodes seen, so a million-node graph needs no second table (W4's bytes per node).
            if not count and parent is not None and parent not in started:
                stack.append(parent)
    return consumers


def skip_node(node: Node, consumers: dict[Vertex, int], ready: list[Vertex], retain_graph: bool) -> None:
    """Pass a node that received no gradient: each of its inputs gets a zero (uncounted) contribution."""
    for value in node._inputs or ():
        if isinstance(value, Tensor) and value.requires_grad:
            target = value.grad_fn or value
            remaining = consumers[target] - 1
            consumers[target] = remaining
            if not remaining:
                ready.append(target)
    if not retain_graph:
        node.release()
