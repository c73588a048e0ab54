"""The HTML forms of an explanation: a self-contained offline page, and a fragment for Jupyter.

The page (``write_page``) inlines everything it uses: the KaTeX copy shipped in
``autobp/viz/katex`` (fonts as data URIs), its own style and script (``explain_page.css`` and
``explain_page.js``), and the graph as SVG. It makes no network request. Its script typesets the
formulas, highlights each step's node as the step scrolls into view, and writes any script error
into ``#page-errors`` (a headless browser's test reads it). Arrays carry their exact values in
``data-values``, so a test can compare the rendered page with ``autobp.reference``.
"""

from __future__ import annotations

import base64
import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autobp.viz.explain_graph import graph_ids, graph_svg
from autobp.viz.explain_text import SHOWN_ELEMENTS, array_text, engine_text, hooks_text
from autobp.viz.summary import number_text

if TYPE_CHECKING:
    from autobp.viz.explain_model import Check, Explanation, Step

__all__ = ["explanation_fragment", "page_html", "write_page"]

EXACT_VALUES = 2000  # arrays up to this size keep their exact values in the page (data-values)


def _asset(name: str) -> str:
    return (resources.files("autobp.viz") / name).read_text(encoding="utf-8")


def _katex_css() -> str:
    """KaTeX's stylesheet with its woff2 fonts inlined and the other formats' URLs dropped (never fetched)."""
    fonts = resources.files("autobp.viz") / "katex" / "fonts"

    def inline(match: re.Match[str]) -> str:
        data = base64.b64encode((fonts / match.group(1)).read_bytes()).decode("ascii")
        return f'url(data:font/woff2;base64,{data}) format("woff2")'

    css = _asset("katex/katex.min.css")
    css = re.sub(r',url\(fonts/[^)]+\.(?:woff|ttf)\) format\("(?:woff|truetype)"\)', "", css)
    return re.sub(r'url\(fonts/([^)]+\.woff2)\) format\("woff2"\)', inline, css)


def _json_values(array: np.ndarray) -> Any:
    """The values as JSON allows them: NaN and the infinities are no JSON numbers, so they become
    the strings "NaN", "Infinity" and "-Infinity" (which Python's float() reads back)."""
    if np.isfinite(array).all():
        return array.tolist()
    return _spelled(array.tolist())


def _spelled(values: Any) -> Any:
    if isinstance(values, list):
        return [_spelled(v) for v in values]
    if values != values:
        return "NaN"
    if values in (float("inf"), float("-inf")):
        return "Infinity" if values > 0 else "-Infinity"
    return values


def _array_html(value: Any) -> str:
    if isinstance(value, tuple):
        return f"<code>{html.escape(str(value))}</code>"
    array = np.asarray(value, dtype=np.float64)
    exact = f" data-values='{json.dumps(_json_values(array))}'" if array.size <= EXACT_VALUES else ""
    attrs = f'class="array" data-shape="{list(array.shape)}"{exact}'
    if array.size == 0:  # no numbers to show (and no rows to reshape into)
        return f"<span {attrs}>empty <small>{array.shape}</small></span>"
    if array.size == 1:
        return f"<span {attrs}>{number_text(float(array.reshape(())))}</span>"
    if array.size > SHOWN_ELEMENTS:
        return f"<span {attrs}><code>{html.escape(array_text(array))}</code></span>"
    column = array.ndim == 2 and array.shape[1] == 1
    if column or array.ndim <= 1:  # a vector reads as rows of eight numbers, to fit the column
        numbers = [number_text(v) for v in array.ravel()]
        rows = [numbers[i : i + 8] for i in range(0, len(numbers), 8)]
    else:
        rows = [[number_text(v) for v in row] for row in array.reshape(array.shape[0], -1)]
    body = "".join("<tr>" + "".join(f"<td>{v}</td>" for v in row) + "</tr>" for row in rows)
    note = "<sup>T</sup>" if column else ""
    return f'<span {attrs}><table class="grid">{body}</table>{note}<small>{array.shape}</small></span>'


def _math(latex: str, text: str) -> str:
    """A formula typeset by the page's script; its plain text shows where scripts do not run."""
    return f'<span class="math" data-tex="{html.escape(latex)}">{html.escape(text)}</span>'


def _check_html(check: Check) -> str:
    verdict = "equal" if check.ok else "MISMATCH"
    return (
        f'<div class="check {"ok" if check.ok else "bad"}" data-equation="{check.equation}" '
        f'data-what="{html.escape(check.what)}" data-max-diff="{check.max_diff!r}">'
        f'<span class="eq">{check.equation}</span> {html.escape(check.what)} against '
        f"<code>{html.escape(check.source)}</code>: max |diff| = {check.max_diff:.3g} "
        f"(tolerance {check.tolerance:.2g}) <b>{verdict}</b>"
        f'<div class="shown">reference: {_array_html(check.reference)}</div></div>'
    )


def _arriving(step: Step) -> str:
    # A hooked gradient is what the engine passed, not dC/d of the cost: say which.
    output = html.escape(step.output)
    if step.hooked == "hook":
        return f"arriving at {output}, changed by its hook"
    if step.hooked == "below":
        return f"arriving at {output}, from a hooked gradient"
    return f"dC/d {output} arriving"


def _leaf_head(label: str, explanation: Explanation) -> str:
    if label in explanation.hooked_leaves:
        return f"grad of {html.escape(label)} (from a hooked gradient)"
    return f"dC/d {html.escape(label)}"


def _step_html(step: Step, total: int, ids: dict[str, str], math: bool) -> str:
    output_id = ids.get(step.output, "")
    inputs = " ".join(ids[f.label] for f in step.flows if f.gradient is not None and f.label in ids)
    parts = [
        f'<article class="step" id="step-{step.number}" data-op="op{output_id[1:]}" data-out="{output_id}" '
        f'data-in="{inputs}"><h2><span class="number">{step.number}/{total}</span> '
        f"<code>{html.escape(step.op)}</code>"
        + (f" <small>{html.escape(step.kwargs)}</small>" if step.kwargs else "")
        + f" &rarr; <b>{html.escape(step.output)}</b></h2>"
    ]
    for note in step.notes:
        formula = _math(note.latex, note.text) + (f" <i>{html.escape(note.gloss)}</i>" if note.gloss else "")
        formula = formula if math else html.escape(note.text)
        parts.append(f'<p class="note"><span class="eq">{note.equation}</span> {formula}</p>')
    rows = []
    for index, flow in enumerate(step.flows):
        # The rule's own name for the input: x and y for one or two inputs.
        param = "xy"[index] if len(step.flows) <= 2 else f"input {index}"
        target = f"<b>{html.escape(flow.label)}</b> <small>({param})</small>"
        if flow.gradient is None:
            rows.append(f'<div class="flow none">{target} needs no gradient</div>')
            continue
        text = f"<code>{html.escape(flow.formula.text)}</code>"
        formula = _math(flow.formula.latex, flow.formula.text) if math else text
        rows.append(
            f'<div class="flow" data-to="{html.escape(flow.label)}"><div>to {target}: {formula}</div>'
            f'<div class="shown">{_array_html(flow.gradient)}</div></div>'
        )
    saved = "".join(f'<div class="saved"><b>{html.escape(name)}</b> {_array_html(v)}</div>' for name, v in step.saved)
    parts.append(
        f'<div class="incoming"><h3>grad</h3> {_arriving(step)}: '
        f"{_array_html(step.incoming)}</div>" + (f"<div><h3>saved</h3> the rule reads{saved}</div>" if saved else "")
    )
    parts.append(f'<div class="rules"><h3>vjp rules</h3> what the op sends to each input{"".join(rows)}</div>')
    if step.checks:
        checks = "".join(_check_html(c) for c in step.checks)
        parts.append(f'<div class="checks"><h3>against autobp.reference</h3>{checks}</div>')
    parts.append("</article>")
    return "\n".join(parts)


def _summary_html(explanation: Explanation) -> str:
    checks = explanation.checks
    lines = [
        f"cost <b>C = {number_text(explanation.loss)}</b>; {len(explanation.steps)} steps in the order autobp's engine "
        "ran them. <code>grad</code> is the gradient arriving at a node's output; each rule is the op's vjp "
        "from the registry, applied to the values the forward pass saved.",
        # The same claim as the text form's (engine_text), with the number tagged for tests.
        html.escape(engine_text(explanation)).replace(
            f"max |diff| = {explanation.engine_max_diff:.3g}",
            f'max |diff| = <span id="engine-diff">{explanation.engine_max_diff:.3g}</span>',
        )
        + ".",
    ]
    if explanation.hooks:
        lines.append(html.escape(hooks_text(explanation)))
    if checks:
        bad = sum(not c.ok for c in checks)
        worst = max(c.max_diff for c in checks)
        verdict = "all equal" if not bad else f"{bad} MISMATCH"
        lines.append(
            f"BP1-BP4 against <code>autobp.reference</code>: {len(checks)} checks, "
            f'<b id="checks-verdict">{verdict}</b> (max |diff| {worst:.3g}).'
        )
    return "".join(f"<p>{line}</p>" for line in lines)


def _end_html(explanation: Explanation) -> str:
    leaves = "".join(
        f"<tr><th>{_leaf_head(label, explanation)}</th><td>{_array_html(g)}</td></tr>"
        for label, g in explanation.leaves
    )
    parts = [f'<section class="end"><h2>Gradients of the leaves</h2><table class="values">{leaves}</table>']
    d = explanation.descent
    if d is not None:
        parts.append(
            f"<h2>One gradient-descent step</h2><p>eta = {d.eta:g}, over {d.examples} example(s): "
            r'<span class="math" data-tex="w \leftarrow w - \tfrac{\eta}{m}\,\partial C/\partial w,\quad '
            r'b \leftarrow b - \tfrac{\eta}{m}\,\partial C/\partial b">w &lt;- w - (eta/m) dC/dw, same for b</span>'
            f', with the gradients above.</p><table class="values" id="descent">'
            f'<tr><th>cost before</th><td data-cost="before">{d.cost_before:.6g}</td></tr>'
            f'<tr><th>cost after</th><td data-cost="after">{d.cost_after:.6g}</td></tr>'
            f"<tr><th>reference</th><td>autobp.reference.update_mini_batch: cost after "
            f"{d.reference_cost_after:.6g}, parameters max |diff| {d.max_parameter_diff:.3g}</td></tr></table>"
        )
    parts.append("</section>")
    return "".join(parts)


def page_html(explanation: Explanation) -> str:
    """The whole page as one string (see the module docstring)."""
    ids = graph_ids(explanation)
    svg = graph_svg(explanation) or "<p>Install Graphviz (the <code>dot</code> program) to see the graph here.</p>"
    steps = "\n".join(_step_html(s, len(explanation.steps), ids, math=True) for s in explanation.steps)
    title = f"autobp explain: {explanation.title}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_katex_css()}</style>
<style>{_asset("explain_page.css")}</style>
<script>{_asset("explain_errors.js")}</script>
</head><body class="autobp-explain" data-status="loading">
<main><aside class="graph">{svg}</aside>
<section class="steps"><header><h1>The backward pass, step by step</h1>
<p class="title">{html.escape(explanation.title)}</p>
{_summary_html(explanation)}<pre id="page-errors"></pre></header>
{steps}
{_end_html(explanation)}</section></main>
<script>{_asset("katex/katex.min.js")}</script>
<script>{_asset("explain_page.js")}</script>
</body></html>
"""


def write_page(explanation: Explanation, directory: Path) -> Path:
    """Write ``directory/index.html``; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "index.html"
    path.write_text(page_html(explanation), encoding="utf-8")
    return path


def explanation_fragment(explanation: Explanation) -> str:
    """The steps for a Jupyter cell: the graph beside the steps, formulas as plain text (no script runs)."""
    ids = graph_ids(explanation)
    svg = graph_svg(explanation) or ""
    steps = "\n".join(_step_html(s, len(explanation.steps), ids, math=False) for s in explanation.steps)
    style = f"<style>{_asset('explain_page.css')}</style>"
    return (
        f'<div class="autobp-explain">{style}<h3>The backward pass of {html.escape(explanation.title)}</h3>'
        f'{_summary_html(explanation)}<main><aside class="graph">{svg}</aside><section class="steps">{steps}'
        f"{_end_html(explanation)}</section></main></div>"
    )
