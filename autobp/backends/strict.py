"""array-api-strict: the array API standard and nothing more.

The test suite runs the whole op registry on it (``--backend array_api_strict``), so a numpy-only
call in an op fails there instead of on a user's GPU. Its extras are the standard's own, slow
spellings of what numpy does in one call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autobp.backends.interface import EXTRAS
from autobp.backends.standard_extras import native_copy, written_in_the_standard

NAME = "array_api_strict"
__all__ = list(EXTRAS)  # every extra (autobp/backends/interface.py)


def standard() -> Any:
    import array_api_strict

    return array_api_strict


def to_numpy(x: Any) -> np.ndarray:
    # The standard's own way out: DLPack (a copy keeps the host array independent).
    return np.array(np.from_dlpack(x), copy=True)


def from_numpy(array: np.ndarray, device: Any = None) -> Any:
    xp = standard()
    return xp.asarray(native_copy(array), device=None if device in (None, "cpu") else device)


def device(x: Any) -> Any:
    return x.device


def device_name(x: Any) -> str:
    return "cpu" if x.device == standard().Device("CPU_DEVICE") else str(x.device)


def dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("array_api_strict.")


def float_dtype(dtype: Any) -> bool:
    return bool(standard().isdtype(dtype, "real floating"))


def is_view(x: Any) -> bool:
    # The standard does not say which results share memory, and array-api-strict's do where the
    # numpy arrays inside do (a slice, a reshape): a write through the array a view looks into (an
    # optimizer's step) changes it. Unknown to autobp, such a view kept a version counter of its
    # own, so a node that had saved it gave a gradient of the new values without an error. Every
    # result may be one: share_storage then compares its memory's owner with its inputs'.
    return True


def owns_memory(x: Any) -> bool:
    inside = x._array  # (no numpy view, nor read-only: a broadcast)
    return inside.base is None and inside.flags.writeable


def memory_owner(x: Any) -> Any:
    # (the numpy array owning the memory of the one inside: no array-api-strict array owns it)
    from autobp.backends.numpy import memory_owner as numpy_owner

    return numpy_owner(x._array)


def strides(x: Any) -> Any:
    # The standard has no strides, but the numpy array it wraps lays values out all the same: a
    # sum over a strided slice adds in another order than over a copy (a tape keys on it).
    return x._array.strides


def scatter_add(target: Any, index: Any, values: Any) -> Any:
    """``target`` with ``values`` added at ``index``; repeated positions accumulate (a new array)."""
    host = to_numpy(target)
    np.add.at(
        host,
        tuple(to_numpy(i) if hasattr(i, "__array_namespace__") else i for i in _as_tuple(index)),
        to_numpy(values) if hasattr(values, "__array_namespace__") else values,
    )
    return from_numpy(host.astype(host.dtype), device(target))


def _as_tuple(index: Any) -> tuple[Any, ...]:
    return index if isinstance(index, tuple) else (index,)


def quiet(function: Any) -> Any:
    return function


# -- convolution / pooling (ops/nn.py) ------------------------------------------------------------
def sliding_windows(x: Any, kernel: tuple[int, int], stride: tuple[int, int]) -> Any:
    """Every ``kernel`` window of the last two axes, ``stride`` apart (a copy: the standard has no views).

    Shapes: x (..., H, W) -> (..., Ho, Wo, kh, kw) with ``Ho = (H - kh) // sh + 1``.
    """
    xp = standard()
    (kh, kw), (sh, sw) = kernel, stride
    rows, columns = (x.shape[-2] - kh) // sh + 1, (x.shape[-1] - kw) // sw + 1
    # One strided slice per kernel offset (i, j), stacked last in (i, j) order: then (kh, kw).
    parts = [
        x[..., i : i + sh * (rows - 1) + 1 : sh, j : j + sw * (columns - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    return xp.reshape(xp.stack(parts, axis=-1), (*x.shape[:-2], rows, columns, kh, kw))


# -- shape / indexing / linalg ---------------------------------------------------------------------
sum_kept, matmul_nt, matmul_tn = written_in_the_standard(standard)


# Whether x[key] means numpy's for integer arrays anywhere in a key and for negative steps; where
# not, ops/indexing.py reads elements by flat position instead (ops/positions.py).
advanced_indexing = "nowhere"  # integer arrays only with integers, a mask only alone: autobp reads flat positions
negative_steps = True


def einsum(subscripts: str, *operands: Any) -> Any:
    """Einstein summation from the standard's functions: diagonals taken, operands laid out over
    all labels, multiplied with broadcasting and summed (memory grows with the labels' product:
    this library is for testing, not speed). ``subscripts`` explicit, one letter per axis."""
    xp = standard()
    inputs, output = subscripts.split("->")
    terms = inputs.split(",")
    labels = list(output) + sorted({c for t in terms for c in t} - set(output))
    total = None
    for term, x in zip(terms, operands, strict=True):
        term, x = _diagonals(xp, term, x)
        order = sorted(range(len(term)), key=lambda i: labels.index(term[i]))
        x = xp.permute_dims(x, tuple(order))
        sizes = dict(zip((term[i] for i in order), x.shape, strict=True))
        x = xp.reshape(x, tuple(sizes.get(c, 1) for c in labels))
        total = x if total is None else total * x
    assert total is not None
    summed = tuple(range(len(output), len(labels)))
    # In the operands' dtype, as numpy's einsum (the standard's sum widens uint8 to uint64).
    return xp.sum(total, axis=summed, dtype=total.dtype) if summed else total


def _diagonals(xp: Any, term: str, x: Any) -> tuple[str, Any]:
    """``x`` with each label repeated in ``term`` reduced to its diagonal (one axis, last)."""
    while len(set(term)) != len(term):
        label = next(c for c in term if term.count(c) > 1)
        first, second = term.index(label), term.index(label, term.index(label) + 1)
        rest = [i for i in range(len(term)) if i not in (first, second)]
        n = x.shape[first]
        x = xp.reshape(xp.permute_dims(x, (*rest, first, second)), (*(x.shape[i] for i in rest), n * n))
        x = xp.take(x, xp.arange(n, device=x.device) * (n + 1), axis=-1)  # elements (k, k)
        term = "".join(term[i] for i in rest) + label
    return term, x


# No pad of its own: ops/padding.py pads with take and concat.
pad = None
