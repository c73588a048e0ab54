"""Folded blocks: a whole ``collapse`` block drawn as one box that summarizes its ops and parameters."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Collection, Mapping

from autobp.viz.model import GraphView

__all__ = ["fold_label", "folded_blocks"]


def folded_blocks(fold: bool | Collection[str], collapse: Mapping[str, object] | None) -> set[str]:
    """The names of the blocks to fold: all of ``collapse`` for True, else the named ones (checked)."""
    blocks = set(collapse or ())
    if fold is True:
        return blocks
    if fold is False:
        return set()
    if isinstance(fold, str):
        fold = [fold]
    unknown = sorted(set(fold) - blocks)
    if unknown:
        raise ValueError(f"draw_graph: fold names blocks {unknown} that are not in collapse ({sorted(blocks)})")
    return set(fold)


def _num(x: float) -> str:
    return f"{x:.3g}"


def fold_label(name: str, view: GraphView, fill: str, border: str, bad: tuple[str, str]) -> tuple[str, dict[str, str]]:
    """The HTML label and node attributes of block ``name``: op counts, parameters, outputs, NaN/Inf."""
    tensors = [t for t in view.tensors.values() if t.cluster == name]
    ops = [op for op in view.ops if op.cluster == name]
    used_outside = {arg for op in view.ops if op.cluster != name for kind, arg in op.args if kind == "tensor"}
    outputs = [t for t in tensors if t.id in used_outside or t.kind == "root"]
    counts = Counter(op.name for op in ops)
    rows = [f"<B>{html.escape(name)}</B>"]
    rows.append(html.escape(f"{len(ops)} ops: " + ", ".join(f"{n} {op}" if n > 1 else op for op, n in counts.items())))
    for t in (t for t in tensors if t.kind == "param"):
        row = html.escape(f"{t.name or 'param'} {t.dtype}{list(t.shape or ())}")
        if t.grad is not None:
            row += f'  <FONT COLOR="#1e3a8a">grad norm {_num(t.grad.norm)}</FONT>'
        rows.append(row)
    rows.extend(html.escape(f"out {t.dtype}{list(t.shape or ())}") for t in outputs)
    broken = [t for t in tensors if (t.value and t.value.bad) or (t.grad and t.grad.bad)]
    first = [op for op in ops if op.first_bad]
    if broken:
        fill, border = bad
        rows.append(f'<FONT COLOR="#b91c1c"><B>NaN/Inf in {len(broken)} of {len(tensors)} tensors</B></FONT>')
    if first:
        where = f" at {first[0].where}" if first[0].where else ""
        rows.append(f'<FONT COLOR="#b91c1c"><B>first NaN/Inf: op {html.escape(first[0].name + where)}</B></FONT>')
    cells = "".join(f"<TR><TD>{row}</TD></TR>" for row in rows)
    table = (
        f'<TABLE BORDER="2" STYLE="rounded" CELLBORDER="0" CELLSPACING="0" CELLPADDING="3" '
        f'BGCOLOR="{fill}" COLOR="{border}">{cells}</TABLE>'
    )
    return f"<{table}>", {"shape": "none", "margin": "0", "width": "0", "height": "0"}
