"""Each array library gives numpy's numbers: every registered op, run on numpy and on the library
under test (``--array-library torch``...) with the same inputs, compared value for value.

The values, the first derivatives (a vjp with a random cotangent) and the second derivatives (the
gradient of ``<first derivative, w>`` for a random ``w``) must equal numpy's to 1e-12 in float64
and 1e-5 in float32, relative to the largest magnitude; every result keeps the dtype numpy gives
and the library and device of the inputs. With numpy under test (the default run), the other
library is array-api-strict, the standard and nothing more. The ops that sum, multiply or pick
elements also take integers and bools, whose result dtypes numpy chooses by rules of its own.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from conftest import Library
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import autobp as ab
from autobp.ops.registry import REGISTRY, OpDef
from autobp.testing.samples import Sample, samples_for

ALL_OPS = sorted(REGISTRY)
STRICT = Library("array_api_strict")  # compared with numpy when numpy itself is under test
# How far a library's numbers may be from numpy's, relative to the largest magnitude of numpy's.
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _derivatives(
    opdef: OpDef, sample: Sample, dtype: Any, make: Callable[..., ab.Tensor], kwargs: dict[str, Any], seed: int
) -> list[ab.Tensor | None]:
    """The op's outputs, its vjp and the gradient of <vjp, w>, with inputs made by ``make``
    (``ab.tensor`` for numpy, the library's own for the library): the cotangents and directions
    come from ``seed`` on the host, so both runs see the same numbers."""
    floats = [a.dtype.kind == "f" for a in sample.arrays]
    tensors = [make(a.astype(dtype) if f else a, requires_grad=f) for a, f in zip(sample.arrays, floats, strict=True)]
    outputs = _as_list(opdef.public(*tensors, **kwargs))
    results: list[ab.Tensor | None] = list(outputs)
    differentiable = [o for o in outputs if o.requires_grad]
    leaves = [t for t in tensors if t.requires_grad]
    if not (opdef.differentiable and differentiable and leaves):
        return results
    rng = np.random.default_rng(seed)
    cotangents = [make(rng.standard_normal(o.shape).astype(dtype)) for o in differentiable]
    second_order = opdef.hints.second_order
    first = ab.grad(differentiable, leaves, grad_outputs=cotangents, create_graph=second_order, allow_unused=True)
    results += first
    if not second_order:
        return results
    directions = [make(rng.standard_normal(x.shape).astype(dtype)) for x in leaves]
    paired = [(g * w).sum() for g, w in zip(first, directions, strict=True) if g is not None and g.requires_grad]
    if paired:
        total = paired[0]
        for term in paired[1:]:
            total = total + term
        results += ab.grad(total, leaves, allow_unused=True)
    return results


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", ALL_OPS)
@given(data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_the_library_gives_numpys_numbers(
    name: str, dtype: str, library: Library, data: st.DataObject, seed: int
) -> None:
    if library.name == "numpy":
        library = STRICT
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    if name == "astype":  # its result dtype is its argument: keep the run in the dtype under test
        sample.kwargs["dtype"] = dtype
    wanted = _derivatives(opdef, sample, np.dtype(dtype), ab.tensor, sample.kwargs, seed)
    got = _derivatives(opdef, sample, np.dtype(dtype), library.tensor, library.kwargs(sample.kwargs), seed)
    assert len(got) == len(wanted), f"{name}: {len(got)} results on {library.name}, {len(wanted)} on numpy"
    tolerance = TOLERANCE[dtype]
    place = None
    for k, (result, expected) in enumerate(zip(got, wanted, strict=True)):
        assert (result is None) == (expected is None), f"{name}: result {k} is None on one library only"
        if result is None or expected is None:
            continue
        want = expected.numpy()
        assert library.dtype(result) == str(want.dtype), f"{name}: result {k} is {result.dtype}, numpy's {want.dtype}"
        assert result.library == library.name, f"{name}: result {k} is a {result.library} array"
        place = result.device if place is None else place
        assert result.device == place, f"{name}: result {k} on {result.device}, the others on {place}"
        scale = max(1.0, float(np.max(np.abs(want), initial=0.0, where=np.isfinite(want)))) if want.size else 1.0
        np.testing.assert_allclose(
            result.numpy(), want, rtol=tolerance, atol=tolerance * scale, err_msg=f"{name}: result {k}"
        )


# The ops that sum, multiply or pick among elements: numpy keeps or widens integer and bool dtypes
# there by its own rules (a uint8 sum is uint64, a uint8 einsum stays uint8 and wraps; torch gave int64).
REDUCING = {"reduction", "variance", "argreduction", "sum_to", "einsum", "dot", "matmul", "matmul_transposed"}
INTEGER_OPS = sorted(name for name, opdef in REGISTRY.items() if opdef.hints.shapes in REDUCING)


def _outputs(opdef: OpDef, arrays: list[np.ndarray], make: Callable[..., ab.Tensor], kwargs: dict[str, Any]) -> Any:
    """The op's outputs, or the exception it raised."""
    try:
        return _as_list(opdef.public(*[make(a) for a in arrays], **kwargs))
    except Exception as error:  # compared below: a library may refuse what it cannot compute
        return error


@pytest.mark.parametrize("dtype", ["bool", "uint8", "int8", "int16", "uint32", "int64"])
@pytest.mark.parametrize("name", INTEGER_OPS)
@given(data=st.data())
def test_the_library_gives_numpys_integers(name: str, dtype: str, library: Library, data: st.DataObject) -> None:
    """Integer and bool inputs over the dtype's whole range (sums wrap): the library gives numpy's
    dtype and values, or an error naming the op where it has no such computation (torch multiplies
    no bool matrices, strict sums no bools) -- never other numbers, nor a number where numpy raises."""
    if library.name == "numpy":
        library = STRICT
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    inputs = [data.draw(arrays(np.dtype(dtype), a.shape)) if a.dtype.kind == "f" else a for a in sample.arrays]
    wanted = _outputs(opdef, inputs, ab.tensor, sample.kwargs)
    got = _outputs(opdef, inputs, library.tensor, library.kwargs(sample.kwargs))
    if isinstance(got, Exception):  # named by the op, or by the op a composite one (dot) calls
        assert re.match(r"\w+: ", str(got)), f"{name}: {library.name} raised an error naming no op: {got!r}"
        return
    assert not isinstance(wanted, Exception), f"{name}: numpy raises {wanted!r}, {library.name} gives {got}"
    assert len(got) == len(wanted)
    for k, (result, expected) in enumerate(zip(got, wanted, strict=True)):
        want = expected.numpy()
        assert library.dtype(result) == str(want.dtype), f"{name}: result {k} is {result.dtype}, numpy's {want.dtype}"
        if want.dtype.kind == "f":  # means and spreads: summed in another order (a GPU's), so an error
            # of n roundings of the largest term stays where terms cancel (int64 near 2**63)
            n = max([a.size for a in inputs])
            scale = max([float(np.max(np.abs(a.astype(np.float64)), initial=0.0)) for a in inputs])
            atol = 4 * n * np.finfo(np.float64).eps * (scale * scale if name == "var" else scale)
            np.testing.assert_allclose(result.numpy(), want, rtol=1e-12, atol=atol, err_msg=f"{name}: result {k}")
        else:
            np.testing.assert_array_equal(result.numpy(), want, err_msg=f"{name}: result {k}")


def test_gradcheck_catches_a_wrong_vjp_on_the_library(library: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    """gradcheck's verdicts on another library mean something: a sabotaged rule fails there too."""
    x = library.tensor(np.array([0.3, -0.2, 1.5]), requires_grad=True)
    assert ab.gradcheck(ab.neg, (x,))
    assert ab.gradgradcheck(lambda t: ab.neg(t) * t, (x,))
    monkeypatch.setattr(REGISTRY["neg"], "rules", (lambda grad, out, x: -grad * 1.01,))
    with pytest.raises(ab.GradcheckError, match="analytic"):
        ab.gradcheck(ab.neg, (x,))


def test_every_backend_module_offers_the_same_extras() -> None:
    """An op calls ``xp.<extra>`` whatever the library: each backend module must define every extra,
    functions with the same parameters (or None where a library has none), flags of the same type
    (the modules import their library lazily, so all four load here)."""
    modules = {name: importlib.import_module(path) for name, path in ab.backends.LIBRARIES.items()}
    reference = modules["numpy"]
    for name, module in modules.items():
        assert name == module.NAME
        assert sorted(module.__all__) == sorted(reference.__all__), f"backends/{name}: extras differ from numpy's"
        for extra in reference.__all__:
            value, numpys = getattr(module, extra), getattr(reference, extra)
            if value is None or numpys is None:  # the library has no such function: the op's general path runs
                continue
            if not callable(numpys):  # a capability flag (e.g. whether the library has views): same kind
                assert type(value) is type(numpys), f"backends/{name}.{extra} is {value!r}, numpy's {numpys!r}"
                continue
            mine, theirs = inspect.signature(value), inspect.signature(numpys)
            assert list(mine.parameters) == list(theirs.parameters), f"backends/{name}.{extra}{mine} vs {theirs}"
