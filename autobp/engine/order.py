"""The reverse walk's order: nodes by when they were recorded, the latest first.

``record`` numbers every node (a recorded op's output tensor) from one counter (``_seq``). An op's inputs exist before
it runs, so the node that made an input was recorded before the node that reads it: every
consumer of a node has a greater number. The walk keeps the nodes given a gradient on a heap
and takes the greatest number next. By the time a node comes off the heap, every node that
could still send it a contribution has run, so its gradient is complete. Leaves (no node) run
after every node.

This replaces a pass before the walk that counted, for every vertex, the contributions it
would receive: that pass cost about a tenth of a first-order step's Python (W1), and its table a
dictionary entry per node while the walk ran (W4's bytes per node).

The order holds for every graph ``record`` builds. A ``grad_fn`` pointed by hand at a node
recorded later would break it, and a node that runs before all its contributions arrived loses
the late ones: the walk checks each node it queues, a zero contribution's too (``out_of_order``),
and refuses such a graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from heapq import heappush
from typing import Any

from autobp.tensor import Tensor

__all__ = ["Vertex", "queue_seeds", "out_of_order", "leads_to"]

Vertex = Tensor  # a recorded op's output (its node: ``op`` is set), or a leaf


def queue_seeds(
    outputs: Sequence[Tensor],
    seeds: Sequence[Tensor],
    plain: bool,
    grads: dict[Vertex, Any],
    heap: list[tuple[int, Tensor]],
    leaves: list[Tensor],
) -> None:
    """Start the walk: each output's seed in ``grads`` (as its array if ``plain``) under the
    output's vertex (an output given twice gets their sum), its node on the heap as
    ``(-_seq, node)``, or a leaf output in ``leaves``."""
    for output, seed_tensor in zip(outputs, seeds, strict=True):
        vertex = output
        seed = seed_tensor.data if plain else seed_tensor
        if vertex in grads:
            grads[vertex] = grads[vertex] + seed
            continue
        grads[vertex] = seed
        if vertex.op is not None:
            heappush(heap, (-vertex._seq, vertex))
        else:
            leaves.append(vertex)


def out_of_order(target: Tensor, consumer: Tensor) -> RuntimeError:
    return RuntimeError(
        f"backward: op '{target.op.name}' feeds op '{consumer.op.name}' but was recorded after it, so the "
        "walk cannot know when its gradient is complete. A node's inputs were set by hand; let ops record them."
    )


def leads_to(start: Tensor, wanted: set[Vertex], memo: dict[Vertex, bool]) -> bool:
    """Whether a wanted vertex is ``start`` or lies upstream of it (its inputs, theirs, ...).

    ``ab.grad`` asks it only of a node with hooks (``_rare``): a node that leads to no wanted
    vertex is not run, as PyTorch runs none (its hooks would see a gradient nobody asked for).
    ``memo`` keeps the answers for the rest of the walk, so a graph is searched once at most.
    A node freed by an earlier backward counts as leading to one: the walk reaches it and says
    it was freed (skipped, its part of the gradient was silently missing).
    """
    found = memo.get(start)
    if found is not None:
        return found
    below: list[Tensor] = []  # the nodes upstream of start not answered yet
    seen: set[Vertex] = {start}
    stack = [start]
    while stack:
        node = stack.pop()
        below.append(node)
        for tensor in node._inputs or ():
            if _on_graph(tensor) and tensor.op is not None and tensor not in seen and tensor not in memo:
                seen.add(tensor)
                stack.append(tensor)
    below.sort(key=_seq)  # inputs before the nodes that read them
    for node in below:
        # (a node freed by an earlier backward is walked, to raise there as it did before: it may
        # have led anywhere)
        memo[node] = (
            node in wanted
            or node._inputs is None
            or any([t in wanted or memo.get(t, False) for t in node._inputs or () if _on_graph(t)])
        )
    return memo[start]


def _seq(node: Tensor) -> int:
    return node._seq


def _on_graph(value: Any) -> bool:
    return isinstance(value, Tensor) and value._requires_grad
