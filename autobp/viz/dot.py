"""Graphviz pictures of a graph: tensor boxes, op nodes, colours for NaN/Inf, clusters and a legend."""

from __future__ import annotations

import html
import textwrap
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autobp.tensor import Tensor
from autobp.viz.fold import fold_label, folded_blocks
from autobp.viz.model import FREED_NOTE, GraphView, OpView, TensorView, build_view
from autobp.viz.summary import Stats

__all__ = ["draw_graph", "save_graph"]

FONT = "Helvetica,Arial,DejaVu Sans,sans-serif"
# kind -> (fill, border, legend text). Colour is never the only signal: labels say the same in words.
STYLES = {
    "param": ("#dbeafe", "#1d4ed8", "leaf that requires grad (parameter)"),
    "const": ("#e2e8f0", "#64748b", "leaf without grad (input, constant)"),
    "output": ("#ffffff", "#475569", "op output"),
    "root": ("#dcfce7", "#15803d", "root (the tensor drawn from)"),
    "op": ("#fef3c7", "#b45309", "op (registry name)"),
    "block": ("#f8fafc", "#64748b", "folded block: its ops and parameters"),
    "bad": ("#fee2e2", "#dc2626", "value or grad holds NaN/Inf"),
    "first_bad": ("#dc2626", "#7f1d1d", "first op producing NaN/Inf"),
    "freed": ("#ffffff", "#94a3b8", "freed by backward (dashed)"),
    "changed": ("#ffffff", "#b45309", "changed in place since an op read it: the value shown is newer"),
    "note": ("#fffbeb", "#a16207", "note: what the picture leaves out"),
}


def _num(x: float) -> str:
    return f"{x:.3g}"


def _describe(shape: tuple[int, ...] | None, dtype: str | None) -> str:
    return "?" if shape is None else f"{dtype}{list(shape)}"


def _stats_rows(label: str, stats: Stats, show_shapes: bool) -> list[str]:
    head = f"{label} {list(stats.shape)}" if show_shapes and stats.shape != () else label
    if stats.empty:  # no elements: the zeros Stats holds for min and max are no values of the array
        return [f"{head}  empty"]
    if not stats.finite:  # nothing summarized (all NaN/Inf, or complex values): no "all 0"
        return [head]
    if stats.bad:  # the NaN/Inf row follows; summarize what is still finite
        head = f"{head}  finite part:"
    if stats.shape == () or stats.finite == 1:
        return [f"{head}  {_num(stats.low)}"]
    if stats.low == stats.high:
        return [f"{head}  all {_num(stats.low)}"]
    return [f"{head}  norm {_num(stats.norm)}", f"min {_num(stats.low)}  max {_num(stats.high)}"]


def _tensor_label(t: TensorView, show_shapes: bool, show_values: bool) -> str:
    fill, border, _ = STYLES[t.kind]
    bad = bool((t.value and t.value.bad) or (t.grad and t.grad.bad))
    if bad:
        fill, border, _ = STYLES["bad"]
    elif t.changed:  # the border says it too, for the legend's entry
        border = STYLES["changed"][1]
    rows = []
    if t.name:
        rows.append(f"<B>{html.escape(t.name)}</B>")
    rows.append(html.escape(_describe(t.shape, t.dtype) if show_shapes else str(t.dtype)))
    if t.value is not None and show_values:
        rows.extend(html.escape(r) for r in _stats_rows("value", t.value, False))
    if t.grad is not None:
        rows.extend(f'<FONT COLOR="#1e3a8a">{html.escape(r)}</FONT>' for r in _stats_rows("grad", t.grad, show_shapes))
    for what, stats in (("value", t.value), ("grad", t.grad)):
        if stats is not None and stats.bad:
            rows.append(f'<FONT COLOR="#b91c1c"><B>{what} has {html.escape(stats.bad)}</B></FONT>')
    if t.changed:  # the value shown is newer than what the ops reading it computed with
        rows.append(f'<FONT COLOR="#b45309"><B>{html.escape(t.changed)}</B></FONT>')
    cells = "".join(f"<TR><TD>{row}</TD></TR>" for row in rows)
    table = (
        f'<TABLE BORDER="1" STYLE="rounded" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3" '
        f'BGCOLOR="{fill}" COLOR="{border}">{cells}</TABLE>'
    )
    return f"<{table}>"


def _op_attrs(op: OpView) -> dict[str, str]:
    fill, border, _ = STYLES["first_bad" if op.first_bad else "op"]
    lines = [f"<B>{html.escape(op.name)}</B>"]
    detail = op.kwargs
    if any(kind == "const" for kind, _ in op.args):
        shown = ", ".join(text if kind == "const" else "·" for kind, text in op.args)
        detail = f"({shown})  {detail}".strip()
    if detail:
        lines.append(f'<FONT POINT-SIZE="9">{html.escape(detail)}</FONT>')
    if op.first_bad:
        lines.append("<B>first NaN/Inf</B>")
        if op.where:
            lines.append(f'<FONT POINT-SIZE="9">at {html.escape(op.where)}</FONT>')
    if op.freed:
        lines.append('<FONT POINT-SIZE="9">freed</FONT>')
    attrs = {"label": "<" + "<BR/>".join(lines) + ">", "fillcolor": fill, "color": border}
    if op.first_bad:
        attrs.update(fontcolor="white", penwidth="2.5")
    if op.freed:
        attrs.update(style="rounded,dashed", fillcolor="white", color=STYLES["freed"][1])
    return attrs


def _legend(graph: Any, view: GraphView, folded: bool) -> None:
    kinds = {t.kind for t in view.tensors.values()} | ({"op"} if view.ops else set()) | ({"block"} if folded else set())
    if any((t.value and t.value.bad) or (t.grad and t.grad.bad) for t in view.tensors.values()):
        kinds.add("bad")
    if view.first_bad_drawn:
        kinds.add("first_bad")
    if view.freed:
        kinds.add("freed")
    if any(t.changed for t in view.tensors.values()):
        kinds.add("changed")
    rows = "".join(
        f'<TR><TD BGCOLOR="{fill}" COLOR="{border}" BORDER="1" WIDTH="18"> </TD>'
        f'<TD ALIGN="LEFT">{html.escape(text)}</TD></TR>'
        for kind, (fill, border, text) in STYLES.items()
        if kind in kinds
    )
    with graph.subgraph(name="cluster_legend") as box:
        box.attr(label="legend", style="rounded", color="#cbd5e1", fontsize="10")
        box.node("legend", label=f'<<TABLE BORDER="0" CELLSPACING="3" CELLPADDING="1">{rows}</TABLE>>', shape="none")


def _notes(view: GraphView, max_nodes: int) -> list[tuple[str, str, list[str]]]:
    """(node id, text, ops it points to) for what the picture cannot show."""
    notes = []
    if view.freed:
        notes.append(("note_freed", FREED_NOTE, [op.id for op in view.ops if op.freed]))
    if view.omitted_ops or view.omitted_tensors:
        text = (
            f"{view.omitted} not drawn: "
            f"the graph has {view.total_ops + view.total_tensors:,} nodes, max_nodes={max_nodes}"
        )
        if view.first_bad and not view.first_bad_drawn:
            text += f". NaN/Inf first appears in op '{view.first_bad}', which is not drawn"
        notes.append(("note_omitted", text, view.cut))
    return notes


def draw_graph(
    root: Tensor | Sequence[Tensor],
    *,
    show_shapes: bool = True,
    show_grads: bool = True,
    show_values: bool = False,
    names: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    rankdir: str = "LR",
    max_nodes: int = 500,
    collapse: Mapping[str, Tensor] | None = None,
    fold: bool | Collection[str] = False,
    legend: bool = True,
) -> Any:
    """Draw the graph that computed ``root`` as a ``graphviz.Digraph`` (inline in Jupyter).

    Every leaf and every op output is a tensor box: name, dtype and shape, and the gradient's
    shape, norm, min and max where one is kept (leaves' ``.grad``; non-leaves after
    ``retain_grad()``). Every op is an ellipse named by the registry, with its scalar constants
    and keyword arguments. Boxes whose value or gradient holds NaN/Inf turn red and say so; the
    first op to run (in recording order) producing one is filled red.

    Args:
        root: the tensor (or list of tensors) whose graph is drawn.
        show_shapes: print shapes (dtype only otherwise).
        show_grads: print kept gradients.
        show_values: print value summaries (norm, min, max; the value of scalars).
        names: name -> Tensor (or pairs, e.g. ``model.named_parameters()``); overrides ``.name``.
        rankdir: graphviz direction, ``"LR"`` (left to right) or ``"TB"`` (top to bottom).
        max_nodes: the most tensor boxes plus op ellipses; larger graphs keep the part nearest
            the root and say what they left out.
        collapse: block name -> the Tensor the block returns; each block's ops (those computing
            its output since the earlier blocks) and its own parameters are drawn in a box.
        fold: True, or names of ``collapse`` blocks, to draw as one box listing ops, parameters
            and outputs.
        legend: add a small box explaining the colours in use.

    Shapes: any; labels print them as ``float64[4, 3]``.

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0], requires_grad=True)
    >>> loss = (x * x).sum()
    >>> dot = ab.viz.draw_graph(loss, names={"x": x})
    >>> "mul" in dot.source and "float64[2]" in dot.source
    True
    """
    try:
        import graphviz
    except ImportError as error:
        raise ImportError(
            'draw_graph needs the graphviz package: pip install "autobp[viz]" (and the Graphviz "dot" '
            "program to render, e.g. apt install graphviz). ab.viz.graph_text(root) needs neither."
        ) from error

    roots = [root] if isinstance(root, Tensor) else list(root)
    view = build_view(roots, names=names, max_nodes=max_nodes, collapse=collapse, values=show_values, grads=show_grads)
    graph = graphviz.Digraph("autobp", graph_attr={"rankdir": rankdir, "fontname": FONT, "fontsize": "10"})
    graph.attr(nodesep="0.2", ranksep="0.3", bgcolor="white")
    graph.attr("node", fontname=FONT, fontsize="10", margin="0.05,0.03")
    graph.attr("edge", color="#475569", arrowsize="0.6")

    clusters: dict[str | None, list[tuple[str, dict[str, str]]]] = {}
    producer = {op.output: op for op in view.ops}
    for t in view.tensors.values():  # recording order, each op just before its output
        op = producer.get(t.id)
        if op is not None:
            attrs = {"shape": "ellipse", "style": "filled", **_op_attrs(op)}
            clusters.setdefault(op.cluster, []).append((op.id, attrs))
        label = _tensor_label(t, show_shapes, show_values)
        clusters.setdefault(t.cluster, []).append(
            (t.id, {"label": label, "shape": "none", "margin": "0", "width": "0", "height": "0"})
        )
    folded = folded_blocks(fold, collapse)
    representative: dict[str, str] = {}  # node id -> the folded block's node that stands for it
    for number, (name, members) in enumerate(clusters.items()):
        if name in folded:
            label, attrs = fold_label(name, view, *STYLES["block"][:2], STYLES["bad"][:2])
            graph.node(f"block{number}", label=label, **attrs)
            representative.update((node_id, f"block{number}") for node_id, _ in members)
            continue
        if name is None:
            for node_id, attrs in members:
                graph.node(node_id, **attrs)
            continue
        with graph.subgraph(name=f"cluster_{number}") as box:
            box.attr(
                label=graphviz.nohtml(name), style="rounded,filled", fillcolor="#f8fafc", color="#94a3b8", fontsize="11"
            )
            for node_id, attrs in members:
                box.node(node_id, **attrs)
    edges = [(tensor_id, op.id) for op in view.ops for kind, tensor_id in op.args if kind == "tensor"]
    edges += [(op.id, op.output) for op in view.ops]
    if representative:  # edges inside a folded block vanish; parallel ones into or out of it merge
        edges = [(representative.get(a, a), representative.get(b, b)) for a, b in edges]
        edges = [(a, b) for a, b in dict.fromkeys(edges) if a != b]
    for tail, head in edges:
        graph.edge(tail, head)
    for node_id, text, targets in _notes(view, max_nodes):
        fill, border, _ = STYLES["note"]
        graph.node(
            node_id,
            label=graphviz.nohtml("\\l".join(textwrap.wrap(text, 60, break_on_hyphens=False)) + "\\l"),
            shape="note",
            style="filled",
            fillcolor=fill,
            color=border,
            fontsize="9",
        )
        for target in dict.fromkeys(representative.get(t, t) for t in targets):
            graph.edge(node_id, target, style="dashed", color=border)
    if legend:
        _legend(graph, view, folded=bool(representative))
    return graph


def save_graph(graph: Any, path: str | Path, formats: Sequence[str] = ("svg",)) -> list[Path]:
    """Write ``graph`` as ``path.<format>`` for each format; return the written paths.

    Without the Graphviz ``dot`` program, writes the source ``path.dot`` instead (render it
    later with ``dot -Tsvg path.dot -o path.svg``), so scripts keep working on bare machines.
    """
    import graphviz

    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    written = []
    try:
        for fmt in formats:
            target = base.with_name(f"{base.name}.{fmt}")
            target.write_bytes(graph.pipe(format=fmt))
            written.append(target)
    except graphviz.ExecutableNotFound:
        target = base.with_name(f"{base.name}.dot")
        target.write_text(graph.source, encoding="utf-8")
        written.append(target)
    return written
