"""A griffe extension (loaded by mkdocstrings, see mkdocs.yml): doctest examples become code blocks.

autobp's docstrings end with bare doctests (``>>> ...`` followed by the expected output). Read as
Markdown, their output lines would be prose, and ``[0][0]`` or ``['scale']`` would look like
links. Wrapping each example in a ``pycon`` fence renders it as highlighted code instead.
"""

from __future__ import annotations

from typing import Any

import griffe


def fence_doctests(text: str) -> str:
    """Wrap each run of doctest lines (from ``>>>`` to the next blank line) in a pycon fence."""
    out: list[str] = []
    in_example = False
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(">>>") and not in_example:
            indent = line[: len(line) - len(stripped)]
            out += ["", f"{indent}```pycon"]
            in_example = True
        elif in_example and not stripped:
            out += [f"{indent}```", ""]
            in_example = False
        out.append(line)
    if in_example:
        out.append(f"{indent}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    """Fence the doctests of every docstring griffe reads."""

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
