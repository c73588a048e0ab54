"""Names and blocks (clusters) of graph vertices, for the pictures and the text form."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from autobp.graph import is_node, node_inputs
from autobp.tensor import Tensor

__all__ = ["clusters", "module_blocks", "own_name", "vertex_names", "vertex_of"]

Vertex = Any  # a Tensor: a recorded op's output (its node, drawn as the op and the output), or a leaf


def vertex_of(tensor: Tensor) -> Vertex:
    """The graph vertex a tensor stands for: itself (a recorded op's output is its node)."""
    return tensor


def own_name(vertex: Vertex) -> str | None:
    name = getattr(vertex, "name", None)
    return None if name is None else str(name)


def vertex_names(
    roots: Sequence[Tensor], names: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None
) -> dict[int, str]:
    """Vertex id -> name: ``.name`` of the roots, then ``names=`` (which wins)."""
    named: dict[int, str] = {}
    for root in roots:
        if getattr(root, "name", None):
            named[id(vertex_of(root))] = str(root.name)
    pairs = names.items() if isinstance(names, Mapping) else (names or ())
    for name, tensor in pairs:
        if not isinstance(tensor, Tensor):
            raise TypeError(f"draw_graph: names[{name!r}] must be a Tensor, got {type(tensor).__name__}")
        named[id(vertex_of(tensor))] = str(name)
    return named


def clusters(order: list[Vertex], collapse: Mapping[str, Tensor] | None) -> dict[int, str]:
    """Vertex id -> cluster name: each block holds the ops computing its output since earlier blocks."""
    if not collapse:
        return {}
    position = {id(v): i for i, v in enumerate(order)}
    blocks = []
    for name, tensor in collapse.items():
        if not isinstance(tensor, Tensor) or tensor.op is None:
            raise ValueError(
                f"draw_graph: collapse[{name!r}] must be the non-leaf Tensor a block returns (its output), "
                f"got {tensor!r}"
            )
        if id(tensor) in position:
            blocks.append((position[id(tensor)], name, tensor))
    cluster: dict[int, str] = {}
    consumers: dict[int, set[str | None]] = {}
    for _, name, start in sorted(blocks, key=lambda block: block[0]):
        stack: list[Vertex] = [start]
        while stack:
            vertex = stack.pop()
            if id(vertex) in cluster or not is_node(vertex):
                continue
            cluster[id(vertex)] = name
            stack.extend(vertex_of(t) for t in node_inputs(vertex) or ())
    for vertex in order:
        for tensor in (node_inputs(vertex) or ()) if is_node(vertex) else ():
            consumers.setdefault(id(tensor), set()).add(cluster.get(id(vertex)))
    # A parameter joins a block when only that block uses it; data inputs stay outside.
    for vertex in order:
        if vertex.op is None and vertex.requires_grad and len(consumers.get(id(vertex), ())) == 1:
            (only,) = consumers[id(vertex)]
            if only is not None:
                cluster[id(vertex)] = only
    return cluster


@contextlib.contextmanager
def module_blocks(model: Any) -> Iterator[dict[str, Tensor]]:
    """Record what each sub-module of ``model`` returns, as blocks for ``draw_graph(collapse=...)``.

    Inside the ``with``, calling ``model`` fills the dict with ``"name: Type" -> output`` for
    each direct sub-module (``model.named_children()``), in call order; a sub-module called twice
    keeps its last output. ``model`` is left as it was on exit.

    Shapes: any; the outputs are the sub-modules' own.

    >>> import autobp as ab
    >>> model = ab.nn.Sequential(ab.nn.Linear(3, 4), ab.nn.Tanh(), ab.nn.Linear(4, 1))
    >>> with ab.viz.module_blocks(model) as blocks:
    ...     loss = model(ab.randn(5, 3, rng=0)).sum()
    >>> list(blocks)
    ['0: Linear', '1: Tanh', '2: Linear']
    """
    found: dict[str, Tensor] = {}
    patched: list[tuple[Any, Any]] = []

    def recording(label: str, forward: Any) -> Any:
        def forward_and_record(*args: Any, **kwargs: Any) -> Any:
            out = forward(*args, **kwargs)
            if isinstance(out, Tensor) and out.op is not None:
                found.pop(label, None)  # re-insert: the dict keeps call order
                found[label] = out
            return out

        return forward_and_record

    try:
        for name, child in model.named_children():
            patched.append((child, child.__dict__.get("forward")))
            # object.__setattr__: an instance attribute shadows the class's forward without module bookkeeping
            object.__setattr__(child, "forward", recording(f"{name}: {type(child).__name__}", child.forward))
        yield found
    finally:
        for child, own in patched:
            if own is None:
                object.__delattr__(child, "forward")
            else:
                object.__setattr__(child, "forward", own)
