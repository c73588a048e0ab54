"""numpy expressions a tape writes in place of a fast forward's Python function.

A tape's signature fixes every slot's array type, shape and dtype, so what a forward decides
per call (``sum_to``'s axes, whether ``matmul_nt`` gets two matrices) is decided once, when
the tape is compiled, and the replay calls numpy directly: no Python frame per step. Each form
computes what the forward computes, with the same numpy calls in the same order, so the numbers
are the same bit for bit (``tests/test_tape_program.py``); a form returns None where it does not
apply, and the replay calls the forward.

A form gets the traced operand values and the keywords, and returns a Python expression with
``{0}``, ``{1}``... for the operands (and ``np`` for numpy), or None.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from autobp.backends.numpy import is_outer
from autobp.backends.shapes import summed_axes

__all__ = ["FORMS", "form_of", "factor_of"]

Form = Callable[[Sequence[Any], Mapping[str, Any]], "str | None"]


def _matrices(values: Sequence[Any]) -> bool:
    return len(values) == 2 and all([type(v) is np.ndarray and v.ndim >= 2 for v in values])


def _swapped(value: Any, operand: str) -> str:
    # the view with the last two axes swapped; of a matrix that is .T (an attribute, not a call)
    return f"{operand}.T" if value.ndim == 2 else f"{operand}.swapaxes(-1, -2)"


def _matmul_nt(values: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    # backends.numpy.matmul_nt: x @ y^T through a view that swaps the last two axes; a product of
    # one term as the broadcast multiply it takes then (a replay is quiet throughout)
    if kwargs or not _matrices(values):
        return None
    x, y = values
    function = "np.multiply" if is_outer(x, y, -1) else "np.matmul"
    return f"{function}({{0}}, {_swapped(y, '{1}')})"


def _matmul_tn(values: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    if kwargs or not _matrices(values):
        return None
    x, y = values
    function = "np.multiply" if is_outer(x, y, -2) else "np.matmul"
    return f"{function}({_swapped(x, '{0}')}, {{1}})"


def _sum_to(values: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    # backends.numpy._sum_to with its axes worked out now; no axes: it returns x itself (left to it)
    if len(values) != 1:
        return None
    x, shape = values[0], kwargs.get("shape")
    if type(x) is not np.ndarray or set(kwargs) != {"shape"} or not isinstance(shape, tuple | list):
        return None
    if x.dtype.char == "e":  # float16: the forward accumulates in float32
        return None
    shape = tuple(shape)
    if not all([type(n) is int for n in shape]):
        return None
    axes = summed_axes(x.shape, shape)
    if not axes:
        return None
    kept = tuple([1 if i in axes else n for i, n in enumerate(x.shape)])
    if kept == shape:
        return f"np.add.reduce({{0}}, {axes!r}, keepdims=True)"
    # keepdims changes only the result's shape, not the sums: where dropping the summed axes
    # gives ``shape``, the array of that shape comes straight out (not a view that a result copies)
    dropped = tuple([n for i, n in enumerate(x.shape) if i not in axes])
    if dropped == shape and shape:  # (all axes dropped: numpy gives a scalar, not a 0-d array)
        return f"np.add.reduce({{0}}, {axes!r})"
    return f"np.add.reduce({{0}}, {axes!r}, keepdims=True).reshape({shape!r})"


def _sum(values: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    # backends.numpy._sum's branch for the total (axis None): numpy's reduction without the wrapper
    x = values[0] if len(values) == 1 else None
    if type(x) is not np.ndarray or kwargs.get("axis") is not None or set(kwargs) - {"axis", "keepdims"}:
        return None
    if x.dtype.char == "e":  # float16: the forward accumulates in float32
        return None
    keepdims = kwargs.get("keepdims", False)
    if type(keepdims) is not bool:
        return None
    return f"np.add.reduce({{0}}, None, keepdims={keepdims})"


FORMS: dict[str, Form] = {"matmul_nt": _matmul_nt, "matmul_tn": _matmul_tn, "sum_to": _sum_to, "sum": _sum}


def form_of(name: str, values: Sequence[Any], kwargs: Mapping[str, Any]) -> str | None:
    """The expression for op ``name`` on these traced operands, or None (call the forward)."""
    form = FORMS.get(name)
    return None if form is None else form(values, kwargs)


def factor_of(name: str, values: Sequence[Any], kwargs: Mapping[str, Any]) -> tuple[str, str] | None:
    """For ``tanh_backward(g, y)``, which is ``g * (1 - y^2)``: the factor's statements (``{d}``
    the factor, ``{1}`` y) and the product (``{0}`` g; the mark ``{into}``, ``tape.program.INTO``,
    is left for ``tape.program``), or None.

    The factor depends on ``y`` alone, and a forward-over-reverse program meets each tanh output
    in three of these (W5): the tape computes it once per ``y``. The forward
    (``backends.numpy._tanh_backward``) makes the same factor in the same two calls and
    multiplies into it; that holds for arrays of one shape and dtype, the only case taken here.
    """
    if name != "tanh_backward" or kwargs or len(values) != 2:
        return None
    g, y = values
    same = type(g) is np.ndarray and type(y) is np.ndarray and g.shape == y.shape and g.dtype == y.dtype
    # The forward's product goes into the factor (laid out as y); the form's takes the layout numpy
    # picks for g and the factor, which is the same where g and y are one contiguous layout.
    same = same and g.strides == y.strides and (y.flags.c_contiguous or y.flags.f_contiguous)
    if not same or y.ndim == 0 or y.dtype.kind != "f":  # (0-d: np.square gives a numpy scalar)
        return None
    return "{d} = np.square({1}); np.subtract(1, {d}, out={d})", "np.multiply({0}, {d}{{into}})"
