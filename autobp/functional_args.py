"""Argument handling shared by the functional transforms (``autobp.functional``).

Inputs and outputs are a Tensor or a tuple of Tensors; results mirror that structure. Errors
name the transform and the argument.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autobp import graph
from autobp.backends import MixedArraysError, describe, library_of, namespace, refuse_complex
from autobp.engine import grad, grad_carrying_tangents
from autobp.grad_mode import enable_grad
from autobp.ops import copy as _copy
from autobp.storage import unaliased
from autobp.tensor import Tensor


def as_tensors(value: Any, what: str, arg: str) -> tuple[bool, tuple[Tensor, ...]]:
    """``(was_tuple, tensors)``; anything but Tensors is an error naming the transform."""
    is_tuple = isinstance(value, tuple | list)
    items = tuple(value) if is_tuple else (value,)
    for i, item in enumerate(items):
        if not isinstance(item, Tensor):
            where = f"{arg}[{i}]" if is_tuple else arg
            raise TypeError(f"{what}: {where} must be a Tensor, got {type(item).__name__}")
    return is_tuple, items


def differentiable(create_graph: bool) -> bool:
    """Whether a transform's results must stay differentiable: ``create_graph``, or inside a
    forward-mode level (an outer ``jvp``, ``jacfwd``, ``hessian``...), whose tangents they must
    carry, or inside a function another transform differentiates (``differentiating``).
    Detached results there would carry no tangent and no graph, which the outer transform reads
    as zeros: ``jvp(lambda a: jvp(f, a, v)[1], x, u)`` and ``jacobian(lambda z: jvp(f, z, v)[1], x)``
    gave zeros instead of second derivatives."""
    modes = graph._local.modes
    return create_graph or modes.forward is not None or modes.transforms > 0


class differentiating:
    """While active, the function a transform calls is being differentiated: transforms and
    ``grad`` inside it keep their graph (``differentiable``), as its result must depend on its
    inputs through them."""

    def __enter__(self) -> None:
        graph._local.modes.transforms += 1

    def __exit__(self, *exc: object) -> None:
        graph._local.modes.transforms -= 1


def fresh_inputs(
    inputs: tuple[Tensor, ...], create_graph: bool, what: str, requires_grad: bool = True
) -> tuple[Tensor, ...]:
    prepared = []
    for i, x in enumerate(inputs):
        if not is_float(x):
            raise TypeError(f"{what}: inputs[{i}] has dtype {x.dtype}; only floating-point inputs are differentiable")
        if create_graph and x.requires_grad:
            prepared.append(_copy(x))  # stays connected to x, so results differentiate back to it
        elif graph._local.modes.forward is not None:  # inside forward mode: a copy keeps x's tangents
            copied = _copy(x)
            copied.requires_grad = copied.requires_grad or requires_grad  # a leaf unless x requires grad
            prepared.append(copied)
        else:
            leaf = Tensor._wrap(x.data, requires_grad=requires_grad)
            leaf._share_storage_with(x)  # one storage, one counter: func writing into x is seen
            prepared.append(leaf)
    return tuple(prepared)


def distinct_argnums(argnums: Any, positions: tuple[int, ...], count: int, what: str) -> None:
    """Refuse ``argnums`` naming one argument twice (``(0, 0)``, or ``(0, -2)`` of two arguments),
    as torch.func does: each entry gets a fresh input, the later replacing the earlier, so the
    earlier entry's gradient came back as zeros."""
    resolved = [p % count for p in positions]
    for i, p in enumerate(resolved):
        if p in resolved[:i]:
            raise ValueError(f"{what}: argnums {argnums} names argument {p} twice (of {count}); name each once")


def floating_array(value: Any) -> bool:
    """Whether ``value`` is an array of a real floating-point dtype: numpy's, a numpy scalar, or
    another library's (a list or a Python number is none)."""
    if isinstance(value, np.ndarray | np.generic):
        return value.dtype.kind == "f"
    lib = library_of(value)
    return lib is not None and bool(lib.float_dtype(value.dtype))


def differentiated_tensor(value: Any, position: int, what: str) -> Tensor:
    """A differentiated argument of ``value_and_grad`` as the Tensor it is differentiated as.

    A Tensor stays as it is and must be floating-point (``not_floating``); a floating-point array
    keeps its dtype, as ``ab.tensor`` does; any other array-like (Python numbers, lists, integer
    and bool arrays, numpy integer scalars) becomes float64 (``float64_tensor``). A tape makes
    the same array of it (``autobp.tape.arguments.differentiated_array``).
    """
    if isinstance(value, Tensor):
        if not is_float(value):
            raise not_floating(what, position, value)
        return value
    return Tensor(value) if floating_array(value) else float64_tensor(value)


def float64_tensor(value: Any) -> Tensor:
    """A differentiated array-like without a floating-point dtype as the Tensor it is
    differentiated as: float64, the dtype ``ab.tensor`` gives Python floats. Only real numbers
    convert: None would become nan and a complex number lose its imaginary part, silently."""
    lib = None if isinstance(value, np.ndarray | np.generic) else library_of(value)
    # bool, int, unsigned, float; another library's array: anything but complex (torch would drop
    # a complex tensor's imaginary part, with a warning of its own)
    real = np.asarray(value).dtype.kind in "biuf" if lib is None else not lib.isdtype(value.dtype, "complex floating")
    if not real:
        raise TypeError(
            f"value_and_grad: a differentiated argument ({describe(value)}) is not a real number or an "
            "array of real numbers, so it has no gradient; pass a float array or Tensor at argnums"
        )
    return Tensor(value, dtype=np.float64)


def not_floating(what: str, position: int, value: Any) -> TypeError:
    """The error for a differentiated Tensor that is not floating-point (it has no gradient)."""
    return TypeError(
        f"{what}: argument {position} ({describe(value)}) is differentiated but not floating-point; pass "
        "t.astype('float64') (only a Tensor keeps its dtype: other arrays and numbers become float64)"
    )


def call_func(func: Callable[..., Any], inputs: tuple[Tensor, ...], what: str) -> tuple[bool, tuple[Tensor, ...]]:
    with enable_grad(), differentiating():
        outputs = func(*inputs)
    return as_tensors(outputs, what, "func's output")


def checked_vectors(
    v: Any, outputs: tuple[Tensor, ...], what: str, arg: str = "v", pairs_with: str = "outputs"
) -> list[Tensor]:
    """``v`` as one Tensor per entry of ``outputs``, each of that entry's shape. ``pairs_with`` says
    what those entries are, for the errors: func's ``"outputs"`` (a cotangent: ``vjp``) or the
    ``"inputs"`` (a tangent or direction: ``jvp``, ``hvp``)."""
    if v is None:
        if len(outputs) != 1 or numel(outputs[0]) != 1:
            shapes = [o.shape for o in outputs]
            raise ValueError(f"{what}: {arg} may be omitted only for one single-element Tensor, got shapes {shapes}")
        return [filled(outputs[0], 1)]
    _, vs = as_tensors(v, what, arg)
    if len(vs) != len(outputs):
        counted = "outputs of func" if pairs_with == "outputs" else pairs_with
        raise ValueError(f"{what}: {arg} has {len(vs)} entries for {len(outputs)} {counted}")
    for i, (vi, out) in enumerate(zip(vs, outputs, strict=True)):
        vector, entry = vi.data, out.data  # (the arrays' shapes and dtypes: no property frames)
        if vector.shape != entry.shape:
            paired = _paired_entry(pairs_with, i)
            raise ValueError(f"{what}: {arg}[{i}] has shape {vi.shape}, but {paired} has shape {out.shape}")
        if type(vector) is not np.ndarray or type(entry) is not np.ndarray:  # (two numpy arrays: one library, the cpu)
            try:
                namespace(entry, vector)  # one library and device: a cast below cannot move it
            except MixedArraysError as error:
                named, paired = _vector_entry(arg, i, len(vs)), _paired_entry(pairs_with, i)
                raise MixedArraysError(f"{what}: {named} and {paired} are {error}") from None
        if vector.dtype != entry.dtype:  # (cast later; a complex one would lose its imaginary part)
            refuse_complex(vi, what, _vector_entry(arg, i, len(vs)))
    return list(vs)


# The names errors give (built only for an error: every jvp/hvp call checks its vectors).
def _vector_entry(arg: str, i: int, count: int) -> str:
    """``v[i]`` as errors name it (``v`` alone when there is one)."""
    return f"{arg}[{i}]" if count > 1 else arg


def _paired_entry(pairs_with: str, i: int) -> str:
    """The entry that ``v[i]`` pairs with, as errors name it."""
    return f"func's output {i}" if pairs_with == "outputs" else f"{pairs_with}[{i}]"


def input_grads(
    outputs: Sequence[Tensor],
    inputs: tuple[Tensor, ...],
    cotangents: Sequence[Tensor],
    create_graph: bool,
    retain_graph: bool | None = None,
    carry_tangents: bool = False,
) -> tuple[Tensor, ...]:
    """d<cotangents, outputs>/d(inputs), zeros for inputs the outputs do not depend on.

    ``carry_tangents`` (first order): the rules run on Tensors with recording off, so that inside
    a forward-mode level the gradients carry tangents (``engine.grad_carrying_tangents``: ``hvp``).
    """
    pairs = [(o, c) for o, c in zip(outputs, cotangents, strict=True) if o.requires_grad]
    outs, cots = [o for o, _ in pairs], [c for _, c in pairs]
    if not pairs:
        found: tuple[Tensor | None, ...] = (None,) * len(inputs)
    elif carry_tangents:
        found = grad_carrying_tangents(outs, list(inputs), cots)
    else:
        found = grad(
            outs,
            list(inputs),
            grad_outputs=cots,
            retain_graph=retain_graph,
            create_graph=create_graph,
            allow_unused=True,
        )
    return tuple(filled(x, 0) if g is None else g for g, x in zip(found, inputs, strict=True))


def maybe_detached(values: Sequence[Tensor], create_graph: bool) -> tuple[Tensor, ...]:
    return tuple(v if create_graph else v.detach() for v in values)


def detached_tangents(values: Sequence[Tensor], create_graph: bool, directions: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """``maybe_detached`` for tangents: without ``create_graph`` each also an array of its own, not
    a direction's (an identity jvp hands it through: ``jvp(lambda x: x + 0, x, v)``) nor another's."""
    if create_graph:
        return tuple(values)
    # A tangent that is on no graph and shares no counter (a level's fresh wrapper of its array,
    # as every tangent of a level without create_graph is) is as detached as detach() would make
    # it: it is taken as it is, unless a tape is tracing (which is told of every detach()).
    tracing = graph._local.modes.tape is not None
    detached = [  # (a list of our own: unaliased changes it in place)
        v if v.op is None and not v._requires_grad and v._vc is None and not tracing else v.detach() for v in values
    ]
    return tuple(unaliased(detached, [d.data for d in directions]))


class SameEveryCall:
    """Checks that the calls of ``func`` a transform assembles one result from computed the same values.

    ``jacfwd`` and ``hessian`` call ``func`` once per input element and put the columns together:
    a ``func`` that draws random numbers (dropout) would give each column another sample, and the
    result would mix them without an error. Every call computes the same primal values, so each
    later call's are compared with the first call's, on the array's own device, one boolean read
    back per call. Floating-point values need only agree to a few units in the last place of the
    largest: a deterministic ``func`` can still differ in the last bits between calls where its
    library sums in an order that varies (atomic adds on a GPU, MKL's alignment-dependent
    kernels), while another random draw differs in the leading digits. NaN matches NaN.
    """

    def __init__(self, what: str, advice: str) -> None:
        self.what, self.advice = what, advice
        self.first: list[tuple[str, Any]] | None = None

    def check(self, values: Sequence[tuple[str, Tensor]], call: str) -> None:
        """``values``: (a name for the error, the value) for one call, ``call`` naming that call."""
        if self.first is None:  # a copy: func could return a Tensor it later writes into
            self.first = [(name, _snapshot(value.data)) for name, value in values]
            return
        names, first = [name for name, _ in values], [name for name, _ in self.first]
        if names != first:  # (another number of outputs, or a tuple where it returned a Tensor)
            returned = f"returned {_outputs(names)}, the first call {_outputs(first)}"
            raise RuntimeError(self._message(f"the call for {call} {returned}"))
        for (name, value), (_, kept) in zip(values, self.first, strict=True):
            if not _same(kept, value.data):
                raise RuntimeError(self._message(f"{name} in the call for {call} differs from the first call's"))

    def _message(self, detail: str) -> str:
        return (
            f"{self.what}: func gave different values on repeated calls ({detail}). {self.what} calls func "
            "once per input element and assembles its result from those calls, so a func that is not "
            "deterministic (it draws random numbers, e.g. dropout) would mix different samples. Draw them "
            "from a fixed seed inside func (dropout(x, p, rng=0), ab.randn(..., rng=0); a Generator made "
            f"outside func moves on between calls), or {self.advice}"
        )


def _outputs(names: list[str]) -> str:
    return "one Tensor" if names == ["the output"] else f"a tuple of {len(names)}"


def _snapshot(data: Any) -> Any:
    """A copy of one call's array, on its device, for ``_same``."""
    if isinstance(data, np.ndarray | np.generic):
        return np.array(data, copy=True)
    return namespace(data).asarray(data, copy=True)


def _same(kept: Any, data: Any) -> bool:
    """Whether ``data`` holds the values ``_snapshot`` kept (floats: up to reordered rounding, a
    thousand units in the last place of the largest magnitude, at most 1%)."""
    if isinstance(data, np.generic):
        data = np.asarray(data)
    if type(kept) is not type(data) or kept.dtype != data.dtype or tuple(kept.shape) != tuple(data.shape):
        return False
    xp = namespace(kept, data)
    equal = kept == data
    if xp.isdtype(data.dtype, ("real floating", "complex floating")):
        equal = equal | (xp.isnan(kept) & xp.isnan(data))
        finite = xp.isfinite(kept) & xp.isfinite(data)
        if bool(xp.any(finite)):  # (the largest of no elements is an error)
            magnitude = xp.abs(kept)
            scale = xp.max(xp.where(finite, magnitude, xp.zeros_like(magnitude)))
            rtol = min(1e-2, 1024 * float(xp.finfo(data.dtype).eps))
            equal = equal | (finite & (xp.abs(kept - data) <= rtol * scale))
    return bool(xp.all(equal))


def packed(is_tuple: bool, values: Sequence[Any]) -> Any:
    return tuple(values) if is_tuple else values[0]


def check_scalar(outs: tuple[Tensor, ...], what: str) -> None:
    if len(outs) != 1 or numel(outs[0]) != 1:
        raise ValueError(f"{what}: func must return a single one-element Tensor, got shapes {[o.shape for o in outs]}")


def numel(x: Tensor) -> int:
    """The number of elements (``Tensor.size`` reads the array's ``size``, a method on torch tensors)."""
    return math.prod(x.shape)


def is_float(x: Tensor) -> bool:
    """Whether a Tensor holds a real floating-point type (the kind that is differentiable)."""
    data = x.data
    return data.dtype.kind == "f" if type(data) is np.ndarray else bool(namespace(data).float_dtype(data.dtype))


def filled(like: Tensor, value: float, shape: tuple[int, ...] | None = None) -> Tensor:
    """A constant Tensor of ``like``'s library, device and dtype holding ``value``; ``like``'s shape
    unless ``shape`` is given."""
    data = like.data
    shape = tuple(data.shape) if shape is None else shape
    if type(data) is np.ndarray:
        return Tensor._wrap(np.full(shape, value, dtype=data.dtype))
    xp = namespace(data)
    return Tensor._wrap(xp.full(shape, value, dtype=data.dtype, device=xp.device(data)))


def one_hot(like: Tensor, flat: int) -> Tensor:
    """A Tensor of ``like``'s shape, library and dtype: 1 at flat position ``flat``, 0 elsewhere."""
    data = like.data
    if type(data) is np.ndarray:
        unit = np.zeros(data.size, dtype=data.dtype)
        unit[flat] = 1.0
        return Tensor._wrap(unit.reshape(data.shape))
    xp = namespace(data)
    unit = xp.astype(xp.arange(numel(like), device=xp.device(data)) == flat, data.dtype)
    return Tensor._wrap(xp.reshape(unit, tuple(data.shape)))


def stacked(parts: Sequence[Tensor], axis: int, shape: tuple[int, ...]) -> Tensor:
    """The arrays of ``parts`` stacked along ``axis`` and reshaped to ``shape``, as a constant Tensor."""
    arrays = [p.data for p in parts]
    if type(arrays[0]) is np.ndarray:
        return Tensor._wrap(np.stack(arrays, axis=axis).reshape(shape))
    xp = namespace(*arrays)
    return Tensor._wrap(xp.reshape(xp.stack(arrays, axis=axis), shape))
