"""Linear algebra: matrix products, ``dot``, ``outer`` and ``einsum``.

``matmul`` follows numpy: 1-D operands are promoted to a row (left) or a column (right) and the
promoted axis is removed from the result; leading batch axes broadcast. Its vjps work on the
promoted shapes and the engine sums broadcast batch axes back.
"""

from __future__ import annotations

import collections
import functools
import string
from collections.abc import Sequence
from typing import Any

from autobp.backends import as_array, describe, namespace
from autobp.ops.reduction_parts import accumulator
from autobp.ops.registry import Hints, composite, op
from autobp.ops.shape import array_of, broadcast_to, reshape, sum_to
from autobp.tensor import Tensor


def _check_aligned(x: Any, y: Any) -> None:
    """Raise a clear error for operands numpy's matmul refused (numpy names neither op nor axes)."""
    x, y = as_array(x), as_array(y)
    inputs = f"(inputs: {describe(x)}, {describe(y)})"
    if x.ndim == 0 or y.ndim == 0:
        raise ValueError(
            f"matmul: operands must have at least one dimension, got shapes {x.shape} and {y.shape} {inputs}"
        )
    k_x = x.shape[-1]
    k_y = y.shape[-2] if y.ndim > 1 else y.shape[0]
    if k_x != k_y:
        dim_y = -2 if y.ndim > 1 else -1
        raise ValueError(
            f"matmul: shapes {x.shape} and {y.shape} are not aligned: {k_x} (dim -1 of x) != {k_y} (dim {dim_y} of y) "
            + inputs
        )


# numpy's matmul is its fast forward (backends/numpy.py); each library's products with a transposed
# operand are its backend's matmul_nt and matmul_tn.
@op("matmul", arity=2, hints=Hints(shapes="matmul"), explain=_check_aligned)
def matmul(x: Any, y: Any) -> Any:
    """Matrix product ``x @ y``. Shapes: (..., m, k) @ (..., k, n) -> (..., m, n); 1-D as numpy."""
    x, y = as_array(x), as_array(y)
    return namespace(x, y).matmul(x, y)


# The rules take arrays of any library on the first-order path: they reshape with the op.
def _promoted(grad: Tensor, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Operands and output gradient with 1-D operands promoted to matrices."""
    if y.ndim == 1:
        y = reshape(y, (y.shape[0], 1))
        grad = reshape(grad, (*grad.shape, 1))
    if x.ndim == 1:
        x = reshape(x, (1, x.shape[0]))
        grad = reshape(grad, (*grad.shape[:-1], 1, grad.shape[-1]))
    return grad, x, y


def _matmul_dx(grad: Tensor, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    # d(xy)/dx: grad @ y^T
    g, x2, y2 = _promoted(grad, x, y)
    dx = matmul_nt(g, y2)
    return reshape(sum_to(dx, x2.shape), x.shape) if x.ndim == 1 else dx


def _matmul_dy(grad: Tensor, out: Tensor, x: Tensor, y: Tensor) -> Tensor:
    # d(xy)/dy: x^T @ grad
    g, x2, y2 = _promoted(grad, x, y)
    dy = matmul_tn(x2, g)
    return reshape(sum_to(dy, y2.shape), y.shape) if y.ndim == 1 else dy


matmul.defvjp(_matmul_dx, _matmul_dy, plain_arrays=True)
matmul.defjvp(
    lambda tangent, out, x, y: matmul(tangent, y),  # d(xy) = dx y
    lambda tangent, out, x, y: matmul(x, tangent),  # ... + x dy
    plain_arrays=True,
)


# A matmul's vjps multiply by a transposed operand. As ops of their own they are one call each
# (not a transpose and a product), in the eager backward and on a tape (BLAS names them NT, TN).
def _matrices(name: str, x: Any, y: Any) -> tuple[Any, Any]:
    """Both operands as arrays, refused unless both have two dimensions or more."""
    if not (hasattr(x, "ndim") and hasattr(y, "ndim")):  # (Python values; arrays go straight through)
        x, y = as_array(x), as_array(y)
    if x.ndim < 2 or y.ndim < 2:
        flat = x if x.ndim < 2 else y
        raise ValueError(f"{name}: operands must have at least two dimensions, got shape {tuple(flat.shape)}")
    return x, y


@op("matmul_nt", arity=2, hints=Hints(shapes="matmul_transposed"))
def matmul_nt(x: Any, y: Any) -> Any:
    """``x @ y^T``, ``y`` with its last two axes swapped. Shapes: (..., m, k), (..., n, k) -> (..., m, n)."""
    if not (hasattr(x, "ndim") and hasattr(y, "ndim")) or x.ndim < 2 or y.ndim < 2:  # (inline: W1's backward)
        x, y = _matrices("matmul_nt", x, y)
    return namespace(x, y).matmul_nt(x, y)


@op("matmul_tn", arity=2, hints=Hints(shapes="matmul_transposed"))
def matmul_tn(x: Any, y: Any) -> Any:
    """``x^T @ y``, ``x`` with its last two axes swapped. Shapes: (..., k, m), (..., k, n) -> (..., m, n)."""
    if not (hasattr(x, "ndim") and hasattr(y, "ndim")) or x.ndim < 2 or y.ndim < 2:  # (inline: W1's backward)
        x, y = _matrices("matmul_tn", x, y)
    return namespace(x, y).matmul_tn(x, y)


matmul_nt.defvjp(
    lambda grad, out, x, y: matmul(grad, y),  # d(x y^T)/dx = grad y
    lambda grad, out, x, y: matmul_tn(grad, x),  # d(x y^T)/dy = grad^T x
    plain_arrays=True,
)
matmul_tn.defvjp(
    lambda grad, out, x, y: matmul_nt(y, grad),  # d(x^T y)/dx = y grad^T
    lambda grad, out, x, y: matmul(x, grad),  # d(x^T y)/dy = x grad
    plain_arrays=True,
)
# Both are bilinear: each operand's tangent goes through the same product.
matmul_nt.defjvp(
    lambda tangent, out, x, y: matmul_nt(tangent, y),  # d(x y^T) = dx y^T
    lambda tangent, out, x, y: matmul_nt(x, tangent),  # ... + x dy^T
    plain_arrays=True,
)
matmul_tn.defjvp(
    lambda tangent, out, x, y: matmul_tn(tangent, y),  # d(x^T y) = dx^T y
    lambda tangent, out, x, y: matmul_tn(x, tangent),  # ... + x^T dy
    plain_arrays=True,
)


# -- einsum ---------------------------------------------------------------------------------------------
_LABELS = string.ascii_letters


@functools.lru_cache(maxsize=512)
def _parse(subscripts: str, shapes: tuple[tuple[int, ...], ...]) -> tuple[tuple[str, ...], str]:
    """Subscripts in explicit form, one label per axis: ``('ij', 'jk'), 'ik'``.

    Implicit outputs follow numpy (the labels seen once, sorted; broadcast axes first);
    ``...`` becomes labels unused elsewhere, right-aligned as numpy broadcasts them.
    """
    spec = subscripts.replace(" ", "")
    if spec.count("->") > 1 or any(c not in _LABELS and c not in ".,->" for c in spec):
        raise ValueError(f"einsum: invalid subscripts {subscripts!r}: use letters, ',', '...' and one '->'")
    lhs, explicit, rhs = spec.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: subscripts {subscripts!r} name {len(terms)} operands, got {len(shapes)}")
    widths = []
    for k, (term, shape) in enumerate(zip(terms, shapes, strict=True)):
        named = term.replace("...", "")
        if "." in named or (term != named and term.count("...") > 1):
            raise ValueError(f"einsum: invalid ellipsis in {term!r} of {subscripts!r}")
        width = len(shape) - len(named)
        if width < 0 or (width > 0 and "..." not in term):
            raise ValueError(
                f"einsum: operand {k} has shape {shape} but {term!r} in {subscripts!r} names {len(named)} axes"
            )
        widths.append(width)
    unused = [c for c in _LABELS if c not in spec]
    ellipsis = "".join(unused[: max(widths, default=0)])
    terms = [t.replace("...", ellipsis[len(ellipsis) - w :]) for t, w in zip(terms, widths, strict=True)]
    if not explicit:
        counts = collections.Counter("".join(terms))
        return tuple(terms), ellipsis + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ellipsis))
    if "..." not in rhs and ellipsis:
        raise ValueError(f"einsum: output of {subscripts!r} needs '...' for the broadcast axes of the operands")
    output = rhs.replace("...", ellipsis)
    if "." in output or len(set(output)) != len(output) or any(c not in "".join(terms) for c in output):
        raise ValueError(f"einsum: invalid output {rhs!r} in {subscripts!r}: each label once, seen in an input")
    return tuple(terms), output


def _check_sizes(subscripts: str, terms: tuple[str, ...], operands: tuple[Any, ...]) -> None:
    seen: dict[str, tuple[int, int]] = {}  # label -> (size, operand)
    for k, (term, x) in enumerate(zip(terms, operands, strict=True)):
        if len(set(term)) != len(term):  # a diagonal: equal sizes, no broadcasting within an operand
            sizes: dict[str, int] = {}
            for label, size in zip(term, x.shape, strict=True):
                if sizes.setdefault(label, size) != size:
                    raise ValueError(
                        f"einsum: label {label!r} of {subscripts!r} is repeated in operand {k} ({describe(x)}) "
                        f"with sizes {sizes[label]} and {size}: a diagonal needs equal sizes"
                    )
        for label, size in zip(term, x.shape, strict=True):
            first = seen.setdefault(label, (size, k))
            if size != first[0] and 1 not in (size, first[0]):
                raise ValueError(
                    f"einsum: label {label!r} of {subscripts!r} has size {first[0]} in operand {first[1]} "
                    f"({describe(operands[first[1]])}) but {size} in operand {k} ({describe(x)})"
                )
            if size != 1:
                seen[label] = (size, k)


@op("einsum", arity=None, hints=Hints(shapes="einsum"))
def _einsum(*operands: Any, subscripts: str) -> Any:
    """Einstein summation of ``operands`` as ``subscripts`` say (numpy's notation, ``...`` included).

    numpy, PyTorch and CuPy sum with their own ``einsum``; array-api-strict, which has none,
    multiplies with broadcasting and sums (``backends/strict.py``). Shapes: as the subscripts
    say; axes of size 1 broadcast. Floats narrower than float32 (float16) are multiplied and
    summed in float32 and rounded once, as PyTorch does (numpy's float16 einsum stalls).
    """
    if not isinstance(subscripts, str):
        raise TypeError(f"einsum: subscripts must be a str, got {type(subscripts).__name__}")
    arrays = tuple(as_array(x) for x in operands)
    terms, output = _parse(subscripts, tuple(tuple(x.shape) for x in arrays))
    _check_sizes(subscripts, terms, arrays)
    xp = namespace(*arrays)
    spec = ",".join(terms) + "->" + output
    if not any(accumulator(xp, x.dtype) for x in arrays):
        return xp.einsum(spec, *arrays)
    # float16 (bfloat16): numpy's einsum adds along an outer axis one row at a time in float16,
    # which stalls (3000 ones summed to 2048); computed in float32 and rounded once, as PyTorch does.
    dtype = xp.result_type(*arrays)
    wide = accumulator(xp, dtype)
    if wide is None:  # (a wider operand: the result is float32 or wider already)
        return xp.einsum(spec, *arrays)
    return xp.astype(xp.einsum(spec, *(xp.astype(x, wide) for x in arrays)), dtype)


def einsum(subscripts: str, *operands: Any) -> Tensor:
    """Einstein summation, as ``numpy.einsum(subscripts, *operands)``, differentiable in every operand.

    Implicit (``"ij,jk"``) and explicit (``"ij,jk->ik"``) forms, ``...`` broadcasting, repeated
    labels within an operand (diagonals: ``"ii->i"``, traces: ``"ii"``) and the same tensor passed
    twice all work, to any order of derivative. Shapes: as the subscripts say.

    >>> import autobp as ab
    >>> ab.einsum("ij,jk->ik", ab.ones((2, 3)), ab.ones((3, 4))).shape
    (2, 4)
    """
    return _einsum(*operands, subscripts=subscripts)


einsum.op = _einsum.op  # type: ignore[attr-defined]  # the registry entry, for tests and docs


def _einsum_vjp(
    grad: Tensor, out: Tensor, *operands: Tensor, needs: Sequence[bool], subscripts: str
) -> list[Tensor | None]:
    # d/dx_k of sum(grad * einsum(...)) contracts grad with every other operand: an einsum from
    # the output's labels and the others' labels to x_k's labels.
    terms, output = _parse(subscripts, tuple(tuple(x.shape) for x in operands))
    spare = iter(c for c in _LABELS if c not in output and all(c not in t for t in terms))
    grads: list[Tensor | None] = []
    for k, (x, needed) in enumerate(zip(operands, needs, strict=True)):
        if not needed:
            grads.append(None)
            continue
        specs, tensors = [output], [grad]
        for j, term in enumerate(terms):
            if j != k:
                specs.append(term)
                tensors.append(operands[j])
        # A label repeated within x_k (a diagonal) gets a fresh label, tied to the first by an identity.
        target = ""
        for position, label in enumerate(terms[k]):
            if label in target:
                fresh = next(spare)
                specs.append(label + fresh)
                array = array_of(grad)
                xp = namespace(array)
                eye = xp.eye(x.shape[position], dtype=array.dtype, device=xp.device(array))
                # (a constant: a Tensor beside a Tensor gradient, an array beside an array, first order)
                tensors.append(Tensor._wrap(eye) if isinstance(grad, Tensor) else eye)
                label = fresh
            target += label
        present = "".join(specs)
        kept = "".join(c for c in target if c in present)
        single = len(tensors) == 1 and specs[0] == kept  # nothing to contract: skip an identity einsum
        g = grad if single else einsum(",".join(specs) + "->" + kept, *tensors)
        # Labels only x_k has were summed, and axes of size 1 in the others broadcast over x_k's
        # axes: the gradient is the same along them (broadcast, to x_k's size, 0 included: the
        # larger size, taken before, was 1 for an empty axis, and the rule raised). The engine
        # sums the reverse case (an axis of size 1 in x_k, larger or 0 in the others).
        sizes = dict(zip(kept, g.shape, strict=True))
        if kept != target:
            g = reshape(g, tuple(sizes.get(c, 1) for c in target))
        shape = tuple(n if sizes.get(c, 1) == 1 else sizes[c] for c, n in zip(target, x.shape, strict=True))
        grads.append(g if g.shape == shape else broadcast_to(g, shape))
    return grads


_einsum.defvjp_variadic(_einsum_vjp, plain_arrays=True)


def _einsum_jvp(tangents: list[Any], out: Tensor, *operands: Tensor, subscripts: str) -> Any:
    # Multilinear: d einsum(x_1, ..., x_n) = sum_k einsum(x_1, ..., dx_k, ..., x_n).
    total = None
    for k, tangent in enumerate(tangents):
        if tangent is not None:
            part = einsum(subscripts, *operands[:k], tangent, *operands[k + 1 :])
            total = part if total is None else total + part
    return total


_einsum.defjvp_variadic(_einsum_jvp, plain_arrays=True)


# -- dot and outer: built from the ops above -------------------------------------------------------------
def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor._wrap(as_array(value))


@composite("dot", hints=Hints(shapes="dot"))
def dot(x: Any, y: Any) -> Tensor:
    """numpy's ``dot``: the product for 0-d operands, else a sum over the last axis of ``x`` and the
    second-to-last of ``y`` (the only one when 1-D).

    Shapes: () . s -> s; (k,) . (k,) -> (); (..., k) . (k,) -> (...); (..., m, k) . (*b, k, n) -> (..., m, *b, n).

    >>> import autobp as ab
    >>> ab.dot(ab.tensor([1.0, 2.0]), ab.tensor([3.0, 4.0])).item()
    11.0
    """
    x, y = _as_tensor(x), _as_tensor(y)
    if x.ndim == 0 or y.ndim == 0:
        return x * y
    k_y = y.shape[-2] if y.ndim > 1 else y.shape[0]
    if x.shape[-1] != k_y:
        raise ValueError(
            f"dot: shapes {x.shape} and {y.shape} are not aligned: {x.shape[-1]} (dim -1 of x) != {k_y} "
            f"(dim {-2 if y.ndim > 1 else 0} of y) (inputs: {describe(x)}, {describe(y)})"
        )
    if x.ndim == 1 or y.ndim <= 2:
        return matmul(x, y)  # the same contraction as matmul for these shapes
    # Both at least 2-D, y more: every batch of x meets every batch of y (no broadcasting).
    x_labels, y_labels = _LABELS[: x.ndim], _LABELS[x.ndim : x.ndim + y.ndim]
    y_labels = y_labels[:-2] + x_labels[-1] + y_labels[-1]
    return einsum(f"{x_labels},{y_labels}->{x_labels[:-1]}{y_labels[:-2]}{y_labels[-1]}", x, y)


@composite("outer", hints=Hints(shapes="outer"))
def outer(x: Any, y: Any) -> Tensor:
    """Outer product of the flattened inputs, as numpy's ``outer``.

    Shapes: x (s), y (t) -> (size of s, size of t).

    >>> import autobp as ab
    >>> ab.outer(ab.tensor([1.0, 2.0]), ab.tensor([1.0, 10.0, 100.0])).tolist()
    [[1.0, 10.0, 100.0], [2.0, 20.0, 200.0]]
    """
    return reshape(_as_tensor(x), (-1, 1)) * reshape(_as_tensor(y), (1, -1))
