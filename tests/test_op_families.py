"""The op families: the registry lists each family package's modules in the order its docstring
gives (the op tables and the generated tests follow the registry), and the op reference has a
titled section for every module that declares a public op."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import itertools
import re
from pathlib import Path
from typing import Any

import pytest

import autobp as ab
from autobp.ops.registry import REGISTRY

HOOK = Path(__file__).resolve().parent.parent / "docs" / "hooks" / "autobp_docs.py"


def _documented_order(package: str) -> list[str]:
    """The modules a family package's docstring names as ``module`` spans, first mention first."""
    module = importlib.import_module(package)
    folder = Path(inspect.getfile(module)).parent
    names = re.findall(r"``(\w+)``", inspect.getdoc(module) or "")
    return list(dict.fromkeys(f"{package}.{name}" for name in names if (folder / f"{name}.py").is_file()))


@pytest.mark.parametrize("package", ["autobp.ops.elementwise", "autobp.ops.shape"])
def test_the_registry_lists_a_family_packages_modules_in_its_documented_order(package: str) -> None:
    declaring = [REGISTRY[name].declared.__module__ for name in REGISTRY]
    in_package = [module for module in declaring if module.startswith(package + ".")]
    runs = [module for module, _ in itertools.groupby(in_package)]
    # Each module's ops come together, module after module as documented (helpers declare none).
    assert runs == [module for module in _documented_order(package) if module in in_package]
    assert len(runs) >= 3, f"{package}: expected its ops split over its family modules, got {runs}"


def test_every_module_that_declares_a_public_op_has_an_op_reference_section() -> None:
    spec = importlib.util.spec_from_file_location("autobp_docs_hook_families", HOOK)
    assert spec is not None and spec.loader is not None
    hook: Any = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    modules = {inspect.unwrap(getattr(ab, name)).__module__ for name in ab.ops.__all__}
    assert modules <= set(hook.FAMILIES), f"untitled in the op reference: {sorted(modules - set(hook.FAMILIES))}"
