"""The hot path reads its helpers as its own module's globals, after the engine and the registry
were split into modules (``engine/*.py``; ``ops/opdef.py``, ``ops/public_function.py``).

A helper read as ``module.helper`` costs an attribute lookup on every call; per op or per node
that is W2's and W4's cost (``benchmarks/opcodes.py``). These tests read the bytecode: a function
called per op or per node loads no attribute of a module, and the walk itself only those it needs
once per walk. They also hold the old names where tests, docs and other modules import them.
"""

from __future__ import annotations

import dis
import itertools
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from autobp import engine
from autobp.ops import public_function, registry
from autobp.ops.opdef import Hints, OpDef
from autobp.ops.registry import REGISTRY


def _codes(code: types.CodeType) -> Iterator[types.CodeType]:
    """A code object and those nested in it (comprehensions, inner functions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def module_attributes(function: Callable[..., Any]) -> set[tuple[str, str]]:
    """(global, attribute) for every ``module.attribute`` the function's bytecode loads."""
    found = set()
    for code in _codes(function.__code__):
        for load, attribute in itertools.pairwise(dis.get_instructions(code)):
            if load.opname != "LOAD_GLOBAL" or attribute.opname not in ("LOAD_ATTR", "LOAD_METHOD"):
                continue
            if isinstance(function.__globals__.get(load.argval), types.ModuleType):
                found.add((load.argval, attribute.argval))
    return found


PER_NODE = [
    engine.rule_paths._on_arrays,
    engine.rule_paths._on_tensors,
    engine.rule_paths._run_rules,
    engine.versions.check_versions,
    engine.versions.changed,
    engine.order.queue_seeds,
    engine.hook_calls.accumulate,
]


@pytest.mark.parametrize("function", PER_NODE, ids=lambda f: f.__qualname__)
def test_functions_run_per_node_load_no_module_attribute(function: Callable[..., Any]) -> None:
    assert module_attributes(function) == set()


def test_the_walk_loads_module_attributes_only_once_per_walk() -> None:
    # Each of these is read before the loop over vertices.
    once = {("graph", "refuse_while_tracing"), ("np", "ndarray"), ("graph", "_anomaly_hook")}
    assert module_attributes(engine._walk) == once


def test_an_ops_public_function_loads_a_module_attribute_only_on_its_rare_view_branch() -> None:
    # graph.new_view: an op that returned its input unchanged (squeeze, sum_to), recorded or not.
    # The shorter road in front of it (public_function.specialised) reads closure variables, and
    # where it records inline, whether anomaly mode is on (switched on at any time: record reads
    # its own global for it).
    for name in ("mul", "exp", "sum", "matmul", "where", "concatenate"):
        public = REGISTRY[name].public
        general = getattr(public, "general", public)
        assert module_attributes(general) == {("graph", "new_view")}, name
        if general is not public:
            road = getattr(public, "road", public)  # (behind a function taking keywords too: sum's axis)
            assert module_attributes(road) == {("graph", "_anomaly_hook")}, name
            assert module_attributes(public) == set() or road is public, name
    assert REGISTRY["mul"].public.general is not REGISTRY["mul"].public  # (mul and exp have the road)
    assert REGISTRY["exp"].public.general is not REGISTRY["exp"].public


def test_the_helpers_the_walk_calls_are_the_ones_it_would_find_in_their_modules() -> None:
    # The walk reads its own globals; they must be the moved functions themselves, not stale copies.
    assert engine.versions.check_versions is engine.rule_paths.check_versions
    assert engine.rule_paths._on_arrays is engine._on_arrays
    assert engine.order.queue_seeds is engine.queue_seeds
    assert engine.hook_calls.run_hooks is engine.run_hooks
    assert engine.hook_calls.run_node_hooks is engine.run_node_hooks


def test_the_registry_still_exports_what_ops_tests_and_the_tape_import_from_it() -> None:
    assert registry.Hints is Hints and registry.OpDef is OpDef
    assert registry._NUMPY_LIKE is public_function.NUMPY_LIKE
    for name in registry.__all__:
        assert hasattr(registry, name), name
    # Every registered op's public function was built by public_function.make_public.
    built = [opdef.public.__code__ for opdef in REGISTRY.values() if not opdef.composite]
    assert built and all(code.co_filename == public_function.__file__ for code in built)
