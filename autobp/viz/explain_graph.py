"""The graph picture of an explanation: ``draw_graph``'s SVG, tagged so a page can highlight each step's node.

Graphviz names every SVG group by its node id (``<title>op3</title>``); the ids come from
``autobp.viz.model.build_view``, and each tensor's box carries its label (every drawn tensor is
named), so a label finds its id and a step finds the op that produced its output.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from autobp.viz.model import build_view

if TYPE_CHECKING:
    from autobp.viz.explain_model import Explanation

__all__ = ["graph_ids", "graph_svg"]


def graph_ids(explanation: Explanation) -> dict[str, str]:
    """Tensor label -> the id of its box in the picture (``t3``); the op that made it is ``op3``."""
    view = build_view([explanation.root], names=explanation.labels, values=False, grads=False)
    return {t.name: t.id for t in view.tensors.values() if t.name is not None}


def graph_svg(explanation: Explanation) -> str | None:
    """The picture as inline SVG with ``data-vertex`` on nodes and ``data-head`` on edges; None without Graphviz."""
    try:
        import graphviz
    except ImportError:
        return None
    from autobp.viz.dot import draw_graph

    dot = draw_graph(explanation.root, names=explanation.labels, rankdir="TB", show_grads=False, legend=False)
    try:
        svg = dot.pipe(format="svg").decode("utf-8")
    except graphviz.ExecutableNotFound:
        return None
    svg = svg[svg.index("<svg") :]
    # Scale to the column's width: keep the viewBox, drop the fixed size in points.
    svg = re.sub(r'<svg width="[^"]*" height="[^"]*"', '<svg role="img" aria-label="the graph"', svg, count=1)
    svg = re.sub(
        r'<g id="(node\d+)" class="node">\s*<title>([^<]*)</title>', r'<g id="\1" class="node" data-vertex="\2">', svg
    )
    return re.sub(
        r'<g id="(edge\d+)" class="edge">\s*<title>([^<&]*)&#45;&gt;([^<]*)</title>',
        r'<g id="\1" class="edge" data-tail="\2" data-head="\3">',
        svg,
    )
