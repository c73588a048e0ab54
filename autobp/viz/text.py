"""The graph as plain text: one line per tensor, in recording order, for terminals and machines without ``dot``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from autobp.tensor import Tensor
from autobp.viz.model import FREED_NOTE, OpView, TensorView, build_view
from autobp.viz.summary import Stats

__all__ = ["graph_text"]


def _stats(label: str, stats: Stats) -> str:
    text = f"{label} {list(stats.shape)}" + (" finite part" if stats.bad and stats.finite else "")
    if stats.empty:  # said in words, as draw_graph says it: no numbers to show is not "0"
        return f"{text} empty"
    if stats.finite == 1 or (stats.finite and stats.low == stats.high):
        text += f" {'all ' if stats.finite > 1 else ''}{stats.low:.3g}"
    elif stats.finite:
        text += f" norm {stats.norm:.3g} min {stats.low:.3g} max {stats.high:.3g}"
    return text + (f"  !! {label} has {stats.bad}" if stats.bad else "")


def _head(t: TensorView, op: OpView | None) -> str:
    if op is None:
        return f"{t.id} {t.name or '(' + t.kind + ')'}"
    args = ", ".join(text for _, text in op.args)
    call = f"{op.name}({args}{', ' + op.kwargs.replace('  ', ', ') if op.kwargs else ''})"
    return f"{t.id}{' ' + t.name if t.name else ''} = {call}"


def graph_text(
    root: Tensor | Sequence[Tensor],
    *,
    show_grads: bool = True,
    show_values: bool = False,
    names: Mapping[str, Tensor] | Iterable[tuple[str, Tensor]] | None = None,
    max_nodes: int = 500,
    collapse: Mapping[str, Tensor] | None = None,
) -> str:
    """The graph behind ``root`` as text: what ``draw_graph`` draws, without needing graphviz.

    One line per tensor in the order the ops were recorded (a leaf just before its first use):
    leaves by name (or kind), op outputs as ``t3 = matmul(t0, t1)``, then dtype and shape, the
    kept gradient's norm/min/max, a block name in brackets for ``collapse``, ``!!`` where a
    value or gradient holds NaN/Inf and ``<-- NaN/Inf first appears here`` at the first op
    producing one. ``…`` stands for an input left out by ``max_nodes``.

    Shapes: any; printed as ``float64[4, 3]``.

    >>> import autobp as ab
    >>> x = ab.tensor([1.0, 2.0], requires_grad=True)
    >>> print(ab.viz.graph_text((x * x).sum() * 0.5, names={"x": x}))
    autobp graph: 3 ops, 4 tensors
    t0 x               float64[2]  param
    t1 = mul(t0, t0)   float64[2]
    t2 = sum(t1)       float64[]
    t3 = mul(t2, 0.5)  float64[]  root
    """
    roots = [root] if isinstance(root, Tensor) else list(root)
    view = build_view(roots, names=names, max_nodes=max_nodes, collapse=collapse, values=show_values, grads=show_grads)
    producer = {op.output: op for op in view.ops}
    ops, tensors = view.total_ops, view.total_tensors
    lines = [f"autobp graph: {ops} op{'s' * (ops != 1)}, {tensors} tensor{'s' * (tensors != 1)}"]
    heads = {t.id: _head(t, producer.get(t.id)) for t in view.tensors.values()}
    width = max(map(len, heads.values()), default=0) + 2
    for t in view.tensors.values():
        op = producer.get(t.id)
        parts = [heads[t.id].ljust(width) + ("?" if t.shape is None else f"{t.dtype}{list(t.shape)}")]
        if t.kind != "output" and (op is None or t.kind == "root"):
            parts.append(t.kind)
        if t.cluster:
            parts.append(f"[{t.cluster}]")
        if t.value is not None and (show_values or t.value.bad):
            parts.append(_stats("value", t.value))
        if t.grad is not None:
            parts.append(_stats("grad", t.grad))
        if t.changed:  # the value shown is newer than what the ops reading it computed with
            parts.append(f"!! {t.changed}")
        if op is not None and op.freed:
            parts.append("(freed)")
        if op is not None and op.first_bad:
            parts.append("<-- NaN/Inf first appears here" + (f" (forward at {op.where})" if op.where else ""))
        lines.append("  ".join(parts))
    if view.freed:
        lines.append(f"note: {FREED_NOTE}")
    if view.omitted_ops or view.omitted_tensors:
        lines.append(f"note: {view.omitted} not shown (max_nodes={max_nodes})")
        if view.first_bad and not view.first_bad_drawn:
            lines.append(f"note: NaN/Inf first appears in op '{view.first_bad}', which is not shown")
    return "\n".join(lines)
