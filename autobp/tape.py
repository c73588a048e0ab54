"""Taping: record a scalar function and its gradient once, then replay them as plain numpy calls.

``value_and_grad(func)`` computes what ``autobp.functional.value_and_grad`` computes, bit for
bit, but pays the define-by-run bookkeeping (Tensors, nodes, the engine's walk) once per input
signature (shapes, dtypes, static arguments) instead of once per call. The first call *traces*:
``func`` runs as usual and the engine differentiates it with ``create_graph=True``, so that
every op of the forward and of the backward goes through an autobp op; each op call is written
on a tape (its array forward and which arrays it read). The tape becomes a straight-line Python
function of the ops' array forwards (``Taped.source`` shows it); later calls run it on the new
input arrays, with no Tensor, node or walk in between. Classic AD calls this taping (ADOL-C);
``jax.jit`` traces the same way.

A tape replays only what it saw. ``func`` must compute its result with autobp ops on its
arguments: an array made any other way (``t.numpy() * 2``, a Python ``if`` on a value, a global
that changes) is frozen at its traced value. So the first replay of each signature is checked
against an eager run, bit for bit, and a difference raises ``TapeError`` instead of returning
wrong numbers. Ops whose gradient depends on the values in ways a tape cannot see (``max``,
``min``, ``prod``, ``std``, an index computed from the inputs) make the function run eagerly
for that signature: correct, without the speed-up. A first-order ``backward``/``grad`` and
in-place methods inside a taped function are refused while tracing. Hooks run while tracing, and
the ops they apply are replayed; anything else they do (printing, ``retain_grad``) happens once.

Replays run with numpy's floating-point warnings off, as the engine's backward walk does: the
values are the eager ones, inf and nan included.

>>> import autobp as ab
>>> f = ab.tape.value_and_grad(lambda w, x: ((w * x).sum() - 1.0) ** 2)
>>> value, g = f(ab.tensor([1.0, 2.0]), ab.tensor([3.0, 4.0]))
>>> value.item(), g.tolist()
(100.0, [60.0, 80.0])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from autobp import engine, functional, graph
from autobp.graph import TapeError
from autobp.ops.registry import OpDef, describe
from autobp.tensor import Tensor

__all__ = ["TapeError", "Taped", "value_and_grad", "is_tracing"]

# Tapes kept per taped function, one per signature: a training loop meets one or two (the last,
# smaller mini-batch); the oldest is dropped beyond this.
MAX_TAPES = 8

_NEW = object()  # a signature not traced yet


def is_tracing() -> bool:
    """Whether a taped function is being traced now (its op calls go on a tape)."""
    return graph._mode.tape is not None


class _Recorder:
    """Collects op calls while a function is traced (installed as ``graph._mode.tape``).

    Slots number every array a replay holds: the inputs first, then constants and op results
    in the order they appear. An argument is known by identity: the array of an input or of a
    recorded result; anything else is a constant, kept by reference.
    """

    def __init__(self, inputs: list[np.ndarray]) -> None:
        self.n_inputs = len(inputs)
        self.values: list[Any] = list(inputs)  # keeps every array alive, so no two share an id
        self.made_by: list[int | None] = [None] * len(inputs)  # the step that computes each slot
        self.slots: dict[int, int] = {id(array): k for k, array in enumerate(inputs)}
        self.steps: list[tuple[OpDef, tuple[int, ...], Mapping[str, Any], int]] = []
        self.untapeable: str | None = None  # why the function must run eagerly, if it must

    def slot(self, value: Any) -> int:
        array = value.data if isinstance(value, Tensor) else value
        known = self.slots.get(id(array))
        return known if known is not None else self._add(array, None)

    def computed(self, k: int) -> bool:
        """Whether slot ``k`` is an input or an op's result (else a constant, kept by reference)."""
        return k < self.n_inputs or self.made_by[k] is not None

    def _add(self, array: Any, step: int | None) -> int:
        self.slots[id(array)] = len(self.values)
        self.values.append(array)
        self.made_by.append(step)
        return len(self.values) - 1

    def record(self, opdef: OpDef, args: tuple[Any, ...], kwargs: Mapping[str, Any], out: Tensor) -> None:
        """Called by every op while tracing, after its forward ran."""
        if any(self._tracked(value) for value in kwargs.values()):
            self.untapeable = f"a keyword argument of '{opdef.name}' is computed from the inputs"
        refs = tuple([self.slot(value) for value in args])
        self.steps.append((opdef, refs, kwargs, self._add(out.data, len(self.steps))))

    def _tracked(self, value: Any) -> bool:
        """Whether a keyword value holds an input or a computed array (a tape would freeze it)."""
        if isinstance(value, tuple | list):
            return any(self._tracked(v) for v in value)
        if isinstance(value, Tensor | np.ndarray):
            k = self.slots.get(id(value.data if isinstance(value, Tensor) else value))
            return k is not None and self.computed(k)
        return False


def value_and_grad(func: Callable[..., Tensor], argnums: int | tuple[int, ...] = 0) -> Taped:
    """``functional.value_and_grad`` on a tape: ``(func(*args), d func / d args[argnums])``.

    ``func`` takes positional arguments and returns a scalar Tensor. Tensors and numpy arrays
    among the arguments are the tape's inputs and reach ``func`` as Tensors; their values may
    change from call to call. Any other argument is static: a new value is traced anew.
    Returns Tensors: the value, and one gradient for an int ``argnums`` or a tuple of them
    (``Taped.arrays`` returns numpy arrays). Shapes: each gradient has its argument's shape;
    differentiated arguments are floating-point.

    Raises ``TapeError`` when ``func`` does what a tape cannot replay (module docstring).
    """
    return Taped(func, argnums)


class Taped:
    """A taped ``value_and_grad`` (made by ``value_and_grad``): one tape per input signature."""

    def __init__(self, func: Callable[..., Tensor], argnums: int | tuple[int, ...] = 0) -> None:
        self.func, self.argnums = func, argnums
        self._positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        self._tapes: dict[tuple[Any, ...], _Tape | None] = {}  # None: this signature runs eagerly
        self._ready: dict[tuple[Any, ...], _Tape] = {}  # the tapes whose first replay was checked

    def __repr__(self) -> str:
        return f"<taped value_and_grad of {getattr(self.func, '__qualname__', self.func)}>"

    def __call__(self, *args: Any) -> tuple[Tensor, Any]:
        value, grads = self.arrays(*args)
        wrapped = tuple([Tensor._wrap(g) for g in grads])
        return Tensor._wrap(value), wrapped[0] if isinstance(self.argnums, int) else wrapped

    def arrays(self, *args: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        """A call with numpy arrays for results: the value, and a list of the gradients."""
        if graph._mode.tape is not None:  # its replay would hand the outer trace untracked arrays
            raise TapeError("tape: a taped function was called while another one was being traced")
        arrays, signature = _inputs(args)
        ready = self._ready.get(signature)
        if ready is not None:
            return ready.replay(arrays)  # the usual call, kept short
        tape = self._tapes.get(signature, _NEW)
        if tape is _NEW:  # a new signature: trace it, and answer with the traced tape
            tape = None if graph._anomaly_hook is not None else self._trace(args, arrays)
            if len(self._tapes) >= MAX_TAPES:
                oldest = next(iter(self._tapes))
                del self._tapes[oldest]
                self._ready.pop(oldest, None)
            self._tapes[signature] = tape
            if tape is not None:
                return tape.replay(arrays)
        if not isinstance(tape, _Tape):  # anomaly mode, or an op whose gradient reads values
            value, grads = self._eager(args, arrays)
            return value.data, [g.data for g in grads]
        # The first replay on new values is compared with an eager run: frozen values show.
        value, result = tape.replay(arrays)
        self._compare(args, arrays, value, result)
        self._ready[signature] = tape
        return value, result

    def source(self, *args: Any) -> str:
        """The program a call with these arguments replays (tracing their signature if new):
        one line per op, e.g. ``s6 = f0(s2, s4)  # matmul``. Runs one call to get there."""
        self.arrays(*args)
        tape = self._tapes.get(_inputs(args)[1])
        return tape.source if tape is not None else "# no tape: this signature runs eagerly"

    def _trace(self, args: tuple[Any, ...], arrays: list[np.ndarray]) -> _Tape | None:
        """Run ``func`` and its create_graph backward while recording; None if it cannot be taped."""
        wanted = _wanted(self._positions, args, self.argnums)
        call_args = _as_tensors(args, arrays, wanted)
        leaves = [arg for arg in call_args if isinstance(arg, Tensor)]
        recorder = _Recorder(arrays)
        mode = graph._mode
        mode.tape = recorder
        try:
            with graph.enable_grad():
                loss = self.func(*call_args)
                if not isinstance(loss, Tensor) or loss.size != 1:
                    shown = describe(loss) if isinstance(loss, Tensor) else type(loss).__name__
                    raise TypeError(f"tape.value_and_grad: func must return a scalar Tensor, got {shown}")
                grads = engine.grad(loss, [leaves[k] for k in wanted], create_graph=True)
        finally:
            mode.tape = None
        if recorder.untapeable is not None:
            return None
        return _Tape(recorder, [recorder.slot(loss), *(recorder.slot(g) for g in grads)])

    def _eager(self, args: tuple[Any, ...], arrays: list[np.ndarray]) -> tuple[Tensor, tuple[Tensor, ...]]:
        """The same call without a tape: ``func`` sees the same Tensors (sharing the arrays)."""
        value, grads = functional.value_and_grad(self.func, self._positions)(*_as_tensors(args, arrays, []))
        return value, grads

    def _compare(self, args: tuple[Any, ...], arrays: list[np.ndarray], value: Any, grads: list[Any]) -> None:
        """Run ``func`` eagerly on the same arguments; any difference from the replay is an error."""
        eager_value, eager_grads = self._eager(args, arrays)
        names = ["value", *(f"gradient of argument {p}" for p in self._positions)]
        expected = [eager_value.data, *(g.data for g in eager_grads)]
        for name, result, want in zip(names, [value, *grads], expected, strict=True):
            got = np.asarray(result)
            if got.shape != want.shape or got.dtype != want.dtype or not np.array_equal(got, want, equal_nan=True):
                raise TapeError(
                    f"tape: replaying the function gave a different {name} than running it ({describe(got)} "
                    f"vs {describe(want)}): it computes something the tape cannot see (an array made "
                    "without autobp ops, or Python control flow on values). Use "
                    "autobp.functional.value_and_grad for it."
                )


def _is_array(value: Any) -> bool:
    """Whether an argument is a tape input: a Tensor, a numpy array or a numpy scalar."""
    return isinstance(value, Tensor | np.ndarray | np.generic)


def _inputs(args: tuple[Any, ...]) -> tuple[list[np.ndarray], tuple[Any, ...]]:
    """The array inputs, and the signature a tape is kept under: shapes, dtypes, static values,
    and which arguments are the same array (a tape reads each array from one slot)."""
    arrays: list[np.ndarray] = []
    key: list[Any] = []  # shape, dtype, shape, dtype, ...: flat, it hashes and compares faster
    for arg in args:
        if isinstance(arg, Tensor):
            arg = arg.data
        elif type(arg) is not np.ndarray:
            if not isinstance(arg, np.ndarray | np.generic):
                key.append(("static", arg))
                continue
            # A numpy scalar or an ndarray subclass: the plain array a Tensor would hold (the
            # tape knows inputs by identity, and Tensors hold plain arrays).
            arg = np.asarray(arg)
        arrays.append(arg)
        key.append(arg.shape)
        key.append(arg.dtype)
    if len(set(map(id, arrays))) != len(arrays):
        ids = [id(a) for a in arrays]
        key.append(("aliases", tuple(ids.index(i) for i in ids)))
    return arrays, tuple(key)


def _wanted(positions: tuple[int, ...], args: tuple[Any, ...], argnums: Any) -> list[int]:
    """The differentiated arguments, as indices among the array arguments."""
    array_positions = [i for i, arg in enumerate(args) if _is_array(arg)]
    wanted = []
    for p in positions:
        if not -len(args) <= p < len(args) or p % len(args) not in array_positions:
            shown = ", ".join(describe(a) for a in args)
            raise TypeError(f"tape.value_and_grad: argnums {argnums} must name Tensor or array arguments: ({shown})")
        array = np.asarray(args[p].data if isinstance(args[p], Tensor) else args[p])
        if array.dtype.kind != "f":
            raise TypeError(
                f"tape.value_and_grad: argument {p % len(args)} ({describe(array)}) is differentiated "
                "but not floating-point"
            )
        wanted.append(array_positions.index(p % len(args)))
    return wanted


def _as_tensors(args: tuple[Any, ...], arrays: list[np.ndarray], leaves: list[int]) -> list[Any]:
    """The arguments as ``func`` sees them: the input ``arrays`` as Tensors sharing them (the tape
    knows them by identity), those at ``leaves`` requiring grad; static arguments as they are."""
    tensors, k = [], 0
    for arg in args:
        if _is_array(arg):
            tensors.append(Tensor._wrap(arrays[k], k in leaves))
            k += 1
        else:
            tensors.append(arg)
    return tensors


class _Tape:
    """One traced signature, compiled into a straight-line Python function of numpy calls.

    ``source`` holds the program, one line per op: ``s7 = f0(s2, s4)`` reads slots (``s``: inputs
    and results, ``c``: constants) and calls op forwards (``f``) with keywords (``k``) bound as
    constants. Straight-line code with local variables costs the interpreter far less per call
    than a loop over steps.
    """

    def __init__(self, recorder: _Recorder, results: list[int]) -> None:
        n_inputs = recorder.n_inputs
        needed = _needed(recorder, results)
        # A slot is constant unless it is an input or computed from one: a step that reads only
        # constants (the backward's seed times 0.5, say) is not replayed; its traced value stays.
        constant = [not recorder.computed(k) for k in range(len(recorder.values))]
        namespace: dict[str, Any] = {}
        same: dict[int, int] = {}  # slots that are another slot's array (a product with ones)

        def name(k: int) -> str:
            k = same.get(k, k)
            if constant[k]:
                namespace[f"c{k}"] = recorder.values[k]
                return f"c{k}"
            return f"s{k}"

        body = []
        for i, (opdef, refs, kwargs, out) in enumerate(recorder.steps):
            if all(constant[k] for k in refs):
                constant[out] = True
                continue
            if out not in needed:
                continue  # computed while tracing, but no result depends on it
            kept = _times_one(opdef, refs, out, recorder, constant)
            if kept is not None and out not in results:  # a result must stay an array of its own
                same[out] = same.get(kept, kept)
                continue
            namespace[f"f{i}"] = getattr(opdef.forward, "quiet_body", opdef.forward)  # the replay is quiet
            arguments = [name(k) for k in refs]
            for j, (key, value) in enumerate(kwargs.items()):
                namespace[f"k{i}_{j}"] = value
                arguments.append(f"{key}=k{i}_{j}")  # keys are keyword names the forward accepted
            body.append(f"    s{out} = f{i}({', '.join(arguments)})  # {opdef.name}")
        inputs = "".join(f"s{k}, " for k in range(n_inputs))
        self.source = "\n".join(
            [
                "def replay(inputs):",
                f"    {inputs}= inputs" if n_inputs else "    pass",
                *body,
                f"    return {name(results[0])}, [{', '.join(name(k) for k in results[1:])}]",
            ]
        )
        # Generated from op names, slot numbers and keyword names only; values live in the namespace.
        exec(compile(self.source, "<autobp tape>", "exec"), namespace)
        # Quiet as the engine's backward is (edges give inf/nan without warnings); errstate as a
        # decorator costs half of a with block per call.
        replay = namespace["replay"]
        self.replay: Callable[[list[np.ndarray]], tuple[Any, list[Any]]] = np.errstate(all="ignore")(replay)


def _times_one(opdef: OpDef, refs: tuple[int, ...], out: int, recorder: _Recorder, constant: list[bool]) -> int | None:
    """The operand a ``mul`` step returns unchanged, if it multiplies by a constant of ones.

    ``x * 1`` is ``x`` exactly for real numbers in IEEE arithmetic (not for complex ones: the
    imaginary part's ``inf * 0`` is nan); the step is an identity when, besides, ``x`` has the
    product's shape and dtype. (A square's gradient under a ``0.5 *`` is one of these.)
    """
    if opdef.forward is not np.multiply:
        return None
    for one, kept in (refs, refs[::-1]):
        if constant[one] and not constant[kept]:
            factor, operand, product = (recorder.values[k] for k in (one, kept, out))
            same_array = isinstance(operand, np.ndarray) and operand.shape == product.shape
            real = same_array and operand.dtype == product.dtype and product.dtype.kind in "fiu"
            if real and np.all(np.asarray(factor) == 1):
                return kept
    return None


def _needed(recorder: _Recorder, results: list[int]) -> set[int]:
    """The slots the results depend on (dead code: the rest is not replayed)."""
    needed = set(results)
    for _, refs, _, out in reversed(recorder.steps):
        if out in needed:
            needed.update(refs)
    return needed
