"""Getting started, read out of order: each code block runs on its own, and the extras table is pyproject's."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "getting-started.md"
# A fenced block and, when one follows, its ```text title="Output"``` block.
BLOCK = re.compile(
    r"^```python\n(?P<code>.*?)^```\n(?:\n```text title=\"Output\"\n(?P<output>.*?)^```\n)?", re.M | re.S
)


def blocks() -> list[tuple[int, str, str | None]]:
    text = PAGE.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m["code"], m["output"]) for m in BLOCK.finditer(text)]


def test_the_page_has_the_blocks_this_test_runs() -> None:
    assert len(blocks()) == PAGE.read_text(encoding="utf-8").count("```python") >= 5


@pytest.mark.parametrize(("line", "code", "output"), [pytest.param(*b, id=f"line {b[0]}") for b in blocks()])
def test_each_block_runs_alone(
    line: int, code: str, output: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader who copies one block into a fresh interpreter gets no NameError and the output shown."""
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"{PAGE.name}:{line}", "exec"), {"__name__": "standalone_block"})
    if output is not None:
        assert printed.getvalue().strip() == output.strip()


def optional_dependencies() -> dict[str, list[str]]:
    """pyproject's ``[project.optional-dependencies]``, one ``name = [...]`` line each (tomllib needs 3.11)."""
    section = (ROOT / "pyproject.toml").read_text().split("[project.optional-dependencies]\n", 1)[1].split("\n[", 1)[0]
    extras = {}
    for line in section.splitlines():
        if "=" in line:
            name, value = line.split("=", 1)
            extras[name.strip()] = ast.literal_eval(value[: value.rindex("]") + 1])  # a comment may follow
    return extras


def test_the_extras_table_lists_what_pyproject_installs() -> None:
    extras = optional_dependencies()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", PAGE.read_text(encoding="utf-8"), re.M))
    assert sorted(rows) == sorted(extras)
    shown_as = {"torch": "PyTorch", "mygrad": "MyGrad"}
    for extra, requirements in extras.items():
        for requirement in requirements:
            name = re.match(r"[\w-]+", requirement).group(0)  # type: ignore[union-attr]
            if name == "autobp":  # another extra, e.g. autobp[demo,docs]: each is named in the row
                inner = re.search(r"\[(.*)\]", requirement).group(1)  # type: ignore[union-attr]
                assert all(part.strip() in rows[extra] for part in inner.split(",")), (extra, requirement)
            else:
                assert shown_as.get(name, name) in rows[extra], (extra, requirement)
