"""``Taped``: the callable ``tape.value_and_grad`` returns, with its tapes, guards and fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autobp import engine, functional, functional_args, grad_mode, graph
from autobp.backends import library_of
from autobp.functional_args import filled
from autobp.graph import TapeError
from autobp.ops.registry import describe
from autobp.tape.arguments import StaticNaN, as_tensors, inputs_and_signature, is_array, promoted, wanted_leaves
from autobp.tape.compile import Tape, compiled, fresh_array
from autobp.tape.trace import Recorder, bytes_of, trace_inputs
from autobp.tensor import Tensor

__all__ = ["Taped", "MAX_TAPES", "MAX_TRACES", "loss_of"]

# Signatures kept per taped function: a training loop meets one or two (the last, smaller
# mini-batch); the oldest is dropped beyond this.
MAX_TAPES = 8
# Traces per signature: a guard that fails (a branch taken the other way, a closed-over Tensor
# changed) traces the call anew; after this many, the signature runs eagerly for good.
MAX_TRACES = 4


class _Signature:
    """The tapes of one input signature, newest first, or why it runs eagerly."""

    __slots__ = ("tapes", "checked", "eager", "shown", "traces")

    def __init__(self, shown: str) -> None:
        self.tapes: list[Tape] = []
        self.checked: set[int] = set()  # ids of the tapes whose replay on new values matched eager
        self.eager: str | None = None  # the reason, once the signature runs eagerly
        self.shown = shown  # the arguments, described for eager_reasons
        self.traces = 0


class Taped:
    """A taped ``value_and_grad`` (made by ``value_and_grad``): tapes per input signature.

    ``eager_reasons`` maps each signature that runs eagerly (described by its arguments, e.g.
    ``"float64[3], int 2"``) to the reason; ``source(*args)`` shows the program a call replays.
    """

    _result_name = "gradient"  # what the results after the value are, in errors
    _eager_name = "value_and_grad"  # the eager transform the tape stands for
    _directions = 0  # arguments after func's that are tape inputs (tape.hvp's directions)

    def __init__(self, func: Callable[..., Tensor], argnums: int | tuple[int, ...] = 0) -> None:
        self.func, self.argnums = func, argnums
        self._positions = (argnums,) if isinstance(argnums, int) else tuple(argnums)
        self._signatures: dict[tuple[Any, ...], _Signature] = {}
        self._ready: dict[tuple[Any, ...], Tape] = {}  # a signature's one tape, once checked: the usual call
        self._other_reasons: dict[str, str] = {}  # eager calls that have no signature (a static NaN)

    def __repr__(self) -> str:
        return f"<taped value_and_grad of {getattr(self.func, '__qualname__', self.func)}>"

    @property
    def eager_reasons(self) -> dict[str, str]:
        """Why calls run eagerly: the arguments (described) of each such signature, and the reason."""
        reasons = {entry.shown: entry.eager for entry in self._signatures.values() if entry.eager is not None}
        return {**self._other_reasons, **reasons}

    def __call__(self, *args: Any) -> tuple[Tensor, Any]:
        value, grads = self.arrays(*args)
        wrapped = tuple([Tensor._wrap(g) for g in grads])
        return Tensor._wrap(value), wrapped[0] if isinstance(self.argnums, int) else wrapped

    def arrays(self, *args: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        """A call with arrays for results (of the arguments' library): the value, and a list of the
        gradients (fresh arrays)."""
        return self._arrays(args)

    def _arrays(self, args: tuple[Any, ...]) -> tuple[np.ndarray, list[np.ndarray]]:
        modes = graph._local.modes
        if modes.tape is not None:  # its replay would hand the outer trace untracked arrays
            raise TapeError("tape: a taped function was called while another one was being traced")
        if modes.transforms or modes.forward is not None:
            # A replay's results are constants: an outer transform (or forward mode) would read
            # them as a zero derivative (value_and_grad of a function calling one gave [0, 0]).
            raise TapeError(
                "tape: a taped function was called inside a function that autobp.functional differentiates, "
                "or while forward mode is on (a dual level), where its constant results would read as zero "
                "derivatives; call autobp.functional.value_and_grad (or hvp) there"
            )
        try:
            arrays, signature = inputs_and_signature(args, self._positions, self._directions)
        except StaticNaN:
            args = promoted(args, self._positions, self._directions)
            self._checked(args)
            self._other_reasons[_shown(args)] = "a static argument is NaN: no two calls share a tape for it"
            return self._eager(args, _plain(args))
        ready = self._ready.get(signature)
        if ready is not None and not ready.closures:
            try:
                result = ready.replay(arrays)
            except Exception:  # (see _call)
                given = promoted(args, self._positions, self._directions)
                return self._eager(given, inputs_and_signature(given, self._positions, self._directions)[0])
            if result is not None:
                return result  # the usual call, kept short
        given = promoted(args, self._positions, self._directions)
        if given is not args:  # a differentiated argument became the array it is differentiated as
            arrays, signature = inputs_and_signature(given, self._positions, self._directions)
        return self._call(given, arrays, signature)

    def _checked(self, args: tuple[Any, ...]) -> None:
        """Raise for arguments that no call may take; subclasses check theirs (``TapedHvp``)."""

    def _call(self, args: tuple[Any, ...], arrays: list[np.ndarray], signature: tuple[Any, ...]) -> Any:
        """Any call but a replay of a checked tape whose guards hold: find, trace or fall back."""
        self._checked(args)
        given = len(args) - self._directions  # (tape.hvp's directions come last)
        if all(-given <= p < given for p in self._positions):  # (out of range: the eager call says so)
            functional_args.distinct_argnums(self.argnums, self._positions, given, f"tape.{self._eager_name}")
        entry = self._signatures.get(signature)
        if entry is None:
            if len(self._signatures) >= MAX_TAPES:
                oldest = next(iter(self._signatures))
                del self._signatures[oldest]
                self._ready.pop(oldest, None)
            entry = self._signatures[signature] = _Signature(_shown(args))
        if entry.eager is not None:
            return self._eager(args, arrays)
        for tape in entry.tapes:
            try:
                result = tape.run(arrays)
            except Exception:
                # An op or a value check raised on these values: a run raises it too, unless func
                # catches it and goes another way (the trace saw no raise): run it, as it decides.
                return self._eager(args, arrays)
            if result is not None:
                if id(tape) not in entry.checked:
                    if tape.check_due(arrays):
                        # The first replay on values other than the traced ones (which were
                        # compared when traced) is compared with an eager run: frozen values show.
                        self._compare(args, arrays, result, raise_error=True)
                    if tape.traced is None:  # compared, or out of patience
                        entry.checked.add(id(tape))
                if id(tape) in entry.checked and len(entry.tapes) == 1:
                    self._ready[signature] = tape
                return result
        if graph._anomaly_hook is not None:  # anomaly mode: eager while it lasts, traced after
            return self._eager(args, arrays)
        if entry.traces >= MAX_TRACES:
            entry.eager = f"its guards failed on {MAX_TRACES} traces ({_why_missed(entry.tapes[0])})"
            self._ready.pop(signature, None)
            return self._eager(args, arrays)
        traced, reason = self._trace(args, arrays)  # raises as eager does (a bad value): no trace counted
        entry.traces += 1
        try:
            result = traced.run(arrays) if traced is not None else None
        except Exception:  # (the trace ran on these values without a raise: the replay cannot be right)
            result = None
        if traced is None or result is None or not self._compare(args, arrays, result, raise_error=False):
            entry.eager = reason or "its replay on the traced values differs from running it"
            self._ready.pop(signature, None)
            return self._eager(args, arrays)
        entry.tapes.insert(0, traced)
        if len(entry.tapes) > 1:
            self._ready.pop(signature, None)
        return result

    def source(self, *args: Any) -> str:
        """The program a call with these arguments replays (tracing their signature if new):
        one line per op, e.g. ``s6 = f0(s2, s4)  # matmul``. Runs one call to get there."""
        self._arrays(args)
        given = promoted(args, self._positions, self._directions)
        try:
            entry = self._signatures.get(inputs_and_signature(given, self._positions, self._directions)[1])
        except StaticNaN:
            entry = None
        if entry is None or entry.eager is not None or not entry.tapes:
            reason = entry.eager if entry is not None else "a static argument is NaN"
            return f"# no tape: this signature runs eagerly: {reason}"
        return entry.tapes[0].source

    def _trace(self, args: tuple[Any, ...], arrays: list[np.ndarray]) -> tuple[Tape | None, str | None]:
        """Run ``func`` and its create_graph backward while recording: a tape, or why there is none."""
        wanted = wanted_leaves(self._positions, args, self.argnums)
        inputs = trace_inputs(arrays)
        call_args = as_tensors(args, inputs, wanted)
        leaves = [arg for arg in call_args if isinstance(arg, Tensor)]
        recorder = Recorder(inputs, leaves, arrays)
        mode = graph._local.modes
        mode.tape = recorder
        try:
            with grad_mode.enable_grad():
                loss = loss_of(self.func(*call_args), "tape.value_and_grad")
                # A value that depends on no differentiated argument has no graph: zero gradients.
                found = (
                    engine.grad(loss, [leaves[k] for k in wanted], create_graph=True, allow_unused=True)
                    if loss.requires_grad
                    else [None] * len(wanted)
                )
        finally:
            mode.tape = None
        if recorder.untapeable is not None:
            return None, recorder.untapeable
        # An argument the result does not depend on gets zeros, as functional.value_and_grad gives.
        grads = [g if g is not None else filled(leaves[k], 0) for g, k in zip(found, wanted, strict=True)]
        tape, unlike = compiled(recorder, [recorder.slot(loss), *(recorder.slot(g) for g in grads)])
        if tape is None:
            return None, unlike
        del recorder, loss, found, grads, call_args, leaves, inputs  # the trace's graph: Tensors only it held go
        tape.settle()
        return tape, None

    def _eager(self, args: tuple[Any, ...], arrays: list[np.ndarray]) -> tuple[Any, list[Any]]:
        """The same call without a tape: ``func`` sees the same Tensors (sharing the arrays)."""
        value, grads = functional.value_and_grad(self.func, self._positions)(*as_tensors(args, arrays, []))
        results = _fresh([value.data, *(g.data for g in grads)], arrays)
        return results[0], results[1:]

    def _compare(self, args: tuple[Any, ...], arrays: list[np.ndarray], result: Any, raise_error: bool) -> bool:
        """Whether an eager run gives the replay's results bit for bit; else False, or TapeError."""
        value, grads = result
        eager_value, eager_grads = self._eager(args, arrays)
        names = ["value", *(f"{self._result_name} of argument {p}" for p in self._positions)]
        for name, got, want in zip(names, [value, *grads], [eager_value, *eager_grads], strict=True):
            if isinstance(got, np.ndarray | np.generic) and isinstance(want, np.ndarray | np.generic):
                got, want = np.asarray(got), np.asarray(want)
            if (
                library_of(got) is not library_of(want)
                or tuple(got.shape) != tuple(want.shape)
                or got.dtype != want.dtype
                or bytes_of(got) != bytes_of(want)
            ):
                if not raise_error:
                    return False
                raise TapeError(
                    f"tape: replaying the function gave a different {name} than running it ({describe(got)} "
                    f"vs {describe(want)}): it computes something the tape cannot see (an array made "
                    "without autobp ops, such as from .data, or a global that changed). Use "
                    f"autobp.functional.{self._eager_name} for it."
                )
        return True


def loss_of(output: Any, what: str) -> Tensor:
    """``func``'s output as ``functional`` takes it (a one-element Tensor, or a tuple of one),
    with its errors: a ``TypeError`` for no Tensor, a ``ValueError`` for another size."""
    _, outputs = functional_args.as_tensors(output, what, "func's output")
    functional_args.check_scalar(outputs, what)
    return outputs[0]


def _fresh(results: list[Any], inputs: list[np.ndarray]) -> list[Any]:
    """Each result as an array of its own: a view, a read-only array, an input or a repeat is copied."""
    fresh: list[Any] = []
    for result in results:
        if not isinstance(result, np.ndarray) and library_of(result) is not None:  # another library's array
            fresh.append(fresh_array(result, *inputs, *fresh))
            continue
        if isinstance(result, np.ndarray) and (
            result.base is not None
            or not result.flags.writeable
            or any([result is x for x in inputs])
            or any([result is x for x in fresh])
        ):
            result = result.copy()
        fresh.append(result)
    return fresh


def _plain(args: tuple[Any, ...]) -> list[Any]:
    arrays = [a.data if isinstance(a, Tensor) else a for a in args if is_array(a)]
    return [a if library_of(a) is not None else np.asarray(a) for a in arrays]


def _shown(args: tuple[Any, ...]) -> str:
    return ", ".join(describe(a) for a in args)


def _why_missed(tape: Tape) -> str:
    stale = tape.stale_closure()
    if stale is not None:
        return stale
    return "guarded Python reads: " + ", ".join(tape.guards) if tape.guards else "no guard recorded"
