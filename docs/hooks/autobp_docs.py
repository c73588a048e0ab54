"""MkDocs hooks for the autobp site (registered in mkdocs.yml under ``hooks:``).

- ``on_pre_build`` runs every generator in ``docs/scripts/*.py`` (graph pictures drawn with
  ``autobp.viz``), so the pictures always show what the current code draws.
- ``on_page_markdown`` fills placeholders written as HTML comments:
  ``<!-- autobp:quickstart -->`` (the README's two commands), ``<!-- autobp:op-table -->`` (one row
  per registry entry) and ``<!-- autobp:op-reference -->`` (one entry per public op, written from
  the live functions).
"""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from mkdocs.exceptions import PluginError

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent

# The README's Quick start, in one place: Getting started and the home page show these.
QUICK_START = {
    "Train the seed's network on the bundled MNIST subset, check its gradients against the "
    "hand-written backprop, and write its loss graph and a training plot into `./autobp-demo`": (
        'pip install -e ".[demo]" && autobp demo'
    ),
    "Run the test suite (`HYPOTHESIS_PROFILE=ci` runs the thorough profile CI uses)": (
        'pip install -e ".[test]" && python -m pytest'
    ),
}


def quickstart_markdown() -> str:
    blocks = [f"{title}:\n\n```bash\n{command}\n```" for title, command in QUICK_START.items()]
    return "\n\n".join(blocks)


def on_pre_build(config: Any) -> None:
    for script in sorted((DOCS / "scripts").glob("*.py")):
        result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise PluginError(f"docs generator {script.relative_to(ROOT)} failed:\n{result.stderr[-3000:]}")


def _summary(function: Any) -> str:
    doc = (getattr(function, "__doc__", None) or "").strip()
    line = doc.split("\n\n")[0].replace("\n", " ")
    # A "|" would end the table cell, and an escaped one shows its backslash inside code spans.
    return line.replace("|", "\u2223")


def public_ops() -> list[tuple[str, Any]]:
    """(public name, function) for every public op; aliases (``multiply``) come after their op."""
    import autobp.ops as ops
    from autobp.ops.registry import OpDef

    found = [(name, getattr(ops, name)) for name in ops.__all__]
    return [(name, value) for name, value in found if isinstance(getattr(value, "op", None), OpDef)]


def op_table() -> str:
    from autobp.ops.registry import REGISTRY

    first_name: dict[str, str] = {}
    aliases: dict[str, list[str]] = {}
    for name, function in public_ops():
        opname = function.op.name
        if opname in first_name:
            aliases.setdefault(opname, []).append(name)
        else:
            first_name[opname] = name
    rows = [
        "| op | arity | sample kind | gradient | jvp | summary |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for opname, opdef in sorted(REGISTRY.items()):
        public = first_name.get(opname)
        shown = f"[`{opname}`](#autobp.{public})" if public else f"`{opname}`"
        if aliases.get(opname):
            shown += " (" + ", ".join(f"`{a}`" for a in aliases[opname]) + ")"
        arity = "any" if opdef.arity is None else str(opdef.arity)
        if opdef.composite:
            gradient = "composite"
        elif not opdef.differentiable:
            gradient = "none"
        elif opdef.variadic_rule is not None:
            gradient = "vjp (all inputs)"
        else:
            gradient = "vjp" + (", 2nd order" if opdef.hints.second_order else "")
        jvp = _jvp_kind(opdef)
        rows.append(f"| {shown} | {arity} | `{opdef.hints.shapes}` | {gradient} | {jvp} | {_summary(opdef.declared)} |")
    return "\n".join(rows)


def _jvp_kind(opdef: Any) -> str:
    """The op table's jvp column: how forward mode goes through the op."""
    if opdef.composite:
        return "composite"
    if not opdef.differentiable:
        return "none"
    if opdef.linear:
        return "linear"
    if opdef.elementwise:
        return "elementwise (its vjp rules)"
    if opdef.jvp_rules or opdef.jvp_variadic_rule is not None:
        return "jvp"
    return "**missing**"


FAMILIES = {  # the module of each family, in the reference's order
    "autobp.ops.elementwise.arithmetic": "Elementwise arithmetic",
    "autobp.ops.elementwise.elementary": "Elementary functions",
    "autobp.ops.elementwise.selection": "Selections, comparisons and logic",
    "autobp.ops.activations": "Activations",
    "autobp.ops.reduction": "Reductions",
    "autobp.ops.reduction_extremes": "Extremes",
    "autobp.ops.linalg": "Linear algebra",
    "autobp.ops.shape.broadcasting": "Broadcasting",
    "autobp.ops.shape.reshaping": "Reshaping and transposing",
    "autobp.ops.shape.joining": "Joining and splitting",
    "autobp.ops.shape.padding": "Padding",
    "autobp.ops.indexing": "Indexing",
    "autobp.ops.nn": "Neural-network ops",
}


def docstring_markdown(doc: str) -> str:
    """A docstring as Markdown: ``code`` spans become `code`, doctest examples become pycon blocks."""
    out: list[str] = []
    in_example = False
    for line in doc.splitlines():
        starts_example = line.startswith(">>>")
        if starts_example and not in_example:
            out += ["", "```pycon"]
            in_example = True
        elif in_example and not line.strip():
            out += ["```", ""]
            in_example = False
        out.append(line if in_example else re.sub(r"``(.+?)``", r"`\1`", line))
    if in_example:
        out.append("```")
    return "\n".join(out)


def _signature(name: str, function: Any) -> str:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # pragma: no cover - every op has a Python signature
        return f"autobp.{name}(...)"
    shown = [str(p.replace(annotation=inspect.Parameter.empty)) for p in parameters]
    return f"autobp.{name}({', '.join(shown)}) -> Tensor"


def op_reference() -> str:
    """One entry per public op, grouped by family; aliases (``multiply``) point to their op's entry.

    Written here from the live functions rather than by mkdocstrings: several ops are made by
    factories (comparisons, max/min), which static analysis cannot follow.
    """
    import importlib

    families: dict[str, list[str]] = {}
    for name, function in public_ops():
        module = getattr(inspect.unwrap(function), "__module__", "") or ""
        if function.__name__ != name:
            entry = f"The same function as [`autobp.{function.__name__}`](#autobp.{function.__name__})."
        else:
            doc = docstring_markdown(inspect.getdoc(function) or "")
            entry = f"```python\n{_signature(name, function)}\n```\n\n{doc}"
        families.setdefault(module, []).append(f"### `autobp.{name}` {{ #autobp.{name} }}\n\n{entry}")
    sections = []
    order = list(FAMILIES)
    for module, entries in sorted(families.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99):
        title = FAMILIES.get(module, module)
        summary = (inspect.getdoc(importlib.import_module(module)) or "").split("\n\n")[0] if module else ""
        heading = f"## {title} {{ #{module} }}" if module else f"## {title}"
        sections.append(f"{heading}\n\n{docstring_markdown(summary)}\n\n" + "\n\n".join(entries))
    return "\n\n".join(sections)


PLACEHOLDERS = {
    "<!-- autobp:quickstart -->": quickstart_markdown,
    "<!-- autobp:op-table -->": op_table,
    "<!-- autobp:op-reference -->": op_reference,
}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    for placeholder, render in PLACEHOLDERS.items():
        if placeholder in markdown:
            markdown = markdown.replace(placeholder, render())
    return markdown
