"""Reductions over ``axis=None|int|tuple`` (negative axes allowed) with ``keepdims``.

Shapes: x (s) -> s without the reduced axes (or with them set to 1 under ``keepdims``).
Each vjp reshapes the gradient to the kept shape, where it broadcasts against ``x``.
Conventions at the edges, all without numpy warnings:

- ``mean`` of no elements and ``var``/``std`` with ``ddof >= count`` give nan/inf, as numpy's
  values (numpy also warns; these ops do not).
- ``max``/``min``: tied extremes split the gradient equally, so its mass still sums to one.
- ``std`` where the spread is zero: gradient 0 (a subgradient; PyTorch gives nan there).
- ``prod``: exact gradients with zeros in the input, to second order. Elsewhere the gradient is
  ``out / x``, which loses precision when the product underflows (values near 1e-300).
"""

from __future__ import annotations

import builtins
import math
from typing import Any

import numpy as np

from autobp import graph
from autobp.ops.elementwise import exp, where
from autobp.ops.registry import Hints, op
from autobp.ops.shape import broadcast_to, kept_shape, normalize_axes
from autobp.tensor import Tensor

REDUCTION = Hints(shapes="reduction", kwargs={"keepdims": (False, True)})
# Ties meet finite differences at a kink: keep the elements apart for max, min and std.
DISTINCT_REDUCTION = Hints(shapes="reduction", kwargs={"keepdims": (False, True)}, distinct=True)
# Zeros take a separate path in prod's vjp (tested directly); tiny values make out / x lose precision.
NONZERO_REDUCTION = Hints(shapes="reduction", kwargs={"keepdims": (False, True)}, avoid=(0.0,), gap=0.05)
SPREAD = Hints(shapes="variance", kwargs={"ddof": (0, 1), "keepdims": (False, True)}, distinct=True)


def expand_reduced(grad: Tensor, x: Tensor, axis: Any) -> Tensor:
    """A reduction's output gradient broadcast back to the input's shape."""
    if axis is None or grad.ndim == x.ndim:  # a 0-d total, or keepdims: it broadcasts as it is
        return broadcast_to(grad, x.shape)
    axes = normalize_axes(axis, x.ndim, "reduction")
    return broadcast_to(grad.reshape(kept_shape(x.shape, axes)), x.shape)  # a method arrays share


def _kept(value: Tensor, x: Tensor, axis: Any) -> Tensor:
    """A reduction's output (or its gradient) with the reduced axes as 1s: it broadcasts against x."""
    return value.reshape(kept_shape(x.shape, normalize_axes(axis, x.ndim, "reduction")))


def _reduction_jvp(vjp: Any) -> Any:
    """A reduction's jvp from its vjp: the partials (the vjp of ones) times the tangent, reduced.

    ``d reduce(x) = sum_i (d out / d x_i) dx_i`` over the reduced axes.
    """

    def jvp(tangent: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
        ones = np.ones(np.shape(out), dtype=out.dtype)
        partials = vjp(
            ones if type(out) is np.ndarray else Tensor._wrap(ones), out, x, axis, keepdims=keepdims, **kwargs
        )
        return sum(partials * tangent, axis=axis, keepdims=keepdims)

    return jvp


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    """How many elements each output element reduces over."""
    return math.prod(shape[a] for a in axes)


@op("sum", hints=REDUCTION, linear=True)
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """Sum of elements over ``axis``. Shapes: see the module docstring."""
    if axis is None:  # the usual loss total: x.sum(), without its Python wrapper
        array: Any = x if type(x) is np.ndarray else np.asarray(x)
        return np.add.reduce(array, None, keepdims=keepdims)  # type: ignore[call-overload, no-any-return]
    x = np.asarray(x)
    return x.sum(axis=normalize_axes(axis, x.ndim, "sum"), keepdims=keepdims)


sum.defvjp(
    lambda grad, out, x, axis=None, keepdims=False: expand_reduced(grad, x, axis), plain_arrays=True
)  # d sum/dx_i = 1


@op("mean", hints=REDUCTION, linear=True)
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """Arithmetic mean over ``axis`` (nan over no elements). Shapes: see the module docstring.

    >>> import autobp as ab
    >>> ab.mean(ab.tensor([[1.0, 2.0], [3.0, 6.0]]), axis=0).tolist()
    [2.0, 4.0]
    """
    x = np.asarray(x)
    axes = normalize_axes(axis, x.ndim, "mean")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.true_divide(np.sum(x, axis=axes, keepdims=keepdims), _count(x.shape, axes))


def _mean_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    # d mean/dx_i = 1/n
    # Divide before broadcasting: the division runs on the small output, the broadcast is a view.
    return broadcast_to(_kept(grad, x, axis) / _count(x.shape, normalize_axes(axis, x.ndim, "mean")), x.shape)


mean.defvjp(_mean_dx, plain_arrays=True)


def _variance(x: np.ndarray, axes: tuple[int, ...], ddof: int, keepdims: bool) -> np.ndarray:
    count = _count(x.shape, axes)
    with np.errstate(invalid="ignore", divide="ignore"):
        centered = x - np.sum(x, axis=axes, keepdims=True) / count
        return np.sum(centered * centered, axis=axes, keepdims=keepdims) / builtins.max(count - ddof, 0)


def _centered_scaled(x: Tensor, axis: Any, ddof: int, name: str, factor: float = 1.0) -> Tensor:
    """``factor * (x - mean(x)) / (n - ddof)``, in autobp ops (nan when ``n <= ddof``)."""
    count = _count(x.shape, normalize_axes(axis, x.ndim, name))
    scale = factor / (count - ddof) if count > ddof else math.nan
    return (x - mean(x, axis=axis, keepdims=True)) * scale


@op("var", hints=SPREAD)
def var(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> np.ndarray:
    """Variance over ``axis``, dividing by ``n - ddof``. Shapes: see the module docstring.

    >>> import autobp as ab
    >>> ab.var(ab.tensor([1.0, 2.0, 3.0, 4.0]), ddof=1).item()
    1.6666666666666667
    """
    x = np.asarray(x)
    return _variance(x, normalize_axes(axis, x.ndim, "var"), ddof, keepdims)


def _var_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    # d var/dx_i = 2 (x_i - mean) / (n - ddof)
    return _kept(grad, x, axis) * _centered_scaled(x, axis, ddof, "var", 2.0)


var.defvjp(_var_dx, plain_arrays=True)
var.defjvp(_reduction_jvp(_var_dx), plain_arrays=True)


@op("std", hints=SPREAD)
def std(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> np.ndarray:
    """Standard deviation over ``axis``, ``sqrt(var)``; its gradient is 0 where it is 0.

    Shapes: see the module docstring.

    >>> import autobp as ab
    >>> ab.std(ab.tensor([1.0, 3.0])).item()
    1.0
    """
    x = np.asarray(x)
    with np.errstate(invalid="ignore"):
        return np.sqrt(_variance(x, normalize_axes(axis, x.ndim, "std"), ddof, keepdims))


def _std_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    # d std/dx_i = (x_i - mean) / ((n - ddof) std); the safe denominator keeps nan out of second order.
    spread = _kept(out, x, axis)
    graph.mark_untapeable("std's gradient reads where the deviation is zero")
    flat = spread.data == 0
    scaled = _kept(grad, x, axis) / where(flat, 1.0, spread)
    return where(flat, 0.0, scaled * _centered_scaled(x, axis, ddof, "std"))


std.defvjp(_std_dx, plain_arrays=False)  # reads .data
std.defjvp(_reduction_jvp(_std_dx), plain_arrays=False)


@op("prod", hints=NONZERO_REDUCTION)
def prod(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """Product of elements over ``axis``. Shapes: see the module docstring.

    >>> import autobp as ab
    >>> ab.prod(ab.tensor([[1.0, 2.0], [3.0, 4.0]]), axis=1).tolist()
    [2.0, 12.0]
    """
    x = np.asarray(x)
    return np.prod(x, axis=normalize_axes(axis, x.ndim, "prod"), keepdims=keepdims)


def _prod_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    # d prod/dx_i = prod_{j != i} x_j, which is out / x_i when the slice holds no zero.
    grad, out = _kept(grad, x, axis), _kept(out, x, axis)
    graph.mark_untapeable("prod's gradient reads where the input is zero")
    is_zero = x.data == 0
    if not is_zero.any():
        return grad * out / x
    axes = normalize_axes(axis, x.ndim, "prod")
    zeros = np.sum(is_zero, axis=axes, keepdims=True)
    nonzero_product = prod(where(is_zero, 1.0, x), axis=axes, keepdims=True)
    # At a zero, the other elements' product is the nonzero product times the other zeros: 1 of
    # them (one zero), x_k (two zeros: the sum of zeros minus x_i, kept so that second order is
    # exact), or 0 (three or more). Elsewhere out / x_i is 0 in value, with the right derivative.
    zero_sum = sum(where(is_zero, x, 0.0), axis=axes, keepdims=True)
    other_zeros = where(zeros == 1, 1.0, where(zeros == 2, zero_sum - x, 0.0))
    return grad * where(is_zero, nonzero_product * other_zeros, out / where(is_zero, 1.0, x))


prod.defvjp(_prod_dx, plain_arrays=False)  # reads .data
prod.defjvp(_reduction_jvp(_prod_dx), plain_arrays=False)


@op("logsumexp", hints=REDUCTION)
def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
    """``log(sum(exp(x)))`` over ``axis``, without overflow. Shapes: see the module docstring.

    >>> import autobp as ab
    >>> round(ab.logsumexp(ab.tensor([1e4, 1e4])).item() - 1e4, 9)  # 1e4 + log(2)
    0.693147181
    """
    x = np.asarray(x)
    axes = normalize_axes(axis, x.ndim, "logsumexp")
    peak = np.max(x, axis=axes, keepdims=True)
    # Shifting by the peak keeps exp from overflowing; infinite peaks are not shifted (inf - inf).
    peak = np.where(np.isfinite(peak), peak, 0)
    with np.errstate(divide="ignore"):
        result = np.log(np.sum(np.exp(x - peak), axis=axes, keepdims=True)) + peak
    return result if keepdims else result.reshape([n for i, n in enumerate(x.shape) if i not in axes])


def _logsumexp_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    # d lse/dx_i = softmax(x)_i = exp(x_i - lse)
    return _kept(grad, x, axis) * exp(x - _kept(out, x, axis))


logsumexp.defvjp(_logsumexp_dx, plain_arrays=True)
logsumexp.defjvp(_reduction_jvp(_logsumexp_dx), plain_arrays=True)


def _extreme(name: str, reduce: Any) -> Any:
    def forward(x: Any, axis: Any = None, keepdims: bool = False) -> np.ndarray:
        x = np.asarray(x)
        return reduce(x, axis=normalize_axes(axis, x.ndim, name), keepdims=keepdims)

    forward.__name__ = name
    forward.__doc__ = (
        f"The {name}imum over ``axis``; tied elements share the gradient equally (it sums to one).\n\n"
        "    Shapes: see the module docstring.\n\n"
        "    >>> import autobp as ab\n"
        f"    >>> x = ab.tensor({[1.0, 3.0, 3.0] if name == 'max' else [3.0, 1.0, 1.0]}, requires_grad=True)\n"
        f"    >>> ab.{name}(x).backward()\n"
        "    >>> x.grad.tolist()\n"
        "    [0.0, 0.5, 0.5]\n"
    )
    public = op(name, hints=DISTINCT_REDUCTION)(forward)

    def vjp(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
        # 1/k at each of the k elements that reach the extreme, 0 elsewhere: piecewise constant.
        axes = normalize_axes(axis, x.ndim, name)
        graph.mark_untapeable(f"{name}'s gradient reads which elements reach the {name}imum")
        hits = x.data == out.data.reshape(kept_shape(x.shape, axes))
        ties = np.sum(hits, axis=axes, keepdims=True, dtype=np.intp)
        if (ties == 1).all():  # the common case, no ties: skip the division
            return _kept(grad, x, axis) * hits
        with np.errstate(invalid="ignore", divide="ignore"):  # nan extremes hit nothing: 0/0
            share = (hits / ties).astype(x.dtype, copy=False)
        return _kept(grad, x, axis) * share

    public.defvjp(vjp, plain_arrays=False)  # reads .data
    public.defjvp(_reduction_jvp(vjp), plain_arrays=False)
    return public


max = _extreme("max", np.max)
min = _extreme("min", np.min)


def _arg_extreme(name: str, reduce: Any) -> Any:
    def forward(x: Any, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
        if axis is not None and not isinstance(axis, int | np.integer):
            raise TypeError(f"{name}: axis must be an int or None, got {axis!r}")
        return reduce(x, axis=axis, keepdims=keepdims)

    forward.__name__ = name
    forward.__doc__ = (
        f"Index of the {name[3:]}imum along ``axis`` (of the flattened array when None); the first on ties.\n\n"
        "    Integer result, no gradient. Shapes: x (s) -> s without ``axis`` (as 1 under keepdims).\n"
    )
    return op(name, hints=Hints(shapes="argreduction", kwargs={"keepdims": (False, True)}), differentiable=False)(
        forward
    )


argmax = _arg_extreme("argmax", np.argmax)
argmin = _arg_extreme("argmin", np.argmin)
