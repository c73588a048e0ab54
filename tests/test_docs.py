"""The documentation stays true: it builds strictly, its code runs, and it documents every public name.

Conventions the pages follow (see CONTRIBUTING.md):

- Every ```` ```python ```` block of a page runs, in page order, in one namespace per page, inside a
  temporary directory. A block preceded by the line ``<!-- docs-test: skip -->`` is not run; use it
  only for code that needs what a test cannot have (the full MNIST download, a long training run).
- A python block written as a doctest (``>>>`` prompts followed by the expected output) runs as a
  doctest in the page's namespace.
- A ```` ```text title="Output" ```` block right after a python block is what that block prints;
  the test compares them, so printed results shown in the docs are real.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import importlib.util
import inspect
import io
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SKIP_MARKER = "<!-- docs-test: skip -->"
OUTPUT_INFO = 'text title="Output"'
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<info>[^`]*)$")

# Modules whose public names (``__all__``) the API reference must document, when they exist.
PUBLIC_MODULES = [
    "autobp",
    "autobp.ops",
    "autobp.ops.registry",
    "autobp.tensor",
    "autobp.graph",
    "autobp.nn",
    "autobp.nn.functional",
    "autobp.nn.init",
    "autobp.optim",
    "autobp.functional",
    "autobp.forward_ad",
    "autobp.hooks",
    "autobp.anomaly",
    "autobp.testing",
    "autobp.testing.strategies",
    "autobp.testing.samples",
    "autobp.viz",
    "autobp.datasets",
    "autobp.models",
    "autobp.reference",
    "autobp.io",
]


SCALARS = (int, float, str, bytes, tuple, type(None))


@dataclass
class Block:
    """A fenced code block: its info string, first line number, code, and whether it opted out."""

    info: str
    line: int
    code: str
    skip: bool


def fenced_blocks(text: str) -> list[Block]:
    """The fenced blocks of a Markdown page, dedented (blocks inside admonitions are indented)."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match or not match["info"].strip():
            index += 1
            continue
        indent, start = match["indent"], index
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].rstrip() != f"{indent}```":
            body.append(lines[index][len(indent) :])
            index += 1
        previous = [line.strip() for line in lines[:start] if line.strip()]
        skip = bool(previous) and previous[-1] == SKIP_MARKER
        blocks.append(Block(match["info"].strip(), start + 1, "\n".join(body) + "\n", skip))
        index += 1
    return blocks


def test_fenced_blocks_parser() -> None:
    page = "text\n\n```python\nx = 1\n```\n\n<!-- docs-test: skip -->\n```python\nboom\n```\n"
    page += '```text title="Output"\n1\n```\n!!! note\n    ```python\n    y = 2\n    ```\n'
    blocks = fenced_blocks(page)
    assert [(b.info, b.line, b.code, b.skip) for b in blocks] == [
        ("python", 3, "x = 1\n", False),
        ("python", 8, "boom\n", True),
        (OUTPUT_INFO, 11, "1\n", False),
        ("python", 15, "y = 2\n", False),
    ]


def pages_with_code() -> list[Path]:
    return [p for p in sorted(DOCS.rglob("*.md")) if any(b.info == "python" for b in fenced_blocks(p.read_text()))]


def run_page(page: Path) -> int:
    """Run a page's python blocks in order in one namespace; check the outputs it shows. Returns blocks run."""
    namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
    blocks = fenced_blocks(page.read_text(encoding="utf-8"))
    ran = 0
    for block, following in zip(blocks, [*blocks[1:], None], strict=True):
        if block.info != "python" or block.skip:
            continue
        where = f"{page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}:{block.line}"
        if block.code.lstrip().startswith(">>>"):
            run_doctest(block.code, namespace, where, block.line)
            ran += 1
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(block.code, where, "exec"), namespace)
        ran += 1
        if following is not None and following.info == OUTPUT_INFO:
            shown = [line.rstrip() for line in following.code.strip("\n").splitlines()]
            actual = [line.rstrip() for line in printed.getvalue().strip("\n").splitlines()]
            assert actual == shown, (
                f"{where}: the block printed\n{printed.getvalue()}\nbut the page shows\n{following.code}"
            )
    return ran


def run_doctest(code: str, namespace: dict[str, Any], where: str, line: int) -> None:
    """Run a block written as a doctest (``>>>`` prompts and expected output) in the page's namespace."""
    test = doctest.DocTestParser().get_doctest(code, namespace, where, where.rsplit(":", 1)[0], line)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    result = runner.run(test, out=report.write, clear_globs=False)
    namespace.update(test.globs)  # DocTest runs in a copy of the namespace: bring its names back
    assert result.failed == 0, f"{where}: doctest failed\n{report.getvalue()}"


@pytest.fixture
def registries() -> Iterator[None]:
    """Pages register example ops and sample kinds; take them out again afterwards."""
    from autobp.ops.registry import REGISTRY
    from autobp.testing.samples import SAMPLE_KINDS

    saved_ops, saved_kinds = dict(REGISTRY), dict(SAMPLE_KINDS)
    yield
    REGISTRY.clear()
    REGISTRY.update(saved_ops)
    SAMPLE_KINDS.clear()
    SAMPLE_KINDS.update(saved_kinds)


@pytest.mark.parametrize("page", pages_with_code(), ids=lambda p: str(p.relative_to(DOCS)))
def test_page_code_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registries: None) -> None:
    monkeypatch.chdir(tmp_path)
    assert run_page(page) > 0


def test_output_mismatch_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('```python\nprint(1 + 1)\n```\n\n```text title="Output"\n3\n```\n')
    with pytest.raises(AssertionError, match="the block printed"):
        run_page(page)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built the way CI builds it: strictly (any warning fails)."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-d", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return out


def test_docs_build_strictly(site: Path) -> None:
    for page in ("index.html", "backprop/index.html", "api/ops/index.html"):
        assert (site / page).is_file(), page
    backprop = (site / "backprop" / "index.html").read_text(encoding="utf-8")
    # Formulas are marked for KaTeX, and KaTeX ships with the site, so they render offline.
    assert backprop.count('class="arithmatex"') > 10
    for asset in ("katex.min.js", "katex.min.css", "fonts/KaTeX_Main-Regular.woff2"):
        assert (site / "assets" / "katex" / asset).is_file(), asset
    for picture in re.findall(r'<img[^>]+src="([^"]+\.svg)"', backprop):
        assert (site / "backprop" / picture).resolve().is_file(), f"backprop page shows a missing picture {picture}"


def public_names() -> list[tuple[str, str, Any]]:
    """(module, name, object) for every public name of the modules that exist."""
    found = []
    for module_name in PUBLIC_MODULES:
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            found.append((module_name, name, getattr(module, name)))
    return found


def test_every_public_name_is_in_the_api_reference(site: Path) -> None:
    anchors: set[str] = set()
    for html in (site / "api").rglob("*.html"):
        anchors.update(re.findall(r'id="([A-Za-z_][\w.]*)"', html.read_text(encoding="utf-8")))
    names = public_names()
    # An object re-exported under several names (ab.save is autobp.io.save) needs documenting
    # once, under any of them; plain constants (numbers, strings) each under their own name.
    documented = {id(value) for module, name, value in names if f"{module}.{name}" in anchors}
    missing = [
        f"{module}.{name}"
        for module, name, value in names
        if f"{module}.{name}" not in anchors and (isinstance(value, SCALARS) or id(value) not in documented)
    ]
    assert not missing, "public names missing from the API reference (docs/api/*.md):\n" + "\n".join(missing)


def test_every_public_function_and_class_has_a_docstring() -> None:
    missing = [
        f"{module}.{name}"
        for module, name, value in public_names()
        if (inspect.isfunction(value) or inspect.isclass(value) or inspect.ismodule(value))
        and not (inspect.getdoc(value) or "").strip()
    ]
    assert not missing, "public names without a docstring:\n" + "\n".join(missing)


def test_quick_start_matches_the_readme() -> None:
    """Getting started and the home page show the README's Quick start commands (kept in the hook)."""
    spec = importlib.util.spec_from_file_location("autobp_docs_hook", DOCS / "hooks" / "autobp_docs.py")
    assert spec is not None and spec.loader is not None
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for command in hook.QUICK_START.values():
        assert command in readme, (
            f"README.md no longer shows {command!r}: update QUICK_START in docs/hooks/autobp_docs.py"
        )


def test_the_trust_page_names_tests_that_exist() -> None:
    # docs/trust.md names the tests that guard each class; a renamed or deleted test must fail here.
    import re

    text = (ROOT / "docs" / "trust.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)((?:::\w+)?)`((?:, `::\w+`)*)", text)
    assert named, "docs/trust.md names no tests"
    for path, first, more in named:
        source = (ROOT / path).read_text()
        for name in [first, *re.findall(r"::\w+", more)]:
            if name:
                assert f"def {name[2:]}(" in source, f"docs/trust.md names {path}{name}, which does not exist"
