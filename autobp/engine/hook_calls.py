"""Where the reverse walk meets user code: tensor and node hooks, ``retain_grad``, and ``.grad``.

Hooks see Tensors with ops behaving as usual, whichever path the walk takes; leaves'
``.grad`` is written (accumulated) only once the whole walk succeeded.
"""

from __future__ import annotations

from typing import Any

from autobp import graph
from autobp.engine.mode_switch import modes
from autobp.graph import Node
from autobp.tensor import Tensor

__all__ = ["run_hooks", "run_node_hooks", "accumulate"]


def run_hooks(hooks: Any, g: Any, create_graph: bool) -> Any:
    """Run user hooks on a gradient. Hooks always see Tensors, with ops behaving as usual."""
    tensor = g if create_graph else Tensor._wrap(g)
    with modes(None, arrays=False, quiet=False):  # (the hook's own np.errstate, if any, holds for its ops)
        for hook in hooks:
            replaced = hook(tensor)
            if replaced is not None:
                tensor = replaced
    return tensor if create_graph else tensor.data


def run_node_hooks(node: Node, g: Any, create_graph: bool, retain: bool) -> Any:
    """Run a node's hooks; with ``retain`` (backward, never ``ab.grad``) keep ``.grad`` if retained."""
    if node.hooks:
        g = run_hooks(node.hooks, g, create_graph)
    if retain and node.retained is not None:
        tensor = node.retained()
        if tensor is not None:
            kept = g if create_graph else Tensor._wrap(graph.copy_array(g))
            with modes(None, arrays=False):
                tensor.grad = kept if tensor.grad is None else tensor.grad + kept
    return g


def accumulate(leaf: Tensor, g: Tensor) -> None:
    if leaf.grad is None:
        # A graph-free gradient may be shared with other leaves (identity vjps): give each its own.
        leaf.grad = g if g.requires_grad else g.copy()
    else:
        leaf.grad = leaf.grad + g
