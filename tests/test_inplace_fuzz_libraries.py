"""Differential fuzzing of in-place writes and views: numpy against torch and array-api-strict.

autobp's rule for another array library: a program gives exactly numpy's numbers (values and
gradients), or it raises (``RuntimeError``, ``ValueError``, ``TypeError``). A different number
without an error is the worst bug, so this test draws small programs of views (slices, reversed
slices, reshapes, ``.T``, rows of an iteration, ``detach``), in-place writes (``+=``, the named
methods, ``t[i] = v``, an optimizer's step, ``.grad`` set, read or cleared), graph ops,
``no_grad`` blocks, ``backward`` and ``ab.grad``, runs each one on numpy Tensors and on the other
library's Tensors made from the same numpy arrays, and compares them.

Each run goes on past a step that raises (autobp's errors leave its tensors as they were), and
records what every step did. The first step whose outcome differs decides:

- the other library raised where numpy did not: allowed (it may refuse what it cannot do as
  numpy does); nothing after it is compared;
- numpy raised where the other library did not: no numpy number to compare with, so not a
  failure; recorded as a hypothesis ``event`` (``--hypothesis-show-statistics`` lists them);
- no step differs: every slot's value, dtype, ``requires_grad`` and ``.grad`` must be numpy's
  (rtol 1e-12), including the gradients ``ab.grad`` returned.

Any other exception than the three (an ``AttributeError`` from inside autobp, say) fails the
test on either library. A failing example prints as the Python program it ran. The divergences
the fuzzer found (each fixed since) are pinned at the end of this file as short programs, so that
every run tests them, not only one where the fuzzer draws them.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import autobp as ab

LIBRARIES = [
    pytest.param(
        "torch",
        marks=pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed"),
    ),
    "array_api_strict",
]
# What a refusal may raise; anything else is a bug on whichever library raised it.
REFUSALS = (RuntimeError, ValueError, TypeError)
MAX_STEPS = 12
SHAPES = [(4,), (2, 2), (2,)]
# Small powers of two and halves: products and sums of the quarter-integer inputs stay exact, so
# the libraries' summation orders cannot make tolerable differences look like bugs.
NUMBERS = [0.5, 2.0, -1.0, 0.25, 3.0]
RTOL = ATOL = 1e-12  # (atol: a sum that cancels to about 0 after exp may differ in its last bits)


# -- the machine a program runs on --------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """An operand that is the tensor in slot ``index`` of the environment."""

    index: int

    def __repr__(self) -> str:
        return f"s{self.index}"


Operand = float | Slot


class Env:
    """The tensors of one run, in numbered slots, all made in one library.

    The slots are a list, and every write below goes through ``self.slots[i]`` directly: an
    augmented assignment is refused where more than one name holds its tensor, so the machine
    must hold each tensor only once, as a program's one variable would.
    """

    def __init__(self, library: str) -> None:
        self.library = library
        self.slots: list[ab.Tensor | None] = []

    def tensor(self, array: np.ndarray, requires_grad: bool = False) -> ab.Tensor:
        """A Tensor of this run's library holding ``array``'s values."""
        if self.library != "numpy":
            array = ab.backends.library(self.library).from_numpy(array)
        return ab.tensor(array, requires_grad=requires_grad)

    def operand(self, operand: Operand) -> Any:
        return self.slots[operand.index] if isinstance(operand, Slot) else operand


class Step:
    """One line of a program: ``text`` as Python (for the printed example), ``apply`` to run it."""

    def __init__(
        self,
        text: str,
        apply: Callable[[Env], None],
        reads: tuple[int, ...],
        outputs: int,
        no_grad: bool,
        gradients: bool = False,
    ) -> None:
        self.text, self.apply = text, apply
        self.reads = reads  # the slots it needs: skipped where an earlier failure left one empty
        self.outputs = outputs  # how many slots it appends
        self.no_grad = no_grad
        self.gradients = gradients  # backward or ab.grad: the step that makes gradients

    def __repr__(self) -> str:
        return f"with ab.no_grad(): {self.text}" if self.no_grad else self.text


class Program:
    """Leaves made from quarter-integer values, then the steps. (A plain class, not a dataclass:
    hypothesis prints a failing example with ``__repr__``, the program as Python.)"""

    def __init__(self, leaves: list[tuple[tuple[int, ...], bool]], seed: int) -> None:
        self.leaves = leaves  # (shape, requires_grad)
        self.seed = seed
        self.steps: list[Step] = []

    def arrays(self) -> list[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        return [rng.integers(-8, 9, shape) / 4.0 for shape, _ in self.leaves]

    def __repr__(self) -> str:
        lines = [
            f"s{i} = tensor({a.tolist()}, requires_grad={grad})"
            for i, (a, (_, grad)) in enumerate(zip(self.arrays(), self.leaves, strict=True))
        ]
        return "\n    ".join(["", *lines, *map(repr, self.steps)])


@dataclass
class Run:
    """What a run did: each step's outcome ("ok", "skipped" or the error), and at the end each
    slot's (value, dtype name, requires_grad, .grad) or None for an empty slot."""

    outcomes: list[str]
    slots: list[tuple[np.ndarray, str, bool, np.ndarray | None] | None]


def _host(tensor: ab.Tensor) -> np.ndarray:
    """A copy of the values (numpy's ``.numpy()`` is the array itself, which a later write changes)."""
    return np.array(tensor.numpy(), copy=True)


def _dtype_name(tensor: ab.Tensor) -> str:
    return ab.backends.namespace(tensor.data).dtype_name(tensor.dtype)


def _read(tensor: ab.Tensor | None) -> tuple[np.ndarray, str, bool, np.ndarray | None] | None:
    if tensor is None:
        return None
    grad = None if tensor.grad is None else _host(tensor.grad)
    return _host(tensor), _dtype_name(tensor), tensor.requires_grad, grad


def _apply(step: Step, env: Env) -> None:
    # errstate: numpy warns where a value becomes inf or nan (an exp that overflows, a division
    # by a zero element), which the suite makes an error; the comparison takes inf and nan as values
    with np.errstate(all="ignore"), ab.no_grad() if step.no_grad else contextlib.nullcontext():
        step.apply(env)


def run(program: Program, library: str) -> Run:
    """Run ``program`` on ``library``'s tensors, going on past the steps that raise a refusal."""
    env = Env(library)
    for array, (_, requires_grad) in zip(program.arrays(), program.leaves, strict=True):
        env.slots.append(env.tensor(array, requires_grad))
    outcomes = []
    for step in program.steps:
        if any(env.slots[i] is None for i in step.reads):
            outcomes.append("skipped")
            env.slots.extend([None] * step.outputs)  # (later slot numbers stay the program's)
            continue
        before = len(env.slots)
        try:
            _apply(step, env)
            outcomes.append("ok")
        except REFUSALS as error:
            outcomes.append(f"{type(error).__name__}: {error}")
            # the slots the step makes stay empty: later slot numbers stay the program's
            del env.slots[before:]
            env.slots.extend([None] * step.outputs)
    return Run(outcomes, [_read(t) for t in env.slots])


# -- the vocabulary ----------------------------------------------------------------------------
#
# Each kind of step is drawn by a function of (draw, sketch), which appends to the sketch the
# slots the step makes. The sketch lets the drawing pick operands of shapes that fit, so that few
# programs stop at a mere shape error, and aim backward and ab.grad at slots on a graph.


class Sketch:
    """What the drawing knows of the slots before anything runs: each one's shape (None: emptied
    by ``del``) and whether it is likely on a graph; and whether the step drawn runs under no_grad."""

    def __init__(self, leaves: list[tuple[tuple[int, ...], bool]]) -> None:
        self.shapes: list[tuple[int, ...] | None] = [shape for shape, _ in leaves]
        self.graph = [requires_grad for _, requires_grad in leaves]
        self.no_grad = False

    def add(self, shape: tuple[int, ...] | None, graph: bool) -> int:
        """A new slot's number."""
        self.shapes.append(shape)
        self.graph.append(graph and not self.no_grad)
        return len(self.shapes) - 1

    def live(self, on_graph: bool = False) -> list[int]:
        return [i for i, s in enumerate(self.shapes) if s is not None and (self.graph[i] or not on_graph)]

    def pick(self, draw: Any, on_graph: bool = False) -> int | None:
        """A live slot; with ``on_graph``, most often one likely on a graph (where there is one)."""
        indices = self.live(on_graph=on_graph and draw(st.integers(0, 3)) > 0) or self.live()
        return draw(st.sampled_from(indices)) if indices else None

    def shape(self, i: int) -> tuple[int, ...]:
        shape = self.shapes[i]
        assert shape is not None
        return shape

    def step(
        self, text: str, apply: Callable[[Env], None], reads: tuple[int, ...], outputs: int = 0, gradients: bool = False
    ) -> Step:
        return Step(text, apply, reads, outputs, self.no_grad, gradients)


def _shape_of(function: Callable[..., Any], *shapes: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape ``function`` gives on numpy tensors of these shapes, None where it raises."""
    try:
        return tuple(function(*(ab.tensor(np.zeros(s)) for s in shapes)).shape)
    except (*REFUSALS, IndexError):
        return None


def _operand(draw: Any, sketch: Sketch, into: tuple[int, ...]) -> Operand:
    """A number, or a slot whose shape broadcasts into ``into``."""
    fits = [i for i in sketch.live() if _shape_of(lambda t, o: t + o, into, sketch.shape(i)) == into]
    if not fits or draw(st.booleans()):
        return draw(st.sampled_from(NUMBERS))
    return Slot(draw(st.sampled_from(fits)))


def _reads(*operands: Any) -> tuple[int, ...]:
    return tuple(o.index for o in operands if isinstance(o, Slot))


# Views of a tensor, and detach (which shares its memory). Rows of an iteration are views too.
VIEWS: dict[str, Callable[[ab.Tensor], ab.Tensor]] = {
    "{}[0:2]": lambda t: t[0:2],
    "{}[::2]": lambda t: t[::2],
    "{}[::-1]": lambda t: t[::-1],
    "{}[1]": lambda t: t[1],
    "ab.reshape({}, (2, 2))": lambda t: ab.reshape(t, (2, 2)),
    "ab.reshape({}, (-1,))": lambda t: ab.reshape(t, (-1,)),
    "{}.T": lambda t: t.T,
    "next(iter({}))": lambda t: next(iter(t)),
    "{}.detach()": lambda t: t.detach(),
}


def _view(draw: Any, sketch: Sketch) -> Step | None:
    i = sketch.pick(draw)
    if i is None:
        return None
    name = draw(st.sampled_from([name for name, f in VIEWS.items() if _shape_of(f, sketch.shape(i))]))
    view = VIEWS[name]
    k = sketch.add(_shape_of(view, sketch.shape(i)), sketch.graph[i] and "detach" not in name)

    def apply(env: Env) -> None:
        env.slots.append(view(env.slots[i]))  # type: ignore[arg-type]

    return sketch.step(f"s{k} = {name.format(f's{i}')}", apply, (i,), outputs=1)


BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "*": lambda a, b: a * b,
    "+": lambda a, b: a + b,
    "-": lambda a, b: a - b,
}


def _compute(draw: Any, sketch: Sketch) -> Step | None:
    """An op on the graph: a binary op of two slots or of a slot and a number, exp, sum."""
    i = sketch.pick(draw, on_graph=True)
    if i is None:
        return None
    kind = draw(st.sampled_from(["binary", "exp", "sum"]))
    if kind == "binary":
        symbol = draw(st.sampled_from(sorted(BINARY)))
        binary = BINARY[symbol]
        fits = [j for j in sketch.live() if _shape_of(binary, sketch.shape(i), sketch.shape(j)) is not None]
        other: Operand = Slot(draw(st.sampled_from(fits))) if draw(st.booleans()) else draw(st.sampled_from(NUMBERS))
        reads = (i, *_reads(other))
        k = sketch.add(_shape_of(binary, *(sketch.shape(j) for j in reads)), any(sketch.graph[j] for j in reads))

        def apply(env: Env) -> None:
            env.slots.append(binary(env.slots[i], env.operand(other)))

        return sketch.step(f"s{k} = s{i} {symbol} {other!r}", apply, reads, outputs=1)
    unary: Callable[[ab.Tensor], ab.Tensor] = ab.exp if kind == "exp" else lambda t: t.sum()
    k = sketch.add(sketch.shape(i) if kind == "exp" else (), sketch.graph[i])

    def apply_unary(env: Env) -> None:
        env.slots.append(unary(env.slots[i]))  # type: ignore[arg-type]

    text = f"ab.exp(s{i})" if kind == "exp" else f"s{i}.sum()"
    return sketch.step(f"s{k} = {text}", apply_unary, (i,), outputs=1)


def _augmented(env: Env, i: int, symbol: str, operand: Any) -> None:
    """``s_i op= operand``, written on the list entry itself (no second name holds the tensor)."""
    if symbol == "+=":
        env.slots[i] += operand
    elif symbol == "-=":
        env.slots[i] -= operand
    elif symbol == "*=":
        env.slots[i] *= operand
    else:
        env.slots[i] /= operand


def _rows_augmented(env: Env, i: int, symbol: str, operand: Any) -> None:
    """``for row in s_i: row op= operand``: each row a view, held by the loop's name alone."""
    for row in env.slots[i]:  # type: ignore[union-attr]
        if symbol == "+=":
            row += operand
        elif symbol == "-=":
            row -= operand
        elif symbol == "*=":
            row *= operand
        else:
            row /= operand


METHODS = ["add_", "sub_", "mul_", "div_", "copy_", "fill_", "zero_", "clamp_"]
# Indices of t[index] = value, by the tensor's number of dimensions.
INDICES: dict[int, list[Any]] = {
    1: [0, slice(0, 2), slice(None, None, 2), slice(None, None, -1)],
    2: [0, (slice(None), 1), slice(None, None, -1), (0, 1)],
}


def _index_text(index: Any) -> str:
    def one(part: Any) -> str:
        if isinstance(part, slice):
            return ":".join("" if v is None else str(v) for v in (part.start, part.stop, part.step)).rstrip(":") or ":"
        return str(part)

    return ", ".join(one(p) for p in index) if isinstance(index, tuple) else one(index)


def _indexes(shape: tuple[int, ...], index: Any) -> bool:
    """Does ``index`` fit an array of ``shape`` (``(:, 1)`` does not fit a (2, 1) one)?"""
    try:
        np.zeros(shape)[index]
    except IndexError:
        return False
    return True


def _write(draw: Any, sketch: Sketch) -> Step | None:
    """An in-place write: augmented assignment (of the slot or of each of its rows), a named
    in-place method, or ``t[index] = value``."""
    i = sketch.pick(draw)
    if i is None:
        return None
    shape = sketch.shape(i)
    kind = draw(st.sampled_from(["augmented", "rows", "method", "setitem"]))
    if kind == "augmented" or (kind == "rows" and shape):
        symbol = draw(st.sampled_from(["+=", "-=", "*=", "/="]))
        operand = _operand(draw, sketch, shape if kind == "augmented" else shape[1:])
        if isinstance(operand, Slot) and sketch.graph[operand.index]:
            sketch.graph[i] = True  # (a rebind puts the slot on the graph)
        target = _augmented if kind == "augmented" else _rows_augmented
        text = f"s{i} {symbol} {operand!r}" if kind == "augmented" else f"for row in s{i}: row {symbol} {operand!r}"
        return sketch.step(text, lambda env: target(env, i, symbol, env.operand(operand)), (i, *_reads(operand)))
    if kind == "setitem" and shape:
        index = draw(st.sampled_from([index for index in INDICES[len(shape)] if _indexes(shape, index)]))
        operand = _operand(draw, sketch, np.zeros(shape)[index].shape)

        def setitem(env: Env) -> None:
            env.slots[i][index] = env.operand(operand)  # type: ignore[index]

        return sketch.step(f"s{i}[{_index_text(index)}] = {operand!r}", setitem, (i, *_reads(operand)))
    method = draw(st.sampled_from(METHODS))
    if method == "zero_":
        args: tuple[Operand, ...] = ()
    elif method == "clamp_":
        args = (draw(st.sampled_from([-1.0, 0.0, 0.5])),)
    elif method in ("fill_", "div_"):
        args = (draw(st.sampled_from(NUMBERS)),)
    else:
        args = (_operand(draw, sketch, shape),)

    def call(env: Env) -> None:
        getattr(env.slots[i], method)(*(env.operand(a) for a in args))

    return sketch.step(f"s{i}.{method}({', '.join(map(repr, args))})", call, (i, *_reads(*args)))


def _gradients(draw: Any, sketch: Sketch) -> Step | None:
    """``backward`` of a slot's sum, or ``ab.grad`` of it for some slots (the results are slots)."""
    i = sketch.pick(draw, on_graph=True)
    if i is None:
        return None
    retain = draw(st.booleans())
    if draw(st.booleans()):

        def backward(env: Env) -> None:
            env.slots[i].sum().backward(retain_graph=retain)  # type: ignore[union-attr]

        return sketch.step(f"s{i}.sum().backward(retain_graph={retain})", backward, (i,), gradients=True)
    candidates = sketch.live(on_graph=draw(st.integers(0, 3)) > 0) or sketch.live()
    wrt = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=3, unique=True))
    create = draw(st.booleans())

    def grad(env: Env) -> None:
        results = ab.grad(
            env.slots[i].sum(),  # type: ignore[union-attr]
            [env.slots[j] for j in wrt],
            retain_graph=retain,
            create_graph=create,
            allow_unused=True,
        )
        env.slots.extend(results)

    names = ", ".join(f"s{sketch.add(sketch.shapes[j], create)}" for j in wrt)
    listed = ", ".join(f"s{j}" for j in wrt)
    text = (
        f"{names}, = ab.grad(s{i}.sum(), [{listed}], retain_graph={retain}, create_graph={create}, allow_unused=True)"
    )
    return sketch.step(text, grad, (i, *wrt), outputs=len(wrt), gradients=True)


def _parameter(draw: Any, sketch: Sketch) -> Step | None:
    """What training does to a parameter: an optimizer's step, ``.grad`` set, read or cleared,
    ``requires_grad_()``; and dropping a slot (its views may then rebind)."""
    i = sketch.pick(draw, on_graph=True)
    if i is None:
        return None
    kind = draw(st.sampled_from(["sgd", "set grad", "read grad", "clear grad", "requires_grad_", "del"]))
    if kind == "sgd":
        momentum = draw(st.sampled_from([0.0, 0.9]))

        def sgd(env: Env) -> None:
            ab.optim.SGD([env.slots[i]], lr=0.5, momentum=momentum).step()

        return sketch.step(f"ab.optim.SGD([s{i}], lr=0.5, momentum={momentum}).step()", sgd, (i,))
    if kind == "set grad":
        number = draw(st.sampled_from(NUMBERS))

        def set_grad(env: Env) -> None:
            env.slots[i].grad = ab.full_like(env.slots[i], number)  # type: ignore[union-attr]

        return sketch.step(f"s{i}.grad = ab.full_like(s{i}, {number})", set_grad, (i,))
    if kind == "read grad":  # the .grad itself, which a later backward accumulates into in place
        k = sketch.add(sketch.shape(i), False)

        def read_grad(env: Env) -> None:
            env.slots.append(env.slots[i].grad)  # type: ignore[union-attr]

        return sketch.step(f"s{k} = s{i}.grad", read_grad, (i,), outputs=1)
    if kind == "clear grad":

        def clear_grad(env: Env) -> None:
            env.slots[i].grad = None  # type: ignore[union-attr]

        return sketch.step(f"s{i}.grad = None", clear_grad, (i,))
    if kind == "requires_grad_":
        sketch.graph[i] = True

        def requires_grad(env: Env) -> None:
            env.slots[i].requires_grad_()  # type: ignore[union-attr]

        return sketch.step(f"s{i}.requires_grad_()", requires_grad, (i,))
    sketch.shapes[i] = None

    def delete(env: Env) -> None:
        env.slots[i] = None

    return sketch.step(f"del s{i}", delete, (i,))


KINDS = [_view, _compute, _write, _gradients, _parameter]


@st.composite
def programs(draw: Any) -> Program:
    leaves = draw(st.lists(st.tuples(st.sampled_from(SHAPES), st.booleans()), min_size=2, max_size=4))
    program = Program(leaves, draw(st.integers(0, 2**16)))
    sketch = Sketch(leaves)
    for _ in range(draw(st.integers(1, MAX_STEPS))):
        sketch.no_grad = draw(st.integers(0, 3)) == 0  # one step in four under no_grad
        step = draw(st.sampled_from(KINDS))(draw, sketch)
        if step is not None:
            program.steps.append(step)
    return program


# -- the comparison ----------------------------------------------------------------------------


def _assert_same_slots(want: Run, got: Run, library: str) -> None:
    """Every slot as numpy left it: empty or not, values, dtype, requires_grad, .grad."""
    assert len(got.slots) == len(want.slots)
    for k, (w, g) in enumerate(zip(want.slots, got.slots, strict=True)):
        where = f"s{k} on {library}"
        assert (g is None) == (w is None), where
        if w is None or g is None:
            continue
        (w_value, w_dtype, w_grad_on, w_grad), (g_value, g_dtype, g_grad_on, g_grad) = w, g
        assert (g_dtype, g_grad_on) == (w_dtype, w_grad_on), f"{where}: dtype, requires_grad"
        np.testing.assert_allclose(g_value, w_value, rtol=RTOL, atol=ATOL, err_msg=f"{where}: value")
        assert (g_grad is None) == (w_grad is None), f"{where}: .grad is None on one library only"
        if w_grad is not None and g_grad is not None:
            np.testing.assert_allclose(g_grad, w_grad, rtol=RTOL, atol=ATOL, err_msg=f"{where}: .grad")


def compare(program: Program, library: str) -> str | None:
    """Fail where ``library`` completes with other numbers than numpy's; return a note where
    numpy refused a step that ``library`` took (no numpy number to hold it to)."""
    want, got = run(program, "numpy"), run(program, library)
    for k, (step, w, g) in enumerate(zip(program.steps, want.outcomes, got.outcomes, strict=True)):
        if w == g or (w not in ("ok", "skipped") and g not in ("ok", "skipped")):
            continue  # both did it, or both refused it (each in its own words)
        if w in ("ok", "skipped"):
            return None  # the other library refused a step numpy took: allowed, the rest incomparable
        # numpy refused a step the other library took: there is no numpy number to hold it to.
        # Seen so far: writes through arrays numpy marks read-only (a detach(), a view made under
        # no_grad of a graph tensor), which torch takes and counts; and a backward that numpy
        # refuses for a saved tensor written since, on a node the other library's walk never runs
        # because it leads to no requested input (its gradients are right).
        what = "computed gradients" if step.gradients else "took it"
        return f"numpy refused step {k} ({w.split(':')[0]}), {library} {what}"
    _assert_same_slots(want, got, library)
    return None


@pytest.mark.parametrize("library", LIBRARIES)
@given(program=programs())
def test_a_program_of_views_and_writes_gives_numpys_numbers_or_raises(library: str, program: Program) -> None:
    note = compare(program, library)
    if note is not None:
        event(note)


# -- divergences the fuzzer found ---------------------------------------------------------------
#
# Each one pinned as a short program, so that every run tests it, not only one where the fuzzer
# happens to draw it. The rule is the fuzzer's: numpy's numbers, or a refusal.

Make = Callable[..., ab.Tensor]


def _numpys_numbers_or_a_refusal(library: str, program: Callable[[Make], list[ab.Tensor]]) -> None:
    """``program(make)`` (``make(values, requires_grad=False)`` a Tensor) gives the same tensors on
    ``library`` as on numpy, or raises a refusal there."""

    def maker(name: str) -> Make:
        return lambda values, requires_grad=False: Env(name).tensor(np.array(values, float), requires_grad)

    want = [_host(t) for t in program(maker("numpy"))]
    try:
        got = [_host(t) for t in program(maker(library))]
    except REFUSALS:
        return
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(g, w, rtol=RTOL, atol=ATOL, err_msg=f"result {k} on {library}")


WRITES: dict[str, Callable[[ab.Tensor], Any]] = {
    "+=": lambda t: t.__iadd__(1.0),
    "add_": lambda t: t.add_(1.0),
    "setitem": lambda t: t.__setitem__(0, 5.0),
    "sgd": lambda t: ab.optim.SGD([t], lr=0.5).step(),
}


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_into_a_tensor_reaches_its_reversed_view(library: str, write: str) -> None:
    # torch has no negative strides, so `v = t[::-1]` is a copy there. autobp refuses writes into v
    # (docs/arrays.md), and now writes into t while v lives (storage.live_copy): before, v kept
    # the old values without an error, where numpy's v is a view and sees the write
    # (t = [1, 2, 3]; v = t[::-1]; t += 1: v is [4, 3, 2] on numpy, was [3, 2, 1] on torch).
    def program(make: Make) -> list[ab.Tensor]:
        t = make([1.0, 2.0, 3.0], requires_grad=write == "sgd")
        t.grad = ab.full_like(t, 1.0)  # (what SGD steps by)
        v = t[::-1]
        with ab.no_grad():
            WRITES[write](t)
        return [t, v]

    _numpys_numbers_or_a_refusal(library, program)


@pytest.mark.parametrize("library", LIBRARIES)
@pytest.mark.parametrize("how", ["second backward", "set by hand", "zero_grad", "a view of it"])
def test_a_reference_to_grad_sees_what_backward_and_zero_grad_write(library: str, how: str) -> None:
    # numpy adds a second backward's gradient into .grad's own array, and zero_grad(set_to_none=False)
    # zeroes it there, as PyTorch does (docs/trust.md), so `g = w.grad` taken before sees the total or
    # the zeros. On the other libraries .grad was rebound to a new Tensor, and g kept the old
    # gradient without an error (second backward: g is [2, 2] on numpy, was [1, 1] on torch). A
    # view of .grad (which shares its version counter) sees the sum too: the deep fuzzer found it
    # rebound once views kept .grad from being written.
    def program(make: Make) -> list[ab.Tensor]:
        w = make([1.5, 0.5], requires_grad=True)
        if how == "set by hand":
            w.grad = ab.full_like(w, 0.5)
        else:
            w.sum().backward()
        g = w.grad
        if how == "a view of it":
            with ab.no_grad():
                g = w.grad[0:1]  # type: ignore[index]
        if how == "zero_grad":
            ab.optim.SGD([w], lr=0.5).zero_grad(set_to_none=False)
        else:
            w.sum().backward()
        assert g is not None and w.grad is not None
        return [g, w.grad]

    _numpys_numbers_or_a_refusal(library, program)


@pytest.mark.parametrize("library", LIBRARIES)
def test_an_augmented_assignment_keeps_the_grad_of_a_constant(library: str) -> None:
    # `c += 1` writes c in place on numpy and torch, keeping the .grad set on it; on array-api-strict
    # it rebinds c to a new Tensor, whose .grad was None, without an error (rebound now carries it).
    def program(make: Make) -> list[ab.Tensor]:
        c = make([1.0, 2.0])
        c.grad = ab.full_like(c, 0.5)
        c += 1.0
        assert c.grad is not None, "c.grad was lost"
        return [c, c.grad]

    _numpys_numbers_or_a_refusal(library, program)
