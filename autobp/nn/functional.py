"""Stateless layer functions and losses, built from autobp ops (so every order of derivative works).

Losses take ``reduction`` in ``("mean", "sum", "none")``. The mean of an empty batch is nan, as
in PyTorch and numpy (a mean of nothing is undefined), with an empty gradient and no warning;
the sum of an empty batch is 0. The ones that take logits stay finite, in value and gradient,
for logits of magnitude 1e4: softmax shifts by the row maximum (a constant, which the result
does not depend on) and the binary losses use ``softplus``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autobp import graph, ops
from autobp.backends import MixedArraysError, describe, library_of, namespace
from autobp.creation import as_generator
from autobp.ops.activations import exp_float_dtype
from autobp.ops.nn import max_pool2d
from autobp.ops.reduction_parts import accumulator
from autobp.ops.shape.arguments import normalize_axes
from autobp.tensor import Tensor

__all__ = [
    "sigmoid",
    "relu",
    "tanh",
    "softmax",
    "log_softmax",
    "cross_entropy",
    "nll_loss",
    "mse_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "linear",
    "dropout",
    "conv2d",
    "max_pool2d",
    "flatten",
]

sigmoid, relu, tanh = ops.sigmoid, ops.relu, ops.tanh

_REDUCTIONS = ("mean", "sum", "none")
# binary_cross_entropy as PyTorch defines it: each log clamped at -100, so that p = 0 or 1 gives
# a finite loss, and the gradient (p - t) / max(p (1 - p), 1e-12) with respect to p.
_LOG_FLOOR = -100.0
_CURVATURE_FLOOR = 1e-12


def _as_tensor(x: Any) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def _reduce(loss: Tensor, reduction: str, name: str) -> Tensor:
    if reduction == "mean":
        # ops.mean: nan over no elements, without numpy's warning. Dividing the sum by
        # max(size, 1) instead gave 0.0 for an empty batch, a plausible loss for an undefined one.
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    if reduction == "none":
        return loss
    raise ValueError(f"{name}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def log_softmax(x: Any, axis: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``axis``, stable for any magnitude. Shapes: any -> same.

    float16 and bfloat16 are computed in float32 and rounded once (a float16 sum of exponentials
    overflows past 65504 classes).

    >>> import autobp as ab
    >>> ab.nn.functional.log_softmax(ab.tensor([0.0, 1e4])).numpy().tolist()
    [-10000.0, 0.0]
    """
    return _log_softmax(_as_tensor(x), axis, "log_softmax")


def _log_softmax(x: Tensor, axis: Any, name: str, exponentiate: bool = False) -> Tensor:
    """``log_softmax`` (``softmax`` with ``exponentiate``) of ``x``, its errors naming ``name``."""
    # (an error naming ``name``, not max; a bool is an int to isinstance, and no axis)
    if type(axis) is not int or not -x.ndim <= axis < x.ndim:
        try:
            normalize_axes(axis, x.ndim, name)
        except np.exceptions.AxisError as error:
            raise np.exceptions.AxisError(f"{error} ({describe(x)})") from None
    xp = namespace(x.data)
    if not xp.float_dtype(x.dtype):  # integers first to the float exp gives them: x - max wraps in uint8
        x = ops.astype(x, exp_float_dtype(xp, x.dtype))
    if accumulator(xp, x.dtype) is None:
        return _shifted_log_softmax(x, axis, exponentiate)
    # float16 (and bfloat16) in float32, rounded once, as the reductions are (accumulator): the
    # float16 sum of exponentials passed 65504 over as many classes (a vocabulary), so the loss
    # was inf, the softmax all zeros, and every other class's gradient 0 instead of 1 / C.
    return ops.astype(_shifted_log_softmax(ops.astype(x, "float32"), axis, exponentiate), x.dtype)


def _shifted_log_softmax(x: Tensor, axis: Any, exponentiate: bool) -> Tensor:
    # The result is invariant to shifting x by a constant: shifting by the (detached) maximum
    # keeps exp() <= 1 without changing any derivative. An op on x.detach(), not numpy on
    # x.data, so that a tape (autobp.tape) replays the shift for new values.
    shift = ops.max(x.detach(), axis=axis, keepdims=True) if x.size else 0.0
    z = x - shift
    out = z - ops.log(ops.sum(ops.exp(z), axis=axis, keepdims=True))
    return ops.exp(out) if exponentiate else out


def softmax(x: Any, axis: int = -1) -> Tensor:
    """Normalized exponentials along ``axis`` (each slice sums to 1). Shapes: any -> same.

    float16 and bfloat16 are computed in float32 and rounded once, as ``log_softmax`` is.

    >>> import autobp as ab
    >>> ab.nn.functional.softmax(ab.tensor([0.0, 0.0])).numpy().tolist()
    [0.5, 0.5]
    """
    return _log_softmax(_as_tensor(x), axis, "softmax", exponentiate=True)


def _check_targets(name: str, scores: Tensor, targets: Any) -> Any:
    """The targets as an integer array of the scores' library, checked against the scores.

    A list (or tuple) of class indices becomes an array of the scores' library and device; an
    array of another library is an error, as in every op (no silent copy between devices).
    """
    target = targets.data if isinstance(targets, Tensor) else targets
    if library_of(target) is None:  # host data (a list, a numpy scalar): an array where the scores live
        xp = namespace(scores.data)
        target = np.asarray(target) if xp.name == "numpy" else xp.from_numpy(np.asarray(target), xp.device(scores.data))
    try:
        xp = namespace(scores.data, target)
    except MixedArraysError as error:
        raise MixedArraysError(f"{name}: the targets must be in the scores' library: {error}") from None
    if scores.ndim != 2 or tuple(target.shape) != tuple(scores.shape[:1]):
        raise ValueError(
            f"{name}: expected input (N, C) and integer targets (N,), got {describe(scores)} and {describe(target)}"
        )
    if not xp.isdtype(target.dtype, "integral"):
        raise TypeError(f"{name}: targets must be integer class indices, got dtype {xp.dtype_name(target.dtype)}")
    # Through graph.check_values: a tape (autobp.tape) checks the targets of every replay too.
    graph.check_values(name, _targets_in_range, targets, classes=scores.shape[1], name=name)
    return target


def _targets_in_range(target: Any, classes: int, name: str) -> None:
    target = target if library_of(target) is not None else np.asarray(target)
    xp = namespace(target)
    if math.prod(target.shape) == 0:
        return
    low, high = int(xp.min(target)), int(xp.max(target))  # two integers read back, for the check
    if low < 0 or high >= classes:
        raise IndexError(f"{name}: targets must lie in [0, {classes}), got range [{low}, {high}]")


def nll_loss(log_probs: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of integer ``targets`` under ``log_probs``.

    Shapes: log_probs (N, C), targets (N,) ints -> scalar, or (N,) with ``reduction="none"``.
    The mean over an empty batch (N = 0) is nan, as in PyTorch; the sum is 0.
    """
    log_probs = _as_tensor(log_probs)
    return _nll(log_probs, _check_targets("nll_loss", log_probs, targets), reduction, "nll_loss")


def _nll(log_probs: Tensor, target: Any, reduction: str, name: str) -> Tensor:
    """``nll_loss`` of checked ``target`` (``_check_targets``'s), its errors naming ``name``."""
    # A one-hot mask picks each row's target entry with ops that already have vjps. The mask is
    # made by ops too, so that a tape (autobp.tape) replays it for new targets. It selects
    # (where), not multiplies: a masked-out class at -inf (a logit masked by the user) times 0
    # would make the loss nan.
    xp = namespace(target)
    rows = ops.reshape(target, (target.shape[0], 1))
    classes = xp.arange(log_probs.shape[1], device=xp.device(target))
    picked = ops.where(ops.equal(rows, classes), log_probs, 0.0)
    return _reduce(-ops.sum(picked, axis=1), reduction, name)


def cross_entropy(logits: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of integer ``targets`` given unnormalized ``logits``.

    Shapes: logits (N, C), targets (N,) ints -> scalar, or (N,) with ``reduction="none"``.
    The mean over an empty batch (N = 0) is nan, as in PyTorch; the sum is 0.

    >>> import autobp as ab
    >>> loss = ab.nn.functional.cross_entropy(ab.tensor([[1e4, 0.0]]), [1])
    >>> loss.item()
    10000.0
    """
    logits = _as_tensor(logits)
    target = _check_targets("cross_entropy", logits, targets)
    return _nll(log_softmax(logits, axis=1), target, reduction, "cross_entropy")


def mse_loss(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Squared error ``(input - target)^2``. Shapes: same shapes -> scalar, or that shape.

    The mean over no elements is nan, as in PyTorch; the sum is 0.
    """
    input, target = _as_tensor(input), _as_tensor(target)
    if input.shape != target.shape:
        raise ValueError(f"mse_loss: input shape {input.shape} and target shape {target.shape} differ")
    input, target = _floating(input, target)
    return _reduce(ops.square(input - target), reduction, "mse_loss")


def _floating(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """A loss's two inputs in their common floating dtype (float64 when neither is floating, as
    numpy's mean is), the loss's dtype: no difference is taken in an integer dtype (uint8 targets
    made BCE's ``t - 1`` 255, and mse_loss wrapped around), and no term of one input is computed
    in a narrower float than the loss (float16 logits with float32 targets had ``softplus(x)``
    rounded to float16 before ``t x`` cancelled it: the float32 loss was 0.7% off at x = 3.5).
    The gradients come back in each input's own dtype (``astype``'s)."""
    xp = namespace(a.data, b.data)
    if a.dtype == b.dtype and xp.float_dtype(a.dtype):
        return a, b
    floating = [t.dtype for t in (a, b) if xp.float_dtype(t.dtype)]
    try:
        dtype = xp.result_type(a.dtype, b.dtype)
    except TypeError:  # (the standard promotes no integer with a float: the float's)
        dtype = floating[0]
    if not xp.float_dtype(dtype):
        dtype = xp.float64
    return tuple(t if t.dtype == dtype else ops.astype(t, dtype) for t in (a, b))  # type: ignore[return-value]


def binary_cross_entropy(probs: Any, target: Any, reduction: str = "mean") -> Tensor:
    """``-(t log p + (1 - t) log(1 - p))`` with each log clamped at -100, as PyTorch does.

    The gradient with respect to ``p`` is PyTorch's, ``(p - t) / max(p (1 - p), 1e-12)``: the
    derivative of the loss where ``p (1 - p) >= 1e-12``; elsewhere (``p`` within 1e-12 of 0 or 1)
    it is capped, ``-1e12`` for ``p = 0, t = 1``, so that a confidently wrong prediction, whose
    log is clamped, still gets a gradient that points the right way (a derivative of the clamped
    value would be 0 there, and ``-1 / p`` just above the clamp). Second derivatives are the
    derivatives of that gradient (``1e12`` where it is capped). With respect to ``t`` the
    gradient is ``log(1 - p) - log(p)`` with the clamped logs (PyTorch's is inf where a log is
    clamped). float16 is computed in float32 and rounded once (1e-12 is 0 in float16). ``p``
    outside ``[0, 1]`` gives nan (PyTorch raises).

    Shapes: same shapes -> scalar, or that shape with ``reduction="none"``. The mean over no
    elements is nan, as in PyTorch; the sum is 0.

    >>> import autobp as ab
    >>> p = ab.tensor([0.0, 0.5], requires_grad=True)
    >>> loss = ab.nn.functional.binary_cross_entropy(p, ab.tensor([1.0, 1.0]), reduction="sum")
    >>> loss.item()  # 100 + log(2)
    100.69314718055995
    >>> ab.grad(loss, [p])[0].tolist()
    [-1000000000000.0, -2.0]
    """
    probs, target = _as_tensor(probs), _as_tensor(target)
    if probs.shape != target.shape:
        raise ValueError(f"binary_cross_entropy: input shape {probs.shape} and target shape {target.shape} differ")
    probs, target = _floating(probs, target)
    xp = namespace(probs.data, target.data)
    dtype = xp.result_type(probs.dtype, target.dtype)
    if xp.dtype_name(dtype) != "float16":
        return _reduce(_binary_cross_entropy(probs, target), reduction, "binary_cross_entropy")
    loss = _binary_cross_entropy(ops.astype(probs, "float32"), ops.astype(target, "float32"))
    return _reduce(ops.astype(loss, dtype), reduction, "binary_cross_entropy")


def _binary_cross_entropy(p: Tensor, t: Tensor) -> Tensor:
    """The elementwise loss of ``binary_cross_entropy``, in autobp ops (every order differentiates)."""
    held = p.detach()  # p's values, as constants (no node, no tangent)
    # Where p (1 - p) >= 1e-12, both logs are above -28: the formula itself, whose derivative in
    # p is (p - t) / (p (1 - p)). Its input elsewhere is 0.5 ("double where"): a log(0) in the
    # branch not taken would make its zero gradient nan.
    # (log1p(-p), not log(1 - p): accurate for small p, as PyTorch computes it.)
    inside = held * (1 - held) >= _CURVATURE_FLOOR
    kept = ops.where(inside, p, 0.5)
    formula = (t - 1) * ops.log1p(-kept) - t * ops.log(kept)
    # Elsewhere, the value is the clamped logs at p held constant, plus a term that is 0 in value
    # (p - held is exactly 0) and has derivative (p - t) / 1e-12 in p: the capped gradient, and
    # derivatives (1e12 in p, -1e12 in t) at every order.
    clamped = (t - 1) * ops.maximum(ops.log1p(-held), _LOG_FLOOR) - t * ops.maximum(ops.log(held), _LOG_FLOOR)
    capped = (p - held) * ((p + held - 2 * t) * (0.5 / _CURVATURE_FLOOR))
    return ops.where(inside, formula, clamped + capped)


def binary_cross_entropy_with_logits(logits: Any, target: Any, reduction: str = "mean") -> Tensor:
    """``binary_cross_entropy(sigmoid(logits), target)``, computed stably as ``softplus(x) - t x``.

    float16 (and PyTorch's bfloat16) is computed in float32 and rounded once, as
    ``binary_cross_entropy`` is (in float16 the two terms round before they cancel).

    Shapes: same shapes -> scalar, or that shape with ``reduction="none"``. The mean over no
    elements is nan, as in PyTorch; the sum is 0.
    """
    logits, target = _as_tensor(logits), _as_tensor(target)
    if logits.shape != target.shape:
        raise ValueError(
            f"binary_cross_entropy_with_logits: input shape {logits.shape} and target shape {target.shape} differ"
        )
    logits, target = _floating(logits, target)
    xp = namespace(logits.data, target.data)
    dtype = xp.result_type(logits.dtype, target.dtype)
    if xp.dtype_name(dtype) not in ("float16", "bfloat16"):
        return _reduce(ops.softplus(logits) - target * logits, reduction, "binary_cross_entropy_with_logits")
    # softplus(x) and t x, each rounded to float16, cancel: at x = 3.5, t = 0.989 the loss
    # 0.06906 came out 0.06836, 1% off.
    wide, wide_target = ops.astype(logits, "float32"), ops.astype(target, "float32")
    loss = ops.astype(ops.softplus(wide) - wide_target * wide, dtype)
    return _reduce(loss, reduction, "binary_cross_entropy_with_logits")


def linear(x: Any, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``x @ weight.T + bias``. Shapes: x (..., in), weight (out, in), bias (out,) -> (..., out)."""
    out = ops.matmul(x, ops.transpose(weight))
    return out if bias is None else out + bias


def dropout(x: Any, p: float = 0.5, training: bool = True, rng: int | np.random.Generator | None = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1 / (1 - p)`` while training.

    Shapes: any -> same. ``rng`` (seed or Generator) makes the mask reproducible. Integer and
    bool inputs are refused while training with ``0 < p < 1`` (``TypeError``), as in PyTorch.
    """
    x = _as_tensor(x)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: p must lie in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0  # (not a zeros array: x's NaN and inf still give NaN, as x * mask does)
    xp = namespace(x.data)
    if not xp.float_dtype(x.dtype):
        # (the scale 1 / (1 - p) cast to integers was truncated: 1.43 became 1), as PyTorch refuses
        raise TypeError(f"dropout: the input must have a floating dtype to be scaled by 1 / (1 - p), got {describe(x)}")
    # The mask is drawn by numpy on the host, from ``rng``: one seed gives one mask on every
    # library (the standard has no random numbers); another library gets it uploaded.
    scale = (as_generator(rng).random(x.shape) >= p) / (1.0 - p)
    if xp.name == "numpy":
        return x * scale.astype(x.dtype)
    return x * xp.astype(xp.from_numpy(scale, xp.device(x.data)), x.dtype)


def conv2d(x: Any, weight: Tensor, bias: Tensor | None = None, stride: Any = 1, padding: Any = 0) -> Tensor:
    """2-D convolution plus a per-channel bias.

    Shapes: x (N, C, H, W), weight (O, C, kh, kw), bias (O,) -> (N, O, Ho, Wo).
    """
    out = ops.conv2d(x, weight, stride=stride, padding=padding)
    return out if bias is None else out + ops.reshape(bias, (1, -1, 1, 1))


def flatten(x: Any, start_axis: int = 1) -> Tensor:
    """Merge the axes from ``start_axis`` on into one. Shapes: (N, C, H, W) -> (N, C*H*W).

    ``start_axis`` must name an axis of ``x`` (``AxisError`` otherwise, as PyTorch refuses it).
    """
    x = _as_tensor(x)
    ndim = max(x.ndim, 1)  # (a 0-d input flattens to one element, as in PyTorch)
    start = start_axis + ndim if start_axis < 0 else start_axis
    if not 0 <= start < ndim:  # (a slice past the end kept every axis and added one)
        raise np.exceptions.AxisError(
            f"flatten: axis {start_axis} is out of bounds for an input of shape {x.shape} ({describe(x)})"
        )
    # The merged size, not -1: reshape cannot infer -1 next to a size-0 axis (an empty batch).
    return ops.reshape(x, (*x.shape[:start], math.prod(x.shape[start:])))
