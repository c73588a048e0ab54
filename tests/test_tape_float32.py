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
