"""float32 through a create_graph backward, as a tape differentiates: Python numbers stay weak
(``graph.WeakScalar``), so the gradients are float32 and equal the first-order ones bit for bit,
and a float32 function is taped from its second call on."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_tape_soundness import _bits, _check_calls

import autobp as ab
from autobp.ops.registry import REGISTRY
from autobp.testing.samples import samples_for


def test_a_float32_power_is_taped_from_the_second_call_on() -> None:
    values = [np.array(v, dtype=np.float32) for v in ([1.0, 2.0, 3.0], [0.1, 0.2, 0.3], [-1.5, 2.5, 1e-3])]
    taped = _check_calls(lambda w: (w**3).sum() + (w * 0.1).sum() - (2.5 / (1.0 + w * w)).sum(), [(v,) for v in values])
    assert not taped.eager_reasons and len(next(iter(taped._signatures.values())).tapes) == 1


DIFFERENTIABLE = sorted(name for name, opdef in REGISTRY.items() if opdef.differentiable)


@pytest.mark.parametrize("name", DIFFERENTIABLE)
@settings(max_examples=settings.default.max_examples // 3)  # default 5, ci 33 per op
@given(data=st.data())
def test_float32_create_graph_gradients_equal_the_plain_ones_for_every_op(name: str, data: st.DataObject) -> None:
    opdef = REGISTRY[name]
    sample = data.draw(samples_for(opdef), label="sample")
    tensors = [
        ab.tensor(a.astype(np.float32) if a.dtype.kind == "f" else a, requires_grad=a.dtype.kind == "f")
        for a in sample.arrays
    ]

    def loss() -> Any:
        outputs = opdef.public(*tensors, **sample.kwargs)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        return sum((o * o).sum() for o in outputs if o.dtype.kind == "f")

    leaves = [t for t in tensors if t.requires_grad]
    plain = ab.grad(loss(), leaves, allow_unused=True)
    general = ab.grad(loss(), leaves, create_graph=True, allow_unused=True)
    for p, g in zip(plain, general, strict=True):
        assert (p is None) == (g is None)
        assert p is None or (p.dtype == np.float32 and _bits(g) == _bits(p)), f"{name}: create_graph differs"


SCALAR_OPS = ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]


@pytest.mark.parametrize("name", SCALAR_OPS)
@pytest.mark.parametrize("scalar", [0.1, 3, -2.5, True])
@pytest.mark.parametrize("side", ["left", "right"])
def test_create_graph_gradients_of_float32_with_python_numbers_equal_the_plain_ones(
    name: str, scalar: Any, side: str
) -> None:
    function = getattr(ab, name)
    x = ab.tensor(np.linspace(0.3, 1.7, 5, dtype=np.float32), requires_grad=True)

    def loss() -> ab.Tensor:
        out = function(x, scalar) if side == "left" else function(scalar, x)
        return (out * ab.tanh(x)).sum()

    (plain,) = ab.grad(loss(), [x])
    (general,) = ab.grad(loss(), [x], create_graph=True)
    assert plain.dtype == np.float32 and _bits(general) == _bits(plain)


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64])
def test_raw_float_arrays_keep_their_dtype_taped_and_in_functional_bit_for_bit(dtype: Any) -> None:
    # autobp.tape's claim: what functional.value_and_grad computes, bit for bit. functional made a
    # raw float32 argument float64 (the tape keeps its dtype, as ab.tensor does), so the two differed.
    def func(w: ab.Tensor, x: ab.Tensor) -> ab.Tensor:
        return (ab.tanh(x @ w) ** 2).sum() / 3.0

    taped = ab.tape.value_and_grad(func, (0, 1))
    rng = np.random.default_rng(0)
    for _ in range(4):
        w, x = rng.standard_normal((3, 2)).astype(dtype), rng.standard_normal((4, 3)).astype(dtype)
        value, grads = taped.arrays(w, x)
        want, wanted = ab.functional.value_and_grad(func, (0, 1))(w, x)  # the raw arrays, as the tape got them
        assert want.dtype == dtype and _bits(value) == _bits(want)
        assert [_bits(g) for g in grads] == [_bits(g) for g in wanted]
    assert not taped.eager_reasons


def test_functional_makes_array_likes_without_a_float_dtype_float64() -> None:
    for arg in ([1, 2], np.array([1, 2], np.int32), 3, 2.5, [np.float32(1.0), 2.0]):
        value, g = ab.functional.value_and_grad(lambda t: (t * t).sum())(arg)
        assert value.dtype == np.float64 and g.dtype == np.float64
    _, g = ab.functional.value_and_grad(lambda t: (t * t).sum())(np.float32(3.0))
    assert g.dtype == np.float32 and g.item() == 6.0


def test_another_librarys_float32_array_keeps_its_dtype_in_functional_too() -> None:
    xp = pytest.importorskip("array_api_strict")
    func = lambda w: (ab.tanh(w) ** 2).sum() / 3.0  # noqa: E731
    taped = ab.tape.value_and_grad(func)
    for values in ([0.1, 0.7, 1.3], [0.2, -0.7, 2.5]):
        w = xp.asarray(values, dtype=xp.float32)
        (value, (g,)), (want, wanted) = taped.arrays(w), ab.functional.value_and_grad(func)(w)
        assert want.dtype == xp.float32 and _bits(value) == _bits(want.numpy()) and _bits(g) == _bits(wanted.numpy())
