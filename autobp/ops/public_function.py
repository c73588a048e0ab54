"""The public function of an op (``ab.mul``): unwrap Tensors, run the forward, record a node.

``make_public`` builds it from an ``OpDef``; it is the hottest path of the library (every op call,
and every op a vjp rule calls on the fast path), so what it reads per call is a closure variable or
a global of this module, never an attribute of another module. Its errors name the op and the
inputs (``raise_with_context``).
"""

from __future__ import annotations

import array
import functools
import inspect
import numbers
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from numpy import ndarray

from autobp import graph
from autobp.backends import describe, holds_floats
from autobp.backends.numpy import ARRAY_OUT
from autobp.forward import first_carrying_tangent, propagate
from autobp.ops.opdef import OpDef
from autobp.tensor import ONE, TWO, Tensor, first_requiring_grad

__all__ = ["make_public", "specialised", "raise_with_context", "NUMPY_LIKE"]


# A call's TypeError begins with the function Python called, e.g. "_sum() got an unexpected keyword".
_CALLED = re.compile(r"^[\w.<>]+\(\) ")

# PyTorch's keyword -> numpy's, which autobp uses: named when a call fails on the former.
TORCH_SPELLINGS = {"dim": "axis", "keepdim": "keepdims", "correction": "ddof", "unbiased": "ddof"}
# Said with ddof=: the two libraries' defaults differ, so a call without either keyword gives
# another number than PyTorch's.
DDOF_DEFAULTS = " (var and std default to numpy's ddof=0; PyTorch's default is the unbiased correction=1)"


def refused(opdef: OpDef, error: Exception) -> Exception:
    """``error``, an operand or keyword ``opdef`` refuses, after telling a tape being traced: a
    function that catches it and goes on takes a branch the tape does not see (no op ran), so its
    signature runs eagerly (as ``raise_with_context`` does for an op's own errors)."""
    graph.mark_untapeable(f"'{opdef.name}' refused an argument while tracing and func went on")
    return error


def raise_on_torch_autograd(opdef: OpDef, value: Any) -> None:
    """Refuse a bare torch tensor that requires grad as an op's argument: autobp takes a bare array
    as a constant, and the result would have joined torch's graph, which autobp never walks (a
    ``.grad`` the user waits for stays empty) and which grows with every step."""
    raise refused(
        opdef,
        TypeError(
            f"{opdef.name}: got {describe(value)}, which requires grad in torch; autobp computes gradients "
            "itself and passes none to torch's autograd: give ab.tensor(t.detach(), requires_grad=True) "
            "to differentiate with respect to it, or t.detach() as a constant"
        ),
    )


def raise_with_context(opdef: OpDef, error: Exception, inputs: Sequence[Any]) -> None:
    # A taped function that catches this goes another way than its values would take it where the
    # op does not raise; the tape sees no branch (no Python read): the signature runs eagerly.
    graph.mark_untapeable(f"'{opdef.name}' raised while tracing ({type(error).__name__}) and func went on")
    if opdef.explain is not None and isinstance(error, ValueError):  # the op's own account of bad shapes
        opdef.explain(*[value.data if isinstance(value, Tensor) else value for value in inputs])
    if str(error).startswith(f"{opdef.name}: "):  # the forward named itself already
        raise error
    shown = ", ".join(describe(x) for x in inputs)
    text = str(error)
    if isinstance(error, TypeError):  # Python names the forward it called (`_extreme.<locals>.forward()`)
        text = _CALLED.sub(f"{opdef.name}() ", text, count=1)
    message = f"{opdef.name}: {text} (inputs: {shown})"
    if isinstance(error, TypeError):  # PyTorch's dim=/keepdim=: say numpy's spelling, which autobp uses
        spellings = TORCH_SPELLINGS.items()
        wrong = [f"{numpy}= instead of {torch}=" for torch, numpy in spellings if f"'{torch}'" in message]
        if wrong:
            message += "; autobp uses numpy's keywords: write " + ", ".join(wrong)
            if any(part.startswith("ddof=") for part in wrong):
                message += DDOF_DEFAULTS
    try:
        new = type(error)(message)
    except Exception:  # types with unusual constructors (numpy's UFuncTypeError): keep the builtin kind
        kinds = (TypeError, IndexError, ValueError, RuntimeError, OverflowError)
        new = next(kind for kind in kinds if isinstance(error, kind))(message)
    raise new from error


# Arguments that a numpy fast forward takes as numpy would: the arrays are checked by type.
NUMPY_LIKE = (float, ndarray, int, np.generic, complex, list, tuple, type(None))  # (common first)


def all_numpy(args: tuple[Any, ...]) -> bool:
    for value in args:  # noqa: SIM110  (a loop, not all() over a generator: one frame fewer per call)
        if type(value) is not ndarray and not isinstance(value, NUMPY_LIKE):
            return False
    return True


# Python and numpy numbers, and None: operands the forward takes as they are.
SCALARS = (float, int, np.generic, complex, type(None))


# Python objects numpy reads as an array of numbers (through the buffer protocol, or as range's
# numbers), which hold no Tensor: taken as that array, as a list is. Given as they are, the rules
# failed at backward (`x ** range(3)`: "unsupported operand type(s) for -: 'range' and 'int'",
# `x @ memoryview(m)`: "'memoryview' object has no attribute 'swapaxes'").
ARRAY_LIKE = (range, memoryview, array.array, bytearray)


def unusual_operand(opdef: OpDef, args: tuple[Any, ...], value: Any, mode: Any) -> tuple[tuple[Any, ...], Any, bool]:
    """``args`` and ``value`` (an operand that is neither a Tensor, a number nor a plain numpy array)
    as the forward and the rules take them, and whether numpy's fast forward takes it: a list or a
    tuple as the array numpy makes of it, a ``range``, ``memoryview``, ``array.array`` or
    ``bytearray`` too, a numpy array subclass as the plain array it holds, another library's array
    as it is (a torch tensor on torch's graph refused). A number numpy holds as a Python object (a
    ``Fraction``, a ``Decimal``) is refused."""
    if type(value) is list or type(value) is tuple:
        plain = sequence_operand(opdef, value, mode)
    elif isinstance(value, ndarray):
        plain = plain_operand(opdef, value)  # (np.matrix, a masked array)
    elif isinstance(value, ARRAY_LIKE):
        plain = np.asarray(value)  # (a memoryview's memory: copied when saved, as a writeable array is)
    else:
        if getattr(value, "requires_grad", False) is True:  # a torch tensor on torch's graph
            raise_on_torch_autograd(opdef, value)
        if isinstance(value, numbers.Number):  # (Python's and numpy's numbers are SCALARS: not here)
            raise_object_number(opdef, value, "operand")
        return args, value, isinstance(value, NUMPY_LIKE)
    # (the rules compute with the operands recorded: the plain array stands in args too)
    return tuple(plain if item is value else item for item in args), plain, True


def plain_operand(opdef: OpDef, value: ndarray) -> Any:
    """``value``, an operand of a numpy array subclass, as a plain array.

    The rules compute with the operands they saved, as arrays: with an ``np.matrix`` saved, ``grad *
    y`` in ``mul``'s rule was a matrix product (``x * m`` got the gradient ``[[4, 6], [4, 6]]`` for
    ``m = [[1, 2], [3, 4]]``), and ``x ** m`` a wrong one too. A masked array is refused: autobp's
    values carry no mask, so its result and gradient ignored the mask (``x * ma.array([1, 2],
    mask=[0, 1])`` got the gradient ``[1, 1]``)."""
    if isinstance(value, np.ma.MaskedArray):
        raise refused(
            opdef,
            TypeError(
                f"{opdef.name}: operand {describe(value)} is a masked array, and autobp's values carry no mask "
                "(the result and its gradient would ignore it); pass value.filled(fill) or np.asarray(value)"
            ),
        )
    return np.asarray(value)  # (np.matrix: a 2-D view of the same memory, copied when saved as any array is)


def sequence_operand(opdef: OpDef, value: list[Any] | tuple[Any, ...], mode: Any) -> Any:
    """``value``, a list or tuple operand, as the numpy array numpy makes of it (the rules compute
    with arrays: ``x ** [1.5, 2.5]`` failed at backward, "unsupported
    operand type(s) for -: 'list' and 'int'", and so did matmul, einsum and concatenate).

    A Tensor inside it that requires grad (or carries a tangent) is refused: numpy reads it as its
    values, a constant, so ``x * [a, 4.0]`` gave ``a`` no gradient, with no error."""
    tensor = first_requiring_grad([value]) if mode.enabled else None
    how = "requires grad"
    if tensor is None and mode.forward is not None:
        tensor = first_carrying_tangent([value], mode.forward)
        how = "carries a forward-mode tangent"
    if tensor is not None:
        raise refused(
            opdef,
            TypeError(
                f"{opdef.name}: a {type(value).__name__} operand holds tensor {describe(tensor)}, which {how}; the "
                f"{type(value).__name__} becomes an array of its values, a constant, so that derivative would be lost. "
                "Make the operand with ab.stack([...]) (or ab.concatenate), which differentiates its parts"
            ),
        )
    try:
        plain = np.asarray(value)
    except ValueError:  # ragged: the forward fails as numpy does, and its error names the op
        return value
    if plain.dtype == object:
        for item in plain.flat:
            if isinstance(item, numbers.Number) and not isinstance(item, SCALARS):
                raise_object_number(opdef, item, f"a {type(value).__name__} operand holding")
        return value  # (unreadable: as the forward would fail)
    return plain


def raise_object_number(opdef: OpDef, value: Any, where: str) -> None:
    """Refuse a number that numpy holds as a Python object (a ``fractions.Fraction``, a
    ``decimal.Decimal``): the op's result would be an array of dtype object, a Tensor that no
    floating-point op takes (``sin`` of it fails, naming no Fraction), or, for a Decimal, a
    failure naming ``float * Decimal``. Refused as PyTorch refuses them, and as ``ab.tensor`` does."""
    kind = f"{type(value).__module__}.{type(value).__qualname__}"
    raise refused(
        opdef,
        TypeError(
            f"{opdef.name}: {where} {value!r}, a {kind}, which numpy holds as a Python object (an array of "
            "dtype object, not of floats); pass float(value) (np.float32(value) for float32)"
        ),
    )


def raise_object_array(opdef: OpDef, value: ndarray) -> None:
    """Refuse a numpy array of dtype object (Python objects: numbers, Fractions, anything) as an
    operand: the result was an object-dtype Tensor on the graph, which ``ab.tensor`` refuses to
    make and most ops cannot take (``sin`` of it fails naming no operand), and whose gradient came
    back as objects too."""
    raise refused(
        opdef,
        TypeError(
            f"{opdef.name}: operand {describe(value)} is a numpy array of dtype object (Python objects, not "
            "numbers), which a Tensor cannot hold, as ab.tensor refuses it; pass np.asarray(value, dtype=float)"
        ),
    )


def raise_keyword_needs_grad(opdef: OpDef, kwargs: Any) -> None:
    """An op differentiates its positional inputs only: a keyword Tensor that requires grad would
    get no gradient, with no error. Refused, naming the op and the keyword."""
    names = [name for name, value in kwargs.items() if first_requiring_grad([value]) is not None]
    raise refused(
        opdef,
        TypeError(
            f"{opdef.name}: keyword argument {names[0]!r} is a Tensor that requires grad, but {opdef.name} "
            "differentiates only its positional inputs, so that gradient would be lost; pass a tensor that "
            "needs a gradient as an input (or .detach() it if no gradient is wanted)"
        ),
    )


def raise_keyword_carries_tangent(opdef: OpDef, kwargs: Any, levels: Any) -> None:
    """Forward mode's half of ``raise_keyword_needs_grad``: tangents are propagated from an op's
    positional inputs only, so a keyword Tensor's tangent (``pad``'s fill value, a custom op's
    ``scale=s``) would be dropped and the output's tangent read as if it did not depend on it.
    Refused, naming the op, the keyword and the tensor."""
    for name, value in kwargs.items():
        tensor = first_carrying_tangent([value], levels)
        if tensor is not None:
            raise refused(
                opdef,
                TypeError(
                    f"{opdef.name}: keyword argument {name!r} is a Tensor ({describe(tensor)}) that carries a "
                    f"forward-mode tangent, but {opdef.name} propagates tangents from its positional inputs "
                    "only, so that tangent would be lost; pass a tensor whose derivative is wanted as an input "
                    "(or forward_ad.unpack_dual(t).primal, or t.detach(), if no derivative is wanted)"
                ),
            )


def make_public(opdef: OpDef) -> Callable[..., Tensor]:
    """The function users call: unwrap Tensors, run the forward, record a node when needed.

    This is the hottest path of the library, so the op's fields are bound as closure variables.
    """
    forward, arity, differentiable, here = opdef.forward, opdef.arity, opdef.differentiable, graph._local
    record, wrap, share_storage = graph.record, Tensor._wrap, graph.share_storage
    # An op that may give integers for floating inputs (astype, a custom op) has its result's
    # dtype checked before recording: an integer or bool result carries no gradient, as no
    # integer tensor can, and is a constant (recorded, x.astype("int64") * 3.7 added 3 to each
    # element of x's gradient). autobp's other ops give floats (tests/test_ops.py holds them to it).
    may_give_integers = opdef.integer_results
    is_foreign_view = graph.is_foreign_view
    # numpy's fast forward (backends/numpy.py), taken when every array argument is a numpy array.
    fast = opdef.numpy_forward
    special = fast is not forward

    @functools.wraps(opdef.declared)
    def public(*args: Any, **kwargs: Any) -> Tensor:
        if len(args) != arity:
            args, kwargs = opdef.bind(args, kwargs)
        mode = here.modes  # the calling thread's (one threading.local read: its slots are cheap)
        if mode.arrays:  # a first-order backward's rules: an op given no Tensor returns a plain array
            try:
                # (one or two arguments checked inline: a call per op costs W2 2%, benchmarks/instructions.py)
                if special and (
                    ((arity == 1 or (arity == 2 and isinstance(args[1], NUMPY_LIKE))) and type(args[0]) is ndarray)
                    or all_numpy(args)
                ):
                    return fast(*args, **kwargs)
                for value in args:
                    # (`type() is` first: a rule's arguments are arrays, and isinstance walks their MRO)
                    if type(value) is not ndarray and isinstance(value, Tensor):
                        break  # a Tensor (a rule built one): the op acts as anywhere, returning a Tensor
                else:
                    return forward(*args, **kwargs)
            except (ValueError, TypeError, IndexError, OverflowError) as error:
                raise_with_context(opdef, error, args)
        arrays = []
        given = args  # (as the caller gave them, for errors: a list operand is shown as a list)
        needs_grad = False
        numpy_only = True
        versioned = False  # an input's storage was written in place: its node keeps the versions
        constants = False  # a constant other than a number (an array record may copy)
        for value in args:
            if isinstance(value, Tensor):
                data = value.data
                arrays.append(data)
                if value._requires_grad:
                    needs_grad = True
                if type(data) is not ndarray:
                    numpy_only = False
                if value._vc is not None and value._vc[0]:
                    versioned = True
            else:
                # (a number first, as W2's and W4's constants: one test)
                if not isinstance(value, SCALARS):
                    if type(value) is not ndarray:
                        args, value, numpy_like = unusual_operand(opdef, args, value, mode)
                        if not numpy_like:
                            numpy_only = False
                    if type(value) is ndarray and value.dtype.hasobject:
                        raise_object_array(opdef, value)
                    constants = True
                arrays.append(value)
        try:
            result = (fast if numpy_only else forward)(*arrays, **kwargs)  # (fast is forward if none)
        except (ValueError, TypeError, IndexError, OverflowError) as error:
            raise_with_context(opdef, error, given)
        except RuntimeError as error:  # torch reports shape errors as RuntimeError: name the op there too
            if numpy_only:
                raise
            raise_with_context(opdef, error, given)
        if kwargs and mode.enabled and first_requiring_grad(kwargs.values()) is not None:
            raise_keyword_needs_grad(opdef, kwargs)
        for value in arrays:
            if value is result:  # an op returned its input (squeeze, sum_to): a view, to share its counter
                result = graph.new_view(result)  # (recorded, it is frozen: never the input itself)
                break
        if needs_grad and differentiable and mode.enabled and (not may_give_integers or holds_floats(result)):
            out = record(opdef, result, args, kwargs, versioned, constants)  # (views of inputs: as below)
        else:
            out = wrap(result)
            data = out.data
            if data.base is not None if type(data) is ndarray else not numpy_only and is_foreign_view(data):
                share_storage(out, args)  # a view of an input's memory: one storage, one version counter
        if mode.tape is not None:  # a taped function is being traced (autobp.tape); before the
            mode.tape.record(opdef, args, kwargs, out)  # tangent's ops, which read out's slot
        if mode.forward is not None:  # forward mode is on (autobp.forward): carry the tangents
            # (a keyword's tangent is refused, not dropped: checked here, where forward mode is
            # on, so calls without it pay nothing; with grad mode off too, as tangents still flow)
            if kwargs and first_carrying_tangent(kwargs.values(), mode.forward) is not None:
                raise_keyword_carries_tangent(opdef, kwargs, mode.forward)
            propagate(opdef, args, kwargs, out)
        return out

    return specialised(opdef, public) if special and arity in (1, 2) else public


def specialised(opdef: OpDef, general: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``general``, the public function of an op of one or two inputs with a numpy fast forward,
    behind a shorter road for its commonest calls: Tensors of numpy arrays, Python numbers and
    (as constants) numpy arrays, positionally, with no tape tracing. That road runs what
    ``general`` would (the fast forward, ``record`` or a wrap, forward mode's tangents, the same
    errors) without its loops over the arguments and the checks these calls cannot need (W2 ~6%
    faster); every other call goes to ``general`` as it came. ``tests/test_public_paths.py``
    holds the two to the same results. The returned function's ``general`` is the public
    function behind it; where the op takes keywords too, its ``road`` is the road (else the
    returned function is the road itself).
    """
    fast, differentiable, may_give_integers, here = (
        opdef.numpy_forward,
        opdef.differentiable,
        opdef.integer_results,
        graph._local,
    )
    record, wrap, share_storage, new_view, no_kwargs = (
        graph.record,
        Tensor._wrap,
        graph.share_storage,
        graph.new_view,
        graph.NO_KWARGS,
    )
    # What record does for the road's calls (no keywords, operands Tensors and numbers), written out
    # in unary and binary: record's call was W2's ~5%. Where the result is no numpy array (a numpy
    # scalar is made a 0-d array first), anomaly mode is on, or an operand is a numpy array (a
    # constant, which record copies if it may change), record itself runs. tests/test_recording.py
    # holds both to the same slots, tests/test_public_paths.py to the general function's results.
    new_tensor, next_seq, versions = object.__new__, graph._next_seq, graph._versions
    generic, asarray = np.generic, np.asarray
    # An elementwise ufunc given ``out=...`` returns a 0-d result as the 0-d array itself, not as a
    # numpy scalar that asarray then makes one (W4's every op, a 0-d Tensor and a number: ~60 ns
    # of its ~1.3 us). Asked for where an operand is a number and the other a 0-d array (its
    # ``ndim`` is read there only: W2's arrays pay that read, not the keyword's cost).
    is_ufunc = isinstance(fast, np.ufunc)
    array_out = ARRAY_OUT and is_ufunc and fast.signature is None and fast.nout == 1
    # A ufunc's result is an array of its own, never a view of an input's memory: the view check
    # (``.base``) is for the other fast forwards (a reshape, a transpose).
    may_view = not is_ufunc

    def unrecorded(result: Any, args: tuple[Any, ...]) -> Tensor:
        # (the general function's end where it records nothing)
        out = wrap(result)
        if out.data.base is not None:  # a view of an input's memory: one storage, one version counter
            share_storage(out, args)
        return out

    # unary and binary end alike (record or wrap, then the tangents): written out in each, as a
    # shared helper would put a Python frame on every op call the road exists to shorten.
    def unary(x: Any, /) -> Tensor:
        mode = here.modes
        if mode.tape is not None:
            return general(x)
        if type(x) is ndarray and mode.arrays:  # a first-order backward's rule calling the op
            try:
                return fast(x)
            except (ValueError, TypeError, IndexError, OverflowError) as error:
                raise_with_context(opdef, error, (x,))
        if not isinstance(x, Tensor):
            return general(x)
        data = x.data
        if type(data) is not ndarray:
            return general(x)
        try:
            result = fast(data)
        except (ValueError, TypeError, IndexError, OverflowError) as error:
            raise_with_context(opdef, error, (x,))
        if result is data:  # an op that returned its input: a view, as the general function makes
            result = new_view(result)
        elif type(result) is not ndarray and isinstance(result, generic):  # (a reduction to a numpy scalar)
            result = asarray(result)  # the 0-d array record and the wrap make of it
        counter = x._vc
        if x._requires_grad and differentiable and mode.enabled and (not may_give_integers or holds_floats(result)):
            if type(result) is ndarray and graph._anomaly_hook is None:  # record's work for this call, inline
                out = new_tensor(Tensor)
                out.data = out.out = result
                out._requires_grad = True
                out._vc = out._rare = out._dual = None
                out.op = opdef
                out._in0 = x
                # (its input's version where it is not 0: the versions tuple, Tensor._keep)
                out._more = (counter[0],) if counter is not None and counter[0] != 0 else ONE
                out._seq = next_seq()
                result.setflags(False)  # type: ignore[call-arg]
                if may_view and result.base is not None:
                    share_storage(out, (x,))
            else:  # (anomaly mode, a result that is no numpy array)
                out = record(opdef, result, (x,), no_kwargs, counter is not None and counter[0] != 0, False)
        else:
            out = unrecorded(result, (x,))
        if mode.forward is not None:  # forward mode is on: carry the tangents
            propagate(opdef, (x,), no_kwargs, out)
        return out

    def binary(x: Any, y: Any, /) -> Tensor:
        mode = here.modes
        if mode.tape is not None:
            return general(x, y)
        if type(x) is ndarray and mode.arrays and isinstance(y, NUMPY_LIKE):  # a rule calling the op
            try:
                return fast(x, y)
            except (ValueError, TypeError, IndexError, OverflowError) as error:
                raise_with_context(opdef, error, (x, y))
        needs_grad = versioned = constant = zero_d = False
        xa: Any
        ya: Any
        # Each operand a Tensor of a numpy array, a Python float or int (`type() is`: not a bool), or
        # a numpy array (a constant: data, which record copies if it may change before backward)
        if isinstance(x, Tensor):
            xa = x.data
            if type(xa) is not ndarray:
                return general(x, y)
            needs_grad = x._requires_grad
            counter = x._vc
            versioned = counter is not None and counter[0] != 0
        elif type(x) is float or type(x) is int:
            xa = x
            zero_d = array_out  # (a number: the result is 0-d if y is, which is read below)
        elif type(x) is ndarray and not x.dtype.hasobject:
            xa, constant = x, True
        else:
            return general(x, y)
        if isinstance(y, Tensor):
            ya = y.data
            if type(ya) is not ndarray:
                return general(x, y)
            if y._requires_grad:
                needs_grad = True
            counter = y._vc
            if counter is not None and counter[0] != 0:
                versioned = True
            if zero_d:
                zero_d = not ya.ndim
        elif type(y) is float or type(y) is int:
            ya = y
            zero_d = array_out and (type(xa) is not ndarray or not xa.ndim)
        elif type(y) is ndarray and not y.dtype.hasobject:
            ya, constant = y, True
            if zero_d:
                zero_d = not ya.ndim
        else:
            return general(x, y)
        try:
            result = fast(xa, ya, out=...) if zero_d else fast(xa, ya)
        except (ValueError, TypeError, IndexError, OverflowError) as error:
            raise_with_context(opdef, error, (x, y))
        if result is xa or result is ya:  # an op that returned its input: a view, as the general function makes
            result = new_view(result)
        elif type(result) is not ndarray and isinstance(result, generic):  # (0-d operands give numpy scalars: W4)
            result = asarray(result)  # the 0-d array record and the wrap make of it
        if needs_grad and differentiable and mode.enabled and (not may_give_integers or holds_floats(result)):
            if type(result) is ndarray and graph._anomaly_hook is None and not constant:  # record's work, inline
                out = new_tensor(Tensor)
                out.data = out.out = result
                out._requires_grad = True
                out._vc = out._rare = out._dual = None
                out.op = opdef
                out._in0 = x
                out._in1 = y
                out._more = versions((x, y)) if versioned else TWO  # (the versions tuple, Tensor._keep)
                out._seq = next_seq()
                result.setflags(False)  # type: ignore[call-arg]
                if may_view and result.base is not None:
                    share_storage(out, (x, y))
            else:  # (anomaly mode, a result that is no numpy array, a constant array to copy)
                out = record(opdef, result, (x, y), no_kwargs, versioned, constant)
        else:
            out = unrecorded(result, (x, y))
        if mode.forward is not None:  # forward mode is on: carry the tangents
            propagate(opdef, (x, y), no_kwargs, out)
        return out

    road: Callable[..., Tensor] = unary if opdef.arity == 1 else binary
    # An op taking its inputs only has the road as its public function: a call of positional
    # parameters alone makes no dict of keywords (W2 ~3%). Its inputs are positional only, as the
    # general function takes them (`ab.mul(x=a, y=b)` is refused either way); Python's own errors
    # for another count name the op (by the __qualname__ set below): `mul() missing 1 required
    # positional argument: 'y'`. An op taking keywords too (sum's axis, conv2d's stride) sends its
    # calls without any down the road.
    public = road if _inputs_only(opdef) else _without_keywords(road, general, 1 if opdef.arity == 1 else 2)
    public = functools.wraps(opdef.declared)(public)
    public.__qualname__ = opdef.name
    public.general = general  # type: ignore[attr-defined]
    return public


def _without_keywords(road: Callable[..., Tensor], general: Callable[..., Tensor], arity: int) -> Callable[..., Tensor]:
    """A public function that sends calls of ``arity`` positional arguments (and no keywords) down
    ``road``, and every other call to ``general``."""

    def public(*args: Any, **kwargs: Any) -> Tensor:
        if kwargs or len(args) != arity:
            return general(*args, **kwargs)
        return road(*args)

    public.road = road  # type: ignore[attr-defined]
    return public


def _inputs_only(opdef: OpDef) -> bool:
    """Whether ``opdef``'s declared function takes its inputs and nothing else: ``(x)``, ``(x, y)``."""
    parameters = inspect.signature(opdef.declared).parameters.values()
    return len(parameters) == opdef.arity and all(
        p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty for p in parameters
    )
