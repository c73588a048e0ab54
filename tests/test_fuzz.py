"""Random-program fuzzing: random expression graphs from the op registry, checked against
finite differences (gradcheck) and for second derivatives (gradgradcheck).

A program draws up to ``MAX_OPS`` steps; each step applies an op to values drawn from
everything computed so far (the inputs included), so sub-expressions are shared and inputs
reused. Inputs whose values an op's domain restricts are first squashed into that domain
(``hints.domain`` from the registry) by a scaled tanh, so every program is smooth where it is
evaluated. Ops that are not smooth (abs, relu, max, maximum, clip, ...) are left to the
per-op suite, whose samples keep away from their kinks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import autobp as ab
from autobp.ops.registry import REGISTRY

MAX_OPS = 12
INPUT_SHAPES = [(), (3,), (2, 3), (2, 1), (1, 3)]
# Bounded or linear: applied to any value without squashing.
SAFE_UNARY = ["sin", "cos", "tanh", "sigmoid", "neg"]
# Applied to a value squashed into the op's domain (exp and square too: they would overflow).
DOMAIN_UNARY = ["exp", "log", "log1p", "expm1", "sqrt", "square", "tan", "softplus"]
BINARY = ["add", "sub", "mul", "div", "pow"]
REDUCTIONS = ["sum", "mean", "prod", "logsumexp", "var"]
MASK = np.array([[True, False, True], [False, True, True]])


@dataclass
class Step:
    text: str
    operands: tuple[int, ...]
    apply: Callable[..., ab.Tensor]


@dataclass
class Program:
    shapes: list[tuple[int, ...]]
    steps: list[Step]
    seed: int

    def __call__(self, *inputs: ab.Tensor) -> tuple[ab.Tensor, ...]:
        """Every computed value that no later step consumes: the whole program is checked."""
        values = list(inputs)
        for step in self.steps:
            values.append(step.apply(*(values[i] for i in step.operands)))
        used = {i for step in self.steps for i in step.operands}
        sinks = [v for i, v in enumerate(values) if i >= len(inputs) and i not in used]
        return tuple(sinks) or tuple(inputs)

    def inputs(self) -> tuple[ab.Tensor, ...]:
        rng = np.random.default_rng(self.seed)
        return tuple(ab.tensor(rng.uniform(-1.5, 1.5, shape), requires_grad=True) for shape in self.shapes)

    def __repr__(self) -> str:
        lines = [f"v{i} = input{list(s)}" for i, s in enumerate(self.shapes)]
        lines += [f"v{len(self.shapes) + k} = {step.text}" for k, step in enumerate(self.steps)]
        return f"Program(seed={self.seed}):\n  " + "\n  ".join(lines)


def _domain(name: str, position: int = 0) -> tuple[float, float]:
    domain = REGISTRY[name].hints.domain
    low, high = domain[position] if isinstance(domain[0], tuple) else domain  # type: ignore[misc]
    return float(low), float(high)  # type: ignore[arg-type]


def _squash(x: ab.Tensor, low: float, high: float) -> ab.Tensor:
    """Map any value into (low, high), kept 5% away from the ends."""
    middle, half = (low + high) / 2, 0.95 * (high - low) / 2
    return ab.tanh(x) * half + middle


def _unary(draw: Any, shapes: list[tuple[int, ...]]) -> Step:
    name = draw(st.sampled_from([n for n in SAFE_UNARY + DOMAIN_UNARY if n in REGISTRY]))
    source = draw(st.integers(0, len(shapes) - 1))
    function = REGISTRY[name].public
    if name in SAFE_UNARY:
        return Step(f"{name}(v{source})", (source,), function)
    low, high = _domain(name)
    return Step(f"{name}(squash(v{source}, {low}, {high}))", (source,), lambda x: function(_squash(x, low, high)))


def _broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def _binary(draw: Any, shapes: list[tuple[int, ...]]) -> Step | None:
    name = draw(st.sampled_from(BINARY))
    left = draw(st.integers(0, len(shapes) - 1))
    partners = [i for i, s in enumerate(shapes) if _broadcastable(shapes[left], s)]
    right = draw(st.sampled_from(partners))  # may be `left` itself: x op x
    function = REGISTRY[name].public
    if name in ("div", "pow"):
        (l_low, l_high), (r_low, r_high) = _domain(name, 0), _domain(name, 1)
        return Step(
            f"{name}(squash(v{left}), squash(v{right}))",
            (left, right),
            lambda x, y: function(_squash(x, l_low, l_high), _squash(y, r_low, r_high)),
        )
    return Step(f"{name}(v{left}, v{right})", (left, right), function)


def _reduction(draw: Any, shapes: list[tuple[int, ...]]) -> Step:
    name = draw(st.sampled_from([n for n in REDUCTIONS if n in REGISTRY]))
    source = draw(st.integers(0, len(shapes) - 1))
    ndim = len(shapes[source])
    axis = draw(st.sampled_from([None, *range(-ndim, ndim)]))
    keepdims = draw(st.booleans())
    function = REGISTRY[name].public
    if name == "prod":
        # A product of k values near 10 (v @ v.T @ v) is near 10^k, and a difference quotient beside
        # it resolves nothing: the deep fuzz found sin(prod(...)) at -1.9e5, where the step turns
        # the sine by a tenth of a radian (analytic 111292 against numeric 107467). Squashed into
        # (-1.5, 1.5), a product of twelve stays under 80.
        return Step(
            f"prod(squash(v{source}, -1.5, 1.5), axis={axis}, keepdims={keepdims})",
            (source,),
            lambda x: function(_squash(x, -1.5, 1.5), axis=axis, keepdims=keepdims),
        )
    return Step(
        f"{name}(v{source}, axis={axis}, keepdims={keepdims})",
        (source,),
        lambda x: function(x, axis=axis, keepdims=keepdims),
    )


def _reshape(draw: Any, shapes: list[tuple[int, ...]]) -> Step:
    source = draw(st.integers(0, len(shapes) - 1))
    shape = shapes[source]
    choices: list[tuple[str, Callable[[ab.Tensor], ab.Tensor]]] = [
        ("reshape(-1)", lambda x: ab.reshape(x, (-1,))),
        ("expand_dims(0)", lambda x: ab.expand_dims(x, 0)),
        ("reshape(reversed)", lambda x: ab.reshape(x, tuple(reversed(x.shape)))),
    ]
    if len(shape) >= 2:
        choices += [("transpose", ab.transpose), ("swapaxes(0, -1)", lambda x: ab.swapaxes(x, 0, -1))]
    label, function = draw(st.sampled_from(choices))
    return Step(f"{label}(v{source})", (source,), function)


def _index(draw: Any, shapes: list[tuple[int, ...]]) -> Step | None:
    candidates = [i for i, s in enumerate(shapes) if len(s) >= 1]
    if not candidates:
        return None
    source = draw(st.sampled_from(candidates))
    shape = shapes[source]
    size = shape[0]
    choices: list[tuple[str, Any]] = [
        ("[0]", 0),
        ("[::-1]", slice(None, None, -1)),  # a negative-stride view
        ("[[0, 0, -1]]", [0, 0, size - 1]),  # repeats: gradients must accumulate
        ("[..., None]", (Ellipsis, None)),
    ]
    if size >= 2:
        choices.append(("[1:]", slice(1, None)))
    if shape == MASK.shape:
        choices.append(("[mask]", MASK))
    label, index = draw(st.sampled_from(choices))
    return Step(f"v{source}{label}", (source,), lambda x: x[index])


def _matmul(draw: Any, shapes: list[tuple[int, ...]]) -> Step | None:
    pairs = [
        (i, j)
        for i, a in enumerate(shapes)
        for j, b in enumerate(shapes)
        if 1 <= len(a) <= 2 and 1 <= len(b) <= 2 and a[-1] == b[0] and not (len(a) == 1 and len(b) == 1 and a[0] == 1)
    ]
    if not pairs:
        source = draw(st.integers(0, len(shapes) - 1))
        if len(shapes[source]) != 2:
            return None
        return Step(f"v{source} @ v{source}.T", (source,), lambda x: ab.matmul(x, ab.transpose(x)))
    left, right = draw(st.sampled_from(pairs))
    return Step(f"v{left} @ v{right}", (left, right), ab.matmul)


def _join(draw: Any, shapes: list[tuple[int, ...]]) -> Step | None:
    left = draw(st.integers(0, len(shapes) - 1))
    if not shapes[left]:
        return None
    right = draw(st.sampled_from([i for i, s in enumerate(shapes) if s == shapes[left]]))
    if draw(st.booleans()):
        return Step(f"concatenate(v{left}, v{right})", (left, right), lambda x, y: ab.concatenate([x, y], axis=0))
    return Step(f"stack(v{left}, v{right}, axis=-1)", (left, right), lambda x, y: ab.stack([x, y], axis=-1))


def _where(draw: Any, shapes: list[tuple[int, ...]]) -> Step | None:
    left = draw(st.integers(0, len(shapes) - 1))
    partners = [i for i, s in enumerate(shapes) if _broadcastable(shapes[left], s)]
    right = draw(st.sampled_from(partners))
    shape = np.broadcast_shapes(shapes[left], shapes[right])
    mask = np.resize(MASK.ravel(), shape) if shape else np.array(True)
    return Step(f"where(mask, v{left}, v{right})", (left, right), lambda x, y: ab.where(mask, x, y))


BUILDERS = [_unary, _unary, _binary, _binary, _reduction, _reshape, _index, _matmul, _join, _where]


@st.composite
def programs(draw: Any) -> Program:
    """A random program: its input shapes, its steps, and the seed of its input values."""
    shapes: list[tuple[int, ...]] = [draw(st.sampled_from(INPUT_SHAPES)) for _ in range(draw(st.integers(1, 3)))]
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, MAX_OPS))):
        step = draw(st.sampled_from(BUILDERS))(draw, shapes)
        if step is None:
            continue
        # The output shape, from a dry run on zeros (every step is valid at zeros).
        out = step.apply(*(ab.zeros(shapes[i]) for i in step.operands))
        if out.size == 0 or out.size > 36:  # keep full-Jacobian checks cheap
            continue
        steps.append(step)
        shapes.append(out.shape)
    return Program(shapes[: len(shapes) - len(steps)], steps, draw(st.integers(0, 2**32 - 1)))


# Scaled from the profile (default 15, ci 60): one example takes a few milliseconds.
@settings(max_examples=4 * settings.default.max_examples)
@given(programs())
def test_random_programs_match_finite_differences(program: Program) -> None:
    inputs = program.inputs()
    assert ab.gradcheck(program, inputs)


@settings(max_examples=3 * settings.default.max_examples)
@given(programs())
def test_random_programs_second_derivatives(program: Program) -> None:
    inputs = program.inputs()
    assert ab.gradgradcheck(program, inputs)


def test_the_fuzzer_catches_a_wrong_vjp(monkeypatch: Any) -> None:
    """A sabotaged rule must fail the very check the fuzzer runs (so a pass means something)."""
    x = ab.tensor([0.3, -0.2], requires_grad=True)
    program = Program([(2,)], [Step("sin(v0)", (0,), ab.sin)], seed=0)
    assert ab.gradcheck(program, (x,))  # the sabotage is what fails below
    monkeypatch.setattr(REGISTRY["sin"], "rules", (lambda grad, out, x: grad * ab.cos(x) * 1.01,))
    try:
        ab.gradcheck(program, (x,))
    except ab.GradcheckError as error:
        assert "analytic" in str(error)
    else:
        raise AssertionError("gradcheck accepted a wrong vjp")
