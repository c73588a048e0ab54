"""Compiling a trace: a straight-line Python function of array calls, with its guards inline."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from autobp.backends import describe, library_of
from autobp.backends.numpy_errors import quiet
from autobp.graph import copy_array
from autobp.ops.registry import _NUMPY_LIKE, OpDef
from autobp.tape.numpy_forms import factor_of, form_of
from autobp.tape.program import INTO, Liveness
from autobp.tape.trace import Recorder, bytes_of
from autobp.tensor import Tensor

__all__ = ["Tape", "CHECK_PATIENCE", "compiled"]

# Replays on the traced values that may pass before a tape counts as checked without a replay
# on other values (each costs a comparison of the inputs with the traced ones, not an eager run).
CHECK_PATIENCE = 3


class Tape:
    """One traced signature, compiled into a straight-line Python function of array calls (the
    forwards the eager call took: numpy's fast ones for numpy arrays, general ones otherwise).

    ``source`` holds the program, one line per op: ``s7 = f0(s2, s4)`` reads slots (``s``: inputs
    and results, ``c``: constants) and calls op forwards (``f``) with keywords (``k``) bound as
    constants. Straight-line code with local variables costs the interpreter far less per call
    than a loop over steps. A guard line (``if not s9: return None``) follows the step whose value
    Python read while tracing: the replay gives up (returns None) as soon as the outcome of that
    read would differ. ``run`` first checks that every Tensor the trace read as a constant still
    holds the same array at the same version.

    The results are fresh arrays on every call: a result that is an input, a constant, another
    result, or a view (``.base`` set) is copied.
    """

    def __init__(self, recorder: Recorder, results: list[int]) -> None:
        self.source, namespace, same = _program(recorder, results, plain=False)
        slot = _layout_differs(self.source, namespace, recorder, same)
        # Why this tape calls each forward plainly (None: it takes the shortcuts).
        self.plain_because: str | None = None
        if slot is not None:
            # A shortcut (an operand taking a result, a form, a product with ones left out) gave
            # an array laid out otherwise than the eager call's: the same numbers, but a later
            # sum or product adds them in another order. The plain program calls what eager did.
            self.source, namespace, same = _program(recorder, results, plain=True)
            self.plain_because = f"slot s{slot} was laid out otherwise than when traced"
            if _layout_differs(self.source, namespace, recorder, same) is not None:  # (the forwards alone: never seen)
                raise UnlikeEager(f"its replay lays slot s{slot} out otherwise than the eager call")
        # Quiet as the engine's backward is (edges give inf/nan without warnings).
        self.replay: Callable[[list[np.ndarray]], tuple[Any, list[Any]] | None] = quiet(namespace["replay"])
        # Tensors read as constants: (tensor, its array, its version) at the trace. (The tape
        # keeps the array alive, so `is` compares identities that cannot be reused.) Held weakly
        # until ``settle``: one made while tracing and dropped since cannot change any more.
        self._closure_refs = [(weakref.ref(t), array, version) for t, array, version in recorder.closures.values()]
        self.closures: list[tuple[Tensor, Any, int]] = []
        # The traced inputs (copies: callers update arrays in place), until a replay on other values is checked.
        self.traced: list[Any] | None = [copy_array(a) for a in recorder.values[: recorder.n_inputs]]
        self.patience = CHECK_PATIENCE
        self.guards = [f"{how} of a {describe_slot(recorder, k)} value" for _, k, _, how in recorder.guards]

    def settle(self) -> None:
        """Keep the guards of the Tensors read as constants that are still alive once the trace's
        own references are gone (the engine's seed, a constant made inside ``func``: gone)."""
        alive = [(ref(), array, version) for ref, array, version in self._closure_refs]
        self.closures = [(t, array, version) for t, array, version in alive if t is not None]
        self._closure_refs = []

    def check_due(self, arrays: list[np.ndarray]) -> bool:
        """Whether this replay is to be compared with an eager run: the first on values other than
        the traced ones. Calls repeating the traced values (compared when traced) wait for it up
        to ``CHECK_PATIENCE`` times; then the tape counts as checked."""
        if self.traced is None:
            return True
        if any([bytes_of(a) != bytes_of(t) for a, t in zip(arrays, self.traced, strict=True)]):
            self.traced = None
            return True
        self.patience -= 1
        if not self.patience:
            self.traced = None  # (the caller then marks the tape checked without comparing)
        return False

    def run(self, arrays: list[np.ndarray]) -> tuple[Any, list[Any]] | None:
        """The replay on ``arrays``, or None when a guard fails (the caller traces anew or runs eagerly)."""
        for tensor, array, version in self.closures:  # O(number of such Tensors): usually none
            if tensor.data is not array or tensor._version != version:
                return None
        return self.replay(arrays)

    def stale_closure(self) -> str | None:
        """Which Tensor read as a constant changed since the trace, if one did."""
        for tensor, array, version in self.closures:
            if tensor.data is not array or tensor._version != version:
                return (
                    f"a Tensor the function reads but does not take as an argument ({describe(tensor)}) "
                    "was changed in place or given a new array"
                )
        return None


def _program(recorder: Recorder, results: list[int], plain: bool) -> tuple[str, dict[str, Any], dict[int, int]]:
    """The replay's source, the namespace it runs in (``Tape``), and the slots that are another
    slot's array (``{product: operand}``: a product with ones left out). ``plain``: call each op's
    forward as the eager call did, without the shortcuts (``numpy_forms``, results written into
    dead operands, products with ones left out) that may lay an array out otherwise."""
    n_inputs = recorder.n_inputs
    guards_at: dict[int, list[str]] = {}
    for g, (kind, k, outcome, how) in enumerate(recorder.guards):
        # (another library's array has no tobytes: bytes_of copies its values to the host)
        read = "{}.tobytes()" if type(recorder.values[k]) is np.ndarray else "bytes_of({})"
        if kind == "truth":
            line = f"if {'not ' if outcome else ''}{{}}: return None  # guard: {how} gave {outcome}"
        elif kind == "array":  # an array from outside the tape: its shape, dtype and bytes
            line = f"if ({{0}}.shape, {{0}}.dtype, {read.format('{0}')}) != g{g}: return None  # guard: {how}"
        else:
            line = f"if {read} != g{g}: return None  # guard: {how} read these bytes"
        guards_at.setdefault(k, []).append(line)
    # A slot is constant unless it is an input or computed from one: a step that reads only
    # constants (the backward's seed times 0.5, say) is not replayed; its traced value stays.
    # Unless it reads an array the function passed in as it is (``Recorder.live``: a numpy
    # array it closes over, which its owner may change in place): that step is replayed, on
    # the array as it is then, as an eager call reads it.
    constant = [not recorder.computed(k) for k in range(len(recorder.values))]
    folded = [constant[k] and k not in recorder.live for k in range(len(recorder.values))]
    namespace: dict[str, Any] = {"g" + str(g): guard[2] for g, guard in enumerate(recorder.guards)}
    namespace["bytes_of"], namespace["fresh"], namespace["np"] = bytes_of, fresh_array, np
    factors: set[str] = set()  # the shared factors made so far (``numpy_forms.factor_of``)
    program = Liveness(aliases=not plain)  # which arrays the replay owns, and when each is read last
    same: dict[int, int] = {}  # slots that are another slot's array (a product with ones)

    def name(k: int) -> str:
        k = same.get(k, k)
        if constant[k]:
            namespace[f"c{k}"] = recorder.values[k]
            return f"c{k}"
        return f"s{k}"

    # Guards on the inputs and on arrays from outside the tape (``Recorder._guard_array``) come first.
    guarded_first = [k for k in guards_at if not recorder.computed(k) or k < n_inputs]
    body = [line.format(name(k)) for k in sorted(guarded_first) for line in guards_at[k]]
    # An array from outside the tape read as it is then (``Recorder.live``) keeps its traced shape,
    # dtype and layout, which the traced steps assume: its owner may set ``arr.shape = (2, 1)`` in
    # place, where the replay broadcast otherwise than the traced backward's sums (a gradient of
    # shape (2, 2) for a (2,) input, with no error).
    for k in sorted(recorder.live - set(guards_at)):
        value = recorder.values[k]
        numpy_array = isinstance(value, np.ndarray)
        namespace[f"l{k}"] = (value.shape, value.strides, value.dtype) if numpy_array else (value.shape, value.dtype)
        fields = "{0}.shape, {0}.strides, {0}.dtype" if numpy_array else "{0}.shape, {0}.dtype"
        body.append(f"if ({fields}) != l{k}: return None  # guard: an array from outside the tape".format(name(k)))
    dead = _dead_steps(recorder, results, guards_at)
    for i, (opdef, refs, kwargs, out) in enumerate(recorder.steps):
        if all(folded[k] for k in refs) and i not in recorder.live_steps:
            constant[out] = folded[out] = True  # a guard on it holds by construction; a check raised already
            continue
        if i in dead:
            continue
        # A step no result needs still runs, as it does eagerly: its forward may raise on
        # the values (a value check, an integer power), and a replay must raise alike;
        # unless its op cannot raise on floats (``_dead_steps``).
        # (a live array of ones may change: folded, not constant)
        kept = None if plain else _times_one(opdef, refs, out, recorder, folded)
        if kept is not None and out not in results:  # a result must stay an array of its own
            same[out] = same.get(kept, kept)
        else:
            # The forward the eager call took: numpy's fast one when every operand is numpy's
            # (as the registry decides), the op's general one for another library's arrays.
            numpy_only = all([_numpy_like(recorder.values[k]) for k in refs])
            operands = [name(k) for k in refs]
            values = [recorder.values[k] for k in refs]
            # numpy's calls written out where the traced shapes decide what the forward would do
            factor = factor_of(opdef.name, values, kwargs) if numpy_only and not plain else None
            written = form_of(opdef.name, values, kwargs) if numpy_only and not plain and factor is None else None
            if factor is not None:
                made, product = factor
                d = "d" + operands[1]  # the factor of this operand, made at its first use
                if d not in factors:
                    factors.add(d)
                    body.append(made.format(*operands, d=d))
                program.made(f"s{out}", recorder.values[out])
                into = program.into(operands[:1], values[:1], recorder.values[out])  # (g may take it)
                body.append(f"s{out} = {product.format(*operands, d=d).replace(INTO, into)}  # {opdef.name}")
            elif written is not None:
                body.append(f"s{out} = {written.format(*operands)}  # {opdef.name}")
                program.made(f"s{out}", recorder.values[out])
            else:
                forward = opdef.numpy_forward if numpy_only else opdef.forward
                forward = getattr(forward, "quiet_body", forward)  # the replay is quiet
                namespace[f"f{i}"] = forward
                arguments = list(operands)
                for j, (key, value) in enumerate(kwargs.items()):
                    namespace[f"k{i}_{j}"] = value
                    arguments.append(f"{key}=k{i}_{j}")  # keys are keyword names the forward accepted
                into = program.call(forward, operands, values, kwargs, f"s{out}", recorder.values[out])
                body.append(f"s{out} = f{i}({', '.join(arguments)}{into})  # {opdef.name}")
        body += [line.format(name(out)) for line in guards_at.get(out, ())]
    returned = _fresh_results(recorder, results, constant, name)
    inputs = "".join(f"s{k}, " for k in range(n_inputs))
    ending = f"return {returned[0]}, [{', '.join(returned[1:])}]"
    source = "\n".join(
        [
            "def replay(inputs):",
            f"    {inputs}= inputs" if n_inputs else "    pass",
            *("    " + line for line in program.finished(body, ending)),
            "    " + ending,
        ]
    )
    # Generated from op names, slot numbers and keyword names only; values live in the namespace.
    exec(compile(source, "<autobp tape>", "exec"), namespace)
    return source, namespace, same


def _layout_differs(source: str, namespace: dict[str, Any], recorder: Recorder, same: dict[int, int]) -> int | None:
    """The first slot whose numpy array a replay on the traced inputs lays out (strides) otherwise
    than the trace did, or None. Run once per tape, when it is compiled: a variant of ``source``
    that checks each slot it assigns (and a slot that is another's array, ``same``, has its strides)."""
    values = recorder.values
    for k, kept in same.items():
        if type(values[k]) is np.ndarray and getattr(values[kept], "strides", None) != values[k].strides:
            return k
    checked = []
    for line in source.splitlines():
        checked.append(line)
        match = _ASSIGNED.match(line)
        if match is not None:
            checked.append(f"    _layout({match.group(1)}, {match.group(2)})")

    def layout(array: Any, k: int) -> None:
        traced = values[k]
        if type(array) is np.ndarray and type(traced) is np.ndarray and array.strides != traced.strides:
            raise _LaidOutOtherwise(k)

    scope = {**namespace, "_layout": layout}
    exec(compile("\n".join(checked), "<autobp tape: layouts>", "exec"), scope)
    try:
        # (the traced inputs themselves, whose strides the trace saw: a replay writes into none)
        quiet(scope["replay"])(list(values[: recorder.n_inputs]))
    except _LaidOutOtherwise as differs:
        return int(differs.args[0])
    return None


def compiled(recorder: Recorder, results: list[int]) -> tuple[Tape | None, str | None]:
    """The tape of a trace, or None and why there is none (its replay cannot compute as eagerly)."""
    try:
        return Tape(recorder, results), None
    except UnlikeEager as unlike:
        return None, str(unlike.args[0])


class UnlikeEager(Exception):
    """A compiled tape would not compute as the eager call does; args: why (the signature runs eagerly)."""


class _LaidOutOtherwise(Exception):
    """A slot's array laid out otherwise than traced (``_layout_differs``); args: the slot."""


# A replay line that assigns slot k: ``    s7 = ...``
_ASSIGNED = re.compile(r"    (s(\d+)) = ")


def describe_slot(recorder: Recorder, k: int) -> str:
    array = recorder.values[k]
    # (a Python number or a numpy scalar as the 0-d array it is in the trace)
    return describe(array if library_of(array) is not None else np.asarray(array))


def _numpy_like(value: Any) -> bool:
    """Whether an operand is one numpy's fast forwards take (``registry._NUMPY_LIKE``'s test)."""
    return type(value) is np.ndarray or isinstance(value, _NUMPY_LIKE)


def fresh_array(array: Any, *others: Any) -> Any:
    """Another library's result as an array of its own: copied when it is a view or one of ``others``.

    array_api_strict cannot tell a view (a reshape there shares memory): its ``is_view`` says
    every result may be one, so its results are copied.
    """
    lib = library_of(array)
    if lib is None or lib.is_view(array) or any([array is o for o in others]):
        return copy_array(array)
    return array


def _fresh_results(
    recorder: Recorder, results: list[int], constant: list[bool], name: Callable[[int], str]
) -> list[str]:
    """The return expressions: each result a fresh array (see ``Tape``)."""
    returned = []
    for r, k in enumerate(results):
        value = recorder.values[k]
        if not isinstance(value, np.ndarray | np.generic) and library_of(value) is not None:  # another library's
            candidates = [name(j) for j in [*range(recorder.n_inputs), *results[:r]] if j != k]
            copied = k < recorder.n_inputs or constant[k] or k in results[:r]  # fresh(x, x) always copies
            returned.append(f"fresh({', '.join([name(k), name(k)] if copied else [name(k), *candidates])})")
            continue
        if k < recorder.n_inputs or constant[k] or k in results[:r]:
            returned.append(f"{name(k)}.copy()")
            continue
        # A forward may return a view, or an argument itself: compare with the arrays it could be
        # (inputs and earlier results of its shape and dtype), whose identity a signature does not fix.
        same_kind = [
            j
            for j in [*range(recorder.n_inputs), *results[:r]]
            if np.shape(recorder.values[j]) == np.shape(value)
            and np.asarray(recorder.values[j]).dtype == np.asarray(value).dtype
        ]
        others = "".join(f" and {name(k)} is not {name(j)}" for j in same_kind)
        returned.append(f"({name(k)} if {name(k)}.base is None{others} else {name(k)}.copy())")
    return returned


# Ops whose forward cannot raise on floating-point arrays of the traced shapes (fixed by the
# signature) with numpy's warnings off, as a replay runs: a step of one that no result, guard
# or other kept step reads is left out of the replay (a tape.hvp's primal gradients: W5).
_CANNOT_RAISE_ON_FLOATS = frozenset(
    {"add", "sub", "mul", "matmul", "matmul_nt", "matmul_tn", "sum", "sum_to", "tanh_backward"}
)


def _dead_steps(recorder: Recorder, results: list[int], guards_at: dict[int, list[str]]) -> set[int]:
    """The steps a replay may skip: no result, guard or kept step reads them, and their op on
    their (floating-point) operands cannot raise, so skipping them changes nothing observable."""
    live = set(results) | set(guards_at)
    dead: set[int] = set()
    for i in range(len(recorder.steps) - 1, -1, -1):
        opdef, refs, _, out = recorder.steps[i]
        # (a Python int beside floats, ``x * 2``, gives floats too)
        operands = [recorder.values[k] for k in refs]
        floats = _is_float_value(recorder.values[out]) and all([type(v) is int or _is_float_value(v) for v in operands])
        if out not in live and opdef.name in _CANNOT_RAISE_ON_FLOATS and floats:
            dead.add(i)
        else:
            live.update(refs)
    return dead


def _is_float_value(value: Any) -> bool:
    """Whether an operand is a float or a real floating-point array (of any library)."""
    if isinstance(value, np.ndarray | float):
        return bool(np.asarray(value).dtype.kind == "f")
    lib = library_of(value)
    return lib is not None and bool(lib.float_dtype(value.dtype))


def _times_one(opdef: OpDef, refs: tuple[int, ...], out: int, recorder: Recorder, constant: list[bool]) -> int | None:
    """The operand a ``mul`` step returns unchanged, if it multiplies by a constant of ones.

    ``x * 1`` is ``x`` exactly for real numbers in IEEE arithmetic (not for complex ones: the
    imaginary part's ``inf * 0`` is nan); the step is an identity when, besides, ``x`` has the
    product's shape and dtype. (A square's gradient under a ``0.5 *`` is one of these.)
    """
    if opdef.name != "mul":
        return None
    for one, kept in (refs, refs[::-1]):
        if constant[one] and not constant[kept]:
            factor, operand, product = (recorder.values[k] for k in (one, kept, out))
            # (the same strides too: the product's layout, which later sums follow)
            same_array = isinstance(operand, np.ndarray) and (operand.shape, operand.strides) == (
                product.shape,
                product.strides,
            )
            real = same_array and operand.dtype == product.dtype and product.dtype.kind in "fiu"
            if real and np.all(np.asarray(factor) == 1):
                return kept
    return None
