"""In-place writes into a Tensor's array, with the checks that keep gradients right.

Every in-place Tensor method (``add_``, ``zero_``, ``__setitem__``, ...) goes through
``_inplace``: it refuses writes that would silently change a graph's saved values, then bumps
the tensor's version so a graph that saved it before notices (see docs/trust.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autobp import backends, grad_mode, graph, storage
from autobp.backends.numpy_errors import quietly
from autobp.forward import carries_tangent
from autobp.tensor import Tensor


def _unwrap(value: Any) -> Any:
    return value.data if isinstance(value, Tensor) else value


class _Where:
    def __init__(self, method: str, tensor: Tensor) -> None:
        self.method, self.tensor = method, tensor

    def __format__(self, spec: str) -> str:
        return f"{self.method}: tensor {backends.describe(self.tensor)}"


def _inplace(
    tensor: Tensor,
    method: str,
    write: Callable[..., Any],
    *operands: Any,
    before_rebind: Callable[[], None] | None = None,
) -> Tensor:
    """Run ``write(tensor.data, *operand_arrays)`` after the safety checks; bump the version.

    Refused: a tensor made by an op (its array belongs to the graph), a leaf that requires grad
    while grad mode is on, an operand that requires grad (its gradient would be lost), a
    read-only array, and anything that would change the shape. ``before_rebind`` (``t += u``'s)
    refuses where a library autobp does not write into (array-api-strict) would have the name
    rebound, but the rebind would not give what a write gives (``autobp.tensor.inplace``).
    """
    where = _Where(method, tensor)  # formatted only when an error needs it
    graph.refuse_while_tracing(f"in-place {method}")
    if tensor.op is not None:
        raise RuntimeError(
            f"{where} was made by op '{tensor.op.name}' and belongs to the graph (its value may be "
            "saved for backward); in-place changes are refused. Use an out-of-place op (y = y + 1), or "
            "work on a copy (y.detach().copy())"
        )
    if grad_mode.is_grad_enabled():
        if tensor.requires_grad:
            raise RuntimeError(
                f"{where} is a leaf that requires grad; an in-place change would not be seen by the "
                "graph. Do it inside `with ab.no_grad():` (as optimizer steps do), or use an out-of-place op"
            )
        counter = tensor._vc
        if counter is not None and len(counter) > 1:  # its storage is a tensor's that requires grad
            base = counter[1]()
            data = tensor.data
            # (a read-only numpy view, detach()'s, is refused below as read-only)
            if base is not None and base._requires_grad and (type(data) is not np.ndarray or data.flags.writeable):
                raise RuntimeError(
                    f"{where} shares the memory of tensor {backends.describe(base)}, which requires grad: it is "
                    "a view made off the graph (under no_grad(), a detach(), or a make_dual there). Written in "
                    "place with grad mode on, it would change that tensor's values where the graph cannot see "
                    "it (a write into the tensor itself is refused). Write inside `with ab.no_grad():` as well "
                    "(as optimizer steps do), or build new values out of place (v.clone() + 1, ab.where(...))"
                )
        if any(isinstance(o, Tensor) and o.requires_grad for o in operands):
            raise RuntimeError(
                f"{where} does not require grad but the operand does; writing into it in place would "
                "drop the operand's gradient. Use an out-of-place op (c = c + x)"
            )
    if graph._local.modes.forward is not None and any(carries_tangent(o) for o in operands):
        raise RuntimeError(
            f"{where}: the operand carries a forward-mode tangent, which an in-place write cannot give "
            "the tensor (its tangent would be lost: jvp would read zeros). Use an out-of-place op "
            "(y = y + x, ab.where(mask, x, y), ab.concatenate([...]))"
        )
    if type(tensor.data) is not np.ndarray:
        return _inplace_foreign(tensor, method, write, where, operands, before_rebind)
    if not tensor.data.flags.writeable:
        raise RuntimeError(
            f"{where} is read-only: it shares memory with a tensor that requires grad (detach() of "
            "a graph tensor) or is a broadcast view; call .copy() (under ab.no_grad()) first"
        )
    arrays = [_unwrap(o) for o in operands]
    try:  # another library's operand: refused as every op refuses it (numpy would read it through __array__)
        backends.namespace(tensor.data, *arrays)
    except backends.MixedArraysError as error:
        raise backends.MixedArraysError(f"{where}: {error}") from None
    shape = np.shape(arrays[0])
    if method not in _ANY_OPERAND_SHAPE and shape != tensor.shape:
        try:
            fits = np.broadcast_shapes(shape, tensor.shape) == tensor.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"{where}: operand of shape {shape} does not broadcast to the tensor's shape "
                f"{tensor.shape} (an in-place op cannot change the shape)"
            )
    try:
        with quietly():  # like the out-of-place ops: inf/nan, no warnings
            if isinstance(write, np.ufunc):
                write(tensor.data, *arrays, out=tensor.data)
            else:
                write(tensor.data, *arrays)
    except (ValueError, TypeError, IndexError, OverflowError) as error:
        # (a list operand as the array it becomes: describe() would print all of its elements)
        described = ", ".join(backends.describe(np.asarray(a) if isinstance(a, list | tuple) else a) for a in arrays)
        # (an index's library: set_at; OverflowError: inf or 1e30 written into integers)
        kinds = (backends.MixedArraysError, IndexError, TypeError, ValueError, OverflowError)
        kind = next(k for k in kinds if isinstance(error, k))
        raise kind(f"{where}, operand {described}: {error}") from error
    tensor._version += 1
    return tensor


def rebound(tensor: Tensor, name: str, result: Tensor, other: Any) -> Tensor:
    """``result`` (``op(tensor, other)``, which ``tensor <name>= other`` rebinds the name to), after
    checking that it is what a write in place would give. Shapes: result has tensor's shape.

    PyTorch's in-place result keeps the tensor's shape and dtype; a rebind that changed either was
    silently another program (``y += zeros((3, 2))`` made a (2,) y (3, 2); float32 ``y += float64``
    made y float64), so it is refused, saying how to ask for the new tensor.
    """
    if tuple(result.shape) != tuple(tensor.shape):
        raise ValueError(
            f"{name}: tensor {backends.describe(tensor)}, operand {backends.describe(other)}: the result has shape "
            f"{tuple(result.shape)}, and an in-place op cannot change the shape. Write y = y {name[:-1]} other for a "
            "new tensor of the broadcast shape"
        )
    if result.dtype != tensor.dtype and _same_kind(result.data, tensor.data):
        # numpy's and PyTorch's in-place ops cast the result to the tensor's dtype where it is of
        # the same kind (float64 into float32): the same values the rebind takes, cast alike
        from autobp import ops

        result = ops.astype(result, tensor.dtype)
    if result.dtype != tensor.dtype:
        raise TypeError(
            f"{name}: tensor {backends.describe(tensor)}, operand {backends.describe(other)}: the result has dtype "
            f"{result.dtype}, and an in-place op keeps the tensor's dtype. Write y = y {name[:-1]} other for the "
            "promoted dtype, or cast the operand (other.astype(y.dtype))"
        )
    # The new tensor stands for the old one: it keeps its label and, if asked, its .grad
    # (``h.retain_grad(); h += 1`` lost the retained gradient: None where PyTorch keeps it).
    result.name = tensor.name
    if tensor.op is not None and tensor._rare is not None and tensor._retained:
        result.retain_grad()
    elif result.op is None and tensor.grad is not None:  # (off any graph: a .grad set by hand, which a write keeps)
        result.grad = tensor.grad
    return result


def _same_kind(result: Any, target: Any) -> bool:
    """Whether numpy arrays ``result`` can be written into ``target`` under numpy's in-place rule
    (casting ``"same_kind"``: float64 into float32, not float into int); other libraries: no."""
    return (
        type(result) is np.ndarray
        and type(target) is np.ndarray
        and np.can_cast(result.dtype, target.dtype, "same_kind")
    )


# In-place writes on another library's arrays. torch writes in place with its own methods, and
# its views share storage as numpy's do (``graph.share_storage`` gives them one version counter).
# array_api_strict: the standard leaves open whether two arrays share memory (a slice does there),
# so a write could change values a graph saved without any counter seeing it; ``+=`` rebinds, as
# for immutable types, and the named methods are refused. cupy: refused until tested on a GPU.
_TORCH_WRITES: dict[str, Callable[..., Any]] = {
    "add_": lambda out, other: out.add_(other),
    "sub_": lambda out, other: out.sub_(other),
    "mul_": lambda out, other: out.mul_(other),
    "div_": lambda out, other: out.div_(other),
    "+=": lambda out, other: out.add_(other),
    "-=": lambda out, other: out.sub_(other),
    "*=": lambda out, other: out.mul_(other),
    "/=": lambda out, other: out.div_(other),
    "copy_": lambda out, source: out.copy_(source),
    "fill_": lambda out, scalar: out.fill_(scalar),
    "zero_": lambda out, scalar: out.zero_(),
    "clamp_": lambda out, low, high: out.clamp_(low, high),
    "**=": lambda out, other: out.pow_(other),
    "@=": lambda out, other: _matmul_into(out, other),
    "&=": lambda out, other: out.logical_and_(other if hasattr(other, "new_tensor") else out.new_tensor(other)),
    "|=": lambda out, other: out.logical_or_(other if hasattr(other, "new_tensor") else out.new_tensor(other)),
}
# The writes whose result numpy casts to the tensor's dtype "same_kind" only (setitem and fill_ cast unsafely).
_SAME_KIND = {"add_", "sub_", "mul_", "div_", "+=", "-=", "*=", "/=", "**=", "@=", "copy_", "clamp_"}
# The writes whose operand need not broadcast to the tensor: its shape is checked by the write.
_ANY_OPERAND_SHAPE = ("setitem", "clamp_", "@=")


def _matmul_into(out: Any, other: Any) -> None:
    """``out @= other`` on torch, which has no in-place product: numpy's, in the operands' common
    dtype (torch's matmul takes one dtype), refused where the product has another shape (``copy_``
    would broadcast a (2, 1) product into a (2, 3) tensor)."""
    import torch  # (a torch tensor is here: torch is installed)

    common = torch.promote_types(out.dtype, other.dtype)
    product = torch.matmul(out.to(common), other.to(common))
    if tuple(product.shape) != tuple(out.shape):
        raise ValueError(f"the product has shape {tuple(product.shape)}, and an in-place op cannot change the shape")
    out.copy_(product)


def live_copy_error(where: str, read: str) -> str:
    """The refusal of a write into an array while a copy read from it lives where numpy reads a view."""
    return (
        f"{where}: a copy read from its memory by {read} is still alive, where numpy reads a view: torch "
        "has no negative-step views, so the write would not reach that copy as numpy's reaches the view, "
        "and the copy would keep the old values. Write once the copy is gone (del it), or read an explicit "
        "copy (v = t[::-1].copy()), which keeps the old values as numpy's copy does"
    )


_REBOUND = {"+=": "add", "-=": "sub", "*=": "mul", "/=": "div"}  # Python's own fallback for ``a += b``


def _inplace_foreign(
    tensor: Tensor,
    method: str,
    write: Callable[..., Any],
    where: _Where,
    operands: Any,
    before_rebind: Callable[[], None] | None,
) -> Tensor:
    """``_inplace`` for another library's array (after the graph checks, which hold for every library)."""
    if method in _REBOUND and before_rebind is not None and backends.library_name(tensor.data) != "torch":
        from autobp import ops

        # (first, holding no reference to the tensor's array: before_rebind counts them)
        before_rebind()
        return rebound(tensor, method, getattr(ops, _REBOUND[method])(tensor, operands[0]), operands[0])
    data = tensor.data
    arrays = [_unwrap(o) for o in operands]
    try:  # an operand of another library or device: an error naming both, never a silent copy
        xp = backends.namespace(data, *arrays)
    except backends.MixedArraysError as error:
        raise backends.MixedArraysError(f"{where}: {error}") from None
    if xp.name != "torch":
        why = (
            "the array API standard leaves open whether arrays share memory (a slice may), so autobp "
            "cannot tell which saved values a write would change"
            if xp.name == "array_api_strict"
            else "autobp writes in place only into numpy arrays and torch tensors so far"
        )
        raise RuntimeError(
            f"{where} ({xp.name}): in-place writes are refused: {why}. Use an out-of-place op (x = x + 1, "
            "x = ab.where(mask, value, x)), or t.to('numpy') / t.to('torch')"
        )
    read = storage.copy_for_view(data)
    if read is not None:
        raise RuntimeError(
            f"{where} holds a copy made by {read}, where numpy gives a view: torch has no "
            "negative-step views, so a write here would not reach the tensor it was read from, as "
            "numpy's would. Write through that tensor instead once this copy is gone (new = v + 1; "
            "del v; t[::-1] = new), or write into an explicit copy (v = v.copy())"
        )
    read = storage.live_copy(data)
    if read is not None:
        raise RuntimeError(live_copy_error(f"{where}", read))
    # numpy's broadcast views are read-only; torch's expand writes one element for many (b[0, 0] = 5
    # on a (3, 4) broadcast of a row changed all 3 rows of b, and the row), and so does a view of
    # one (b[0][0] = 5: b[0] is the row itself). data is a torch tensor here.
    if storage.in_broadcast_memory(data):
        raise RuntimeError(
            f"{where} is read-only: it is a broadcast view (or a view of one), whose elements share memory "
            "(as numpy's broadcast_to, which refuses writes); call .copy() (under ab.no_grad()) first, or write "
            "the tensor it was broadcast from"
        )
    if method not in _ANY_OPERAND_SHAPE and tuple(getattr(arrays[0], "shape", ())) != tuple(data.shape):
        shape = tuple(getattr(arrays[0], "shape", ()))
        try:
            fits = np.broadcast_shapes(shape, tuple(data.shape)) == tuple(data.shape)
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(
                f"{where}: operand of shape {shape} does not broadcast to the tensor's shape "
                f"{tuple(data.shape)} (an in-place op cannot change the shape)"
            )
    for operand in arrays:  # numpy raises where torch wraps (u8[0] = -1 stored 255)
        number = backends.int_out_of_bounds(data, operand)
        if number is not None:
            raise OverflowError(f"{where}: Python integer {number} out of bounds for {xp.dtype_name(data.dtype)}")
    _refuse_what_numpy_cannot_cast(where, method, xp, data, arrays)
    # An operand in the tensor's own memory (t[1:] = t[:-1], t[1:].add_(t[:-1])): numpy writes as
    # if it had copied the operand first; torch refuses a partial overlap. A copy gives numpy's.
    arrays = [_own_copy(operand, data) for operand in arrays]
    try:
        (_TORCH_WRITES[method] if method != "setitem" else write)(data, *arrays)
    except (ValueError, TypeError, IndexError, RuntimeError) as error:
        # (a list operand as the array it becomes: describe() would print all of its elements)
        described = ", ".join(backends.describe(np.asarray(a) if isinstance(a, list | tuple) else a) for a in arrays)
        kind = next(k for k in (IndexError, TypeError, ValueError, RuntimeError) if isinstance(error, k))
        if kind is RuntimeError:  # torch's cast and shape errors: a bad operand, as numpy says TypeError
            kind = TypeError if "cast" in str(error) else ValueError
        raise kind(f"{where}, operand {described}: {error}") from error
    tensor._version += 1
    return tensor


def _own_copy(operand: Any, data: Any) -> Any:
    """``operand``, or a copy of it where it is a torch tensor in ``data``'s storage."""
    storage = getattr(operand, "untyped_storage", None)
    if storage is None or operand.numel() == 0:
        return operand
    return operand.clone() if storage().data_ptr() == data.untyped_storage().data_ptr() else operand


def _refuse_what_numpy_cannot_cast(where: _Where, method: str, xp: Any, data: Any, operands: list[Any]) -> None:
    """numpy's TypeError for a write whose result the tensor's dtype takes only by an unsafe cast.

    torch casts more: an int64 operand into uint8 (wrapping), 1.5 into ints, 2 into bools; numpy
    refuses each ("same_kind"), and reads a numpy scalar as a typed array (u8 += np.int64(1)).
    """
    target = _numpy_dtype(xp, data.dtype) if method in _SAME_KIND else None
    if target is None:
        return
    for operand in operands:
        source: Any
        array = backends.library_of(operand) is not None
        if array:
            source = _numpy_dtype(xp, operand.dtype)
        elif isinstance(operand, int | float | complex | np.generic):
            source = operand  # weighed as numpy weighs it: 1.5 is a float, np.int64(1) an int64 array
        else:
            continue  # None (an open clamp_ bound), lists: as numpy reads them, left to torch
        if source is None:
            continue
        result = source if method == "copy_" and array else np.result_type(target, source)
        if not np.can_cast(result, target, "same_kind"):
            raise TypeError(
                f"{where}: cannot {'copy' if method == 'copy_' else 'write'} {backends.describe(operand)} "
                f"into it: numpy casts the {result} result 'same_kind' only (would change the kind)"
            )


def _numpy_dtype(xp: Any, dtype: Any) -> np.dtype[Any] | None:
    """A library's dtype as numpy's (None for those numpy lacks, as bfloat16)."""
    try:
        return np.dtype(xp.dtype_name(dtype))
    except TypeError:
        return None


def _torch() -> Any:
    import torch

    return torch
