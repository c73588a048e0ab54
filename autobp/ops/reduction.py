"""Reductions over ``axis=None|int|tuple`` (negative axes allowed) with ``keepdims``.

Shapes: x (s) -> s without the reduced axes (or with them set to 1 under ``keepdims``).
Each vjp reshapes the gradient to the kept shape, where it broadcasts against ``x``.
Conventions at the edges, all without numpy warnings:

- ``mean`` of no elements and ``var``/``std`` with ``ddof >= count`` give nan/inf, as numpy's
  values (numpy also warns; these ops do not).
- ``logsumexp`` of no elements is ``-inf`` (the log of an empty sum), as in PyTorch and scipy;
  its gradient is empty and its jvp 0.
- ``std`` where the spread is zero: gradient 0 (a subgradient; PyTorch gives nan there).
- ``std`` of deviations whose squares underflow (float32 below 1e-19, float64 below 1e-154) or
  overflow (float32 above 1.8e19): they are scaled by the largest before squaring, so the std
  keeps its digits (PyTorch's float32, summed in float64, does too); float32 ``[1e-23, -1e-23]``
  had std 0, ``[1e20, -1e20]`` inf.
- ``prod``: exact derivatives of every order with any number of zeros in the input: a gradient
  that is itself differentiated takes, in slices with a zero, products of the other elements
  (exclusive prefix times suffix products, no division). Beside an infinity, each element's
  gradient is the IEEE product of the others (``[inf, 2]``: ``[2, inf]``, where ``out / x`` gave
  nan). Elsewhere the gradient is ``out / x``, which loses precision when the product underflows
  (values near 1e-300).
- Floats narrower than float32 (float16, PyTorch's bfloat16): ``mean``, ``var`` and ``std``
  accumulate in float32, forward and backward, and round the result to the input's dtype, as
  numpy's ``mean`` and PyTorch do; so do ``sum`` (numpy's float16 sum along an outer axis stalls)
  and ``logsumexp``.

``max``, ``min``, ``argmax`` and ``argmin``, which pick elements, are in ``autobp.ops.reduction_extremes``.
"""

from __future__ import annotations

import builtins
import math
from typing import Any

from autobp import graph
from autobp.backends import namespace
from autobp.backends.standard_extras import total_as_numpy
from autobp.ops.elementwise import exp, less, quiet, sign, where
from autobp.ops.indexing import getitem
from autobp.ops.reduction_parts import (
    accumulator,
    as_array,
    divided,
    element_count,
    expand_reduced,
    floats,
    in_float32,
    kept,
)
from autobp.ops.registry import Hints, op
from autobp.ops.shape import array_of, broadcast_to, kept_shape, normalize_axes, pad, reshape, transpose
from autobp.tensor import Tensor

REDUCTION = Hints(shapes="reduction", kwargs={"keepdims": (False, True)})
# Ties meet finite differences at a kink: keep the elements apart for max, min and std.
DISTINCT_REDUCTION = Hints(shapes="reduction", kwargs={"keepdims": (False, True)}, distinct=True)
# Zeros take a separate path in prod's vjp (tested directly); tiny values make out / x lose precision.
NONZERO_REDUCTION = Hints(shapes="reduction", kwargs={"keepdims": (False, True)}, avoid=(0.0,), gap=0.05)
SPREAD = Hints(shapes="variance", kwargs={"ddof": (0, 1), "keepdims": (False, True)}, distinct=True)


def reduction_jvp(vjp: Any, picks: bool = False) -> Any:
    """A reduction's jvp from its vjp: the partials (the vjp of ones) times the tangent, reduced.

    ``d reduce(x) = sum_i (d out / d x_i) dx_i`` over the reduced axes. ``picks``: a reduction
    that picks elements (max, min), whose other elements' tangents are left out, not multiplied by 0.
    """

    def jvp(tangent: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
        data = array_of(out)
        ones = namespace(data).ones_like(data)
        seed = Tensor._wrap(ones) if isinstance(out, Tensor) else ones
        partials = vjp(seed, out, x, axis, keepdims=keepdims, **kwargs)
        if picks:
            # An element that does not reach the extreme takes no part: its tangent, even inf or
            # nan, must not give 0 * inf = nan (max(sqrt([0, 4])) with tangent [1, 1]: 0.25, not nan).
            tangent = where(partials == 0, 0.0, tangent)
        return sum(partials * tangent, axis=axis, keepdims=keepdims)

    return jvp


@op("sum", hints=REDUCTION, linear=True)
def sum(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Sum of elements over ``axis``. Shapes: see the module docstring."""
    xp = namespace(x)
    x = as_array(xp, x)
    axes = None if axis is None else normalize_axes(axis, x.ndim, "sum")
    wide = accumulator(xp, x.dtype)
    if wide is None:
        return total_as_numpy(xp, xp.sum, x, axes, keepdims)
    # float16: numpy adds along an outer axis one row at a time in float16, which stalls (a column
    # of 20000 x 0.01 summed to 32); PyTorch accumulates in float32, as here.
    return xp.astype(xp.sum(x, axis=axes, keepdims=keepdims, dtype=wide), x.dtype)


sum.defvjp(
    lambda grad, out, x, axis=None, keepdims=False: expand_reduced(grad, x, axis), plain_arrays=True
)  # d sum/dx_i = 1


@op("mean", hints=REDUCTION, linear=True)
@quiet
def mean(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Arithmetic mean over ``axis`` (nan over no elements). Shapes: see the module docstring.

    >>> import autobp as ab
    >>> ab.mean(ab.tensor([[1.0, 2.0], [3.0, 6.0]]), axis=0).tolist()
    [2.0, 4.0]
    """
    xp = namespace(x)
    x = floats(xp, as_array(xp, x))
    axes = normalize_axes(axis, x.ndim, "mean")
    wide = accumulator(xp, x.dtype)
    if wide is None:
        return xp.sum(x, axis=axes, keepdims=keepdims) / element_count(x.shape, axes)
    # float16: summed and divided in float32, rounded once (numpy's mean does the same)
    return xp.astype(xp.sum(x, axis=axes, keepdims=keepdims, dtype=wide) / element_count(x.shape, axes), x.dtype)


def _mean_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    # d mean/dx_i = 1/n
    # Divide before broadcasting: the division runs on the small output, the broadcast is a view.
    n = element_count(x.shape, normalize_axes(axis, x.ndim, "mean"))
    return broadcast_to(divided(kept(grad, x, axis), n), x.shape)


mean.defvjp(_mean_dx, plain_arrays=True)


@quiet
def _spread(x: Any, axis: Any, ddof: int, keepdims: bool, name: str, root: bool) -> Any:
    """The variance (with ``root``, its square root) in the library's own calls, two passes (the
    mean, then the squared deviations). A narrower float runs in float32 and is rounded once."""
    xp = namespace(x)
    x = floats(xp, as_array(xp, x))
    wide = accumulator(xp, x.dtype)
    if wide is not None:
        return xp.astype(_spread(xp.astype(x, wide), axis, ddof, keepdims, name, root), x.dtype)
    axes = normalize_axes(axis, x.ndim, name)
    count = element_count(x.shape, axes)
    centered = x - xp.sum(x, axis=axes, keepdims=True) / count
    variance = xp.sum(centered * centered, axis=axes, keepdims=keepdims) / builtins.max(count - ddof, 0)
    if not root:
        return variance  # (a variance this small is subnormal itself: its squares' rounding is its own)
    lost = xp.logical_or(variance < _UNDERFLOWS[x.dtype == xp.float32], variance == math.inf)
    if axes and count > ddof and xp.any(lost):
        # Squares of deviations below sqrt(tiny) (float32 1e-19, float64 1e-154) are subnormal or
        # 0: float32 [1e-23, -1e-23] had std 0; above sqrt(max) (1.8e19, 1.3e154) they are inf,
        # whose square root is not. Scaled by their largest, they keep their digits.
        largest = xp.max(xp.abs(centered), axis=axes, keepdims=True)
        largest = xp.where(largest > 0, largest, 1.0)  # (all equal: the deviations are 0 either way)
        scaled = centered / largest
        variance = xp.sum(scaled * scaled, axis=axes, keepdims=keepdims) / (count - ddof)
        return xp.sqrt(variance) * (largest if keepdims else xp.reshape(largest, tuple(variance.shape)))
    return xp.sqrt(variance)  # (no warning: a variance is never negative, nan stays nan)


# Below these (tiny / eps of float64, float32) a variance may have lost digits to squares that
# underflowed, and at inf to squares that overflowed; std then scales the deviations first (a
# rare second pass: a zero spread is one).
_UNDERFLOWS = (2.0**-1022 / 2.0**-52, 2.0**-126 / 2.0**-23)


def _centered_scaled(x: Tensor, axis: Any, ddof: int, name: str, factor: float = 1.0) -> Tensor:
    """``factor * (x - mean(x)) / (n - ddof)``, in autobp ops (nan when ``n <= ddof``)."""
    count = element_count(x.shape, normalize_axes(axis, x.ndim, name))
    scale = factor / (count - ddof) if count > ddof else math.nan
    return (x - mean(x, axis=axis, keepdims=True)) * scale


@op("var", hints=SPREAD)
def var(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    """Variance over ``axis``, dividing by ``n - ddof``. Shapes: see the module docstring.

    >>> import autobp as ab
    >>> ab.var(ab.tensor([1.0, 2.0, 3.0, 4.0]), ddof=1).item()
    1.6666666666666667
    """
    return _spread(x, axis, ddof, keepdims, "var", root=False)


def _var_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    # d var/dx_i = 2 (x_i - mean) / (n - ddof)
    return kept(grad, x, axis) * _centered_scaled(x, axis, ddof, "var", 2.0)


var.defvjp(in_float32(_var_dx), plain_arrays=True)
var.defjvp(in_float32(reduction_jvp(_var_dx)), plain_arrays=True)


@op("std", hints=SPREAD)
def std(x: Any, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Any:
    """Standard deviation over ``axis``, ``sqrt(var)``; its gradient is 0 where it is 0.

    Shapes: see the module docstring.

    >>> import autobp as ab
    >>> ab.std(ab.tensor([1.0, 3.0])).item()
    1.0
    """
    return _spread(x, axis, ddof, keepdims, "std", root=True)


def _std_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, ddof: int = 0, keepdims: bool = False) -> Tensor:
    # d std/dx_i = (x_i - mean) / ((n - ddof) std); the safe denominator keeps nan out of second order.
    spread = kept(out, x, axis)
    graph.mark_untapeable("std's gradient reads where the deviation is zero")
    flat = array_of(spread) == 0
    # (centered / spread first, an O(1) ratio: grad / spread, then times centered, made second order
    # go through 1 / spread**2, which overflows at a spread of 1e-170 and underflows at 1e170)
    ratio = _centered_scaled(x, axis, ddof, "std") / where(flat, 1.0, spread)
    return where(flat, 0.0, kept(grad, x, axis) * ratio)


std.defvjp(in_float32(_std_dx), plain_arrays=True)
std.defjvp(in_float32(reduction_jvp(_std_dx)), plain_arrays=True)


@op("prod", hints=NONZERO_REDUCTION)
def prod(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """Product of elements over ``axis``. Shapes: see the module docstring.

    >>> import autobp as ab
    >>> ab.prod(ab.tensor([[1.0, 2.0], [3.0, 4.0]]), axis=1).tolist()
    [2.0, 12.0]
    """
    xp = namespace(x)
    x = as_array(xp, x)
    return total_as_numpy(xp, xp.prod, x, normalize_axes(axis, x.ndim, "prod"), keepdims)


def _prod_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    # d prod/dx_i = prod_{j != i} x_j, which is out / x_i when the slice holds no zero.
    grad, out = kept(grad, x, axis), kept(out, x, axis)
    graph.mark_untapeable("prod's gradient reads where the input is zero")
    values = array_of(x)
    xp = namespace(values)
    is_zero = values == 0
    is_infinite = xp.isinf(values)
    has_infinity = xp.any(is_infinite)
    if not has_infinity and not xp.any(is_zero):
        # out / x first: the other elements' product fits wherever the gradient does; grad * out
        # first overflowed when both fit (float16 [300, 200] times 2: inf, not [400, 600]).
        return grad * (out / x)
    axes = normalize_axes(axis, x.ndim, "prod")
    modes = graph._local.modes
    if isinstance(x, Tensor) and (modes.enabled or modes.forward):
        # The gradient is itself differentiated (create_graph, or a forward-mode level around the
        # rule): the forms below hold the other zeros constant, and every derivative of order k
        # at k or more zeros came out 0.
        return grad * _others_differentiably(x, out, is_zero | is_infinite, axes)
    zeros = xp.sum(xp.astype(is_zero, values.dtype), axis=axes, keepdims=True)  # how many per slice
    if has_infinity:  # out / x would be inf / inf (nan) at an infinity: [inf, 2] has gradient [2, inf]
        return grad * _others_beside_infinities(x, values, is_zero, zeros, is_infinite, axes)
    nonzero_product = prod(where(is_zero, 1.0, x), axis=axes, keepdims=True)
    # At a zero, the other elements' product is the nonzero product times the other zeros' product:
    # 1 (one zero) or 0 (two or more). Elsewhere out / x_i, 0 in value.
    other_zeros = where(zeros == 1, 1.0, 0.0)
    return grad * where(is_zero, nonzero_product * other_zeros, out / where(is_zero, 1.0, x))


def _others_differentiably(x: Tensor, out: Tensor, special: Any, axes: tuple[int, ...]) -> Tensor:
    """``prod_{j != i} x_j`` for each element (x's shape), differentiable at every order.

    ``special`` (x's shape, bool) marks zeros and infinities. Slices that hold one take the
    exclusive products of ``_exclusive_products``, IEEE products of the others as first order
    gives them; the others keep ``out / x`` (``out`` with the reduced axes kept), the first-order
    path's bits, whose derivatives are exact where no element is zero.
    """
    values = array_of(x)
    xp = namespace(values)
    held = xp.sum(xp.astype(special, values.dtype), axis=axes, keepdims=True) > 0  # per slice
    # Each branch sees ones where the other is taken: a branch left out still gets a zero cotangent,
    # and an inf or nan in it (a product of the others that overflows, out / x at an infinity)
    # would turn that zero into nan.
    quotient = where(held, 1.0, out) / where(held, 1.0, x)
    return where(held, _exclusive_products(where(held, x, 1.0), axes), quotient)


def _exclusive_products(x: Tensor, axes: tuple[int, ...]) -> Tensor:
    """``prod_{j != i} x_j`` over each slice along ``axes``, for each element: x's shape.

    The reduced axes are moved last and flattened to one of n elements; there the exclusive
    prefix product times the exclusive suffix product gives the others' product. Each is a
    Hillis-Steele scan: log2(n) products with a copy shifted by 1, 2, 4, ... places and padded with
    ones. Only products, slices, pads and transposes: no division and no read of the values, so
    the graph differentiates exactly at every order, at any number of zeros.
    """
    kept_axes = tuple(a for a in range(x.ndim) if a not in axes)
    order = kept_axes + tuple(sorted(axes))
    moved = transpose(x, order)
    n = element_count(x.shape, axes)
    flat = reshape(moved, (*moved.shape[: len(kept_axes)], n))
    others = reshape(_scan(flat, n, reverse=False) * _scan(flat, n, reverse=True), moved.shape)
    return transpose(others, tuple(order.index(a) for a in range(x.ndim)))


def _scan(flat: Tensor, n: int, reverse: bool) -> Tensor:
    """The exclusive product scan of ``flat`` (shape (..., n)) along its last axis, from the end
    with ``reverse``: element i is the product of the elements before (after) it, 1 at the edge."""
    lead = (slice(None),) * (flat.ndim - 1)

    def shifted(values: Tensor, places: int) -> Tensor:
        # values moved ``places`` along the last axis (towards the end, or the start with
        # ``reverse``), the places left behind filled with ones
        kept_part = getitem(values, (*lead, slice(places, None) if reverse else slice(0, n - places)))
        widths = [(0, 0)] * (flat.ndim - 1) + [(0, places) if reverse else (places, 0)]
        return pad(kept_part, widths, constant_values=1.0)

    scan = shifted(flat, 1)
    places = 1
    while places < n:
        scan = scan * shifted(scan, places)
        places *= 2
    return scan


def _others_beside_infinities(
    x: Tensor, values: Any, is_zero: Any, zeros: Any, is_infinite: Any, axes: tuple[int, ...]
) -> Tensor:
    """``prod_{j != i} x_j`` for each element, where a slice holds an infinity: the product of the
    slice's finite nonzero elements (without x_i's own factor), times the product of its other
    zeros and infinities, which is 1 (none), 0, +-inf or nan (a zero and an infinity), as IEEE
    multiplication gives. That second factor is held constant, so this form serves first order
    only (a differentiated gradient takes ``_others_differentiably``). ``zeros`` counts each
    slice's zeros (kept dimensions)."""
    xp = namespace(values)
    special = is_zero | is_infinite
    finite_product = prod(where(special, 1.0, x), axis=axes, keepdims=True)
    beside = where(special, finite_product, finite_product / where(special, 1.0, x))
    infinite = xp.astype(is_infinite, values.dtype)
    infinity_sign = prod(where(is_infinite, sign(values), 1.0), axis=axes, keepdims=True)
    other_zeros = zeros - xp.astype(is_zero, values.dtype) > 0
    other_infinities = xp.sum(infinite, axis=axes, keepdims=True) - infinite > 0
    other_sign = where(is_infinite, infinity_sign * sign(values), infinity_sign)  # (the signs are +-1)
    others = where(
        other_infinities,
        where(other_zeros, math.nan, other_sign * math.inf),
        where(other_zeros, 0.0, 1.0),
    )
    return beside * others


prod.defvjp(_prod_dx, plain_arrays=True)
prod.defjvp(reduction_jvp(_prod_dx), plain_arrays=True)


@op("logsumexp", hints=REDUCTION)
@quiet
def logsumexp(x: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """``log(sum(exp(x)))`` over ``axis``, without overflow. Shapes: see the module docstring.

    >>> import autobp as ab
    >>> round(ab.logsumexp(ab.tensor([1e4, 1e4])).item() - 1e4, 9)  # 1e4 + log(2)
    0.693147181
    """
    xp = namespace(x)
    x = floats(xp, as_array(xp, x))  # numpy's where(.., 0.0) below gives float64 for integers, torch's float32
    wide = accumulator(xp, x.dtype)
    if wide is not None:  # (float16: the sum of exponentials stalls and overflows; see accumulator)
        return xp.astype(logsumexp.op.forward(xp.astype(x, wide), axis, keepdims), x.dtype)
    axes = normalize_axes(axis, x.ndim, "logsumexp")
    if element_count(x.shape, axes) == 0:  # log of an empty sum, as PyTorch and scipy (max raises)
        shape = kept_shape(x.shape, axes) if keepdims else tuple(n for i, n in enumerate(x.shape) if i not in axes)
        return xp.full(shape, -math.inf, dtype=x.dtype, device=xp.device(x))
    peak = xp.max(x, axis=axes, keepdims=True)
    # Shifting by the peak keeps exp from overflowing; infinite peaks are not shifted (inf - inf).
    peak = xp.where(xp.isfinite(peak), peak, 0.0)
    total = xp.sum(xp.exp(x - peak), axis=axes, keepdims=keepdims)
    # The peak takes the result's shape before the sum: the result is a fresh array, not a view.
    return xp.log(total) + (peak if keepdims else xp.reshape(peak, tuple(total.shape)))


def _logsumexp_dx(grad: Tensor, out: Tensor, x: Tensor, axis: Any = None, keepdims: bool = False) -> Tensor:
    # d lse/dx_i = softmax(x)_i = exp(x_i - lse). With lse rounded, exp(x - out) is off by a factor
    # common to the slice, exp(lse - out): at float32 1e5 (spacing 0.008) the weights summed to
    # 0.9975. Dividing by their sum takes that factor out, as a softmax shifted by its maximum
    # does, with the forward's shift, and reads no values (a tape replays it). An input at +inf
    # makes out inf: there the weights stay exp(x - out), 0 and nan as in PyTorch, not nan / nan.
    out = kept(out, x, axis)
    weights = exp(x - out)
    total = sum(weights, axis=normalize_axes(axis, x.ndim, "logsumexp"), keepdims=True)
    return kept(grad, x, axis) * (weights / where(less(out, math.inf), total, 1.0))


logsumexp.defvjp(in_float32(_logsumexp_dx), plain_arrays=True)
logsumexp.defjvp(in_float32(reduction_jvp(_logsumexp_dx)), plain_arrays=True)
