"""Pictures of gradient graphs: shapes, gradients, and where NaN/Inf begins.

``draw_graph(root)`` returns a ``graphviz.Digraph`` (it displays inline in Jupyter; ``.render``
or ``save_graph`` write SVG/PNG); ``graph_text(root)`` prints the same graph without graphviz;
``module_blocks(model)`` records a model's sub-module outputs, to draw each as a box;
``explain(loss)`` walks the backward pass step by step (``autobp explain`` on the command line).
"""

from __future__ import annotations

from autobp.viz.dot import draw_graph, save_graph
from autobp.viz.explainer import explain
from autobp.viz.groups import module_blocks
from autobp.viz.text import graph_text

__all__ = ["draw_graph", "explain", "graph_text", "module_blocks", "save_graph"]
