"""Tests for autobp.nn.functional: values against numpy formulas, gradients, and stability at 1e4."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.nn import functional as F

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((4, 5))
TARGETS = np.array([0, 3, 4, 3])


def np_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_and_log_softmax_match_numpy(axis: int) -> None:
    assert np.allclose(F.log_softmax(LOGITS, axis).numpy(), np_log_softmax(LOGITS, axis))
    probs = F.softmax(LOGITS, axis).numpy()
    assert np.allclose(probs, np.exp(np_log_softmax(LOGITS, axis))) and np.allclose(probs.sum(axis=axis), 1.0)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_and_nll_match_the_formula(reduction: str) -> None:
    per_example = -np_log_softmax(LOGITS)[np.arange(4), TARGETS]
    expected = {"mean": per_example.mean(), "sum": per_example.sum(), "none": per_example}[reduction]
    assert np.allclose(F.cross_entropy(LOGITS, TARGETS, reduction=reduction).numpy(), expected)
    assert np.allclose(F.nll_loss(np_log_softmax(LOGITS), TARGETS, reduction=reduction).numpy(), expected)


def test_regression_and_binary_losses_match_their_formulas() -> None:
    x, t = RNG.standard_normal((3, 4)), RNG.standard_normal((3, 4))
    assert np.isclose(F.mse_loss(x, t).item(), np.mean((x - t) ** 2))
    assert np.allclose(F.mse_loss(x, t, reduction="none").numpy(), (x - t) ** 2)
    p, y = RNG.uniform(0.05, 0.95, (3, 4)), (RNG.random((3, 4)) < 0.5).astype(float)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    assert np.isclose(F.binary_cross_entropy(p, y).item(), bce.mean())
    z = np.log(p / (1 - p))
    assert np.allclose(F.binary_cross_entropy_with_logits(z, y, reduction="none").numpy(), bce)
    assert np.isclose(F.binary_cross_entropy_with_logits(z, y, reduction="sum").item(), bce.sum())


def test_binary_cross_entropy_floors_the_log_at_minus_100() -> None:
    p = ab.tensor([0.0, 1.0, 1.0], requires_grad=True)
    loss = F.binary_cross_entropy(p, ab.tensor([1.0, 0.0, 1.0]), reduction="none")
    assert np.allclose(loss.numpy(), [100.0, 100.0, 0.0])
    loss.sum().backward()
    assert np.all(np.isfinite(p.grad.numpy()))


# binary_cross_entropy at and near p = 0 and 1, as PyTorch defines it: (p, t, loss, d/dp, d/dt).
# The loss is each log clamped at -100 (exactly 100, also in float32, where clamping the argument
# at e^-100, a subnormal, gave 99.98, and in float16, where e^-100 is 0 and the loss was inf). The
# gradient is (p - t) / max(p (1 - p), 1e-12): -1e12 for a confidently wrong p = 0 (the clamped
# log's derivative, 0, gave no gradient at all), 0 for a right one, capped at p = 1e-20 (not -1e20).
# d/dt is the derivative of the clamped value.
BCE_EDGES = [
    (0.0, 1.0, 100.0, -1e12, 100.0),
    (1.0, 0.0, 100.0, 1e12, -100.0),
    (0.0, 0.0, 0.0, 0.0, 100.0),
    (1.0, 1.0, 0.0, 0.0, -100.0),
    (1e-20, 1.0, -np.log(1e-20), -1e12, -np.log(1e-20)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_binary_cross_entropy_clamps_the_log_and_caps_the_gradient_as_pytorch(dtype: Any) -> None:
    with np.errstate(over="ignore"):  # (1e12 is inf in float16, as PyTorch's float16 gradient)
        rows = BCE_EDGES if dtype != np.float16 else BCE_EDGES[:4]  # (1e-20 is 0 in float16)
        p0, t0, *want = (np.array(column, dtype) for column in zip(*rows, strict=True))
    p, t = ab.tensor(p0, requires_grad=True), ab.tensor(t0, requires_grad=True)
    loss = F.binary_cross_entropy(p, t, reduction="none")
    assert loss.dtype == dtype
    np.testing.assert_allclose(loss.numpy(), want[0], rtol=1e-6)
    assert loss.numpy()[0] == loss.numpy()[1] == 100.0
    gp, gt = ab.grad(loss.sum(), [p, t])
    np.testing.assert_allclose(gp.numpy(), want[1], rtol=1e-6)
    np.testing.assert_allclose(gt.numpy(), want[2], rtol=1e-6)


def test_binary_cross_entropy_second_order_is_the_derivative_of_its_gradient() -> None:
    # Both regions: inside, the derivatives of the formula; within 1e-12 of 0 or 1, those of
    # the capped gradient (p - t) / 1e-12: 1e12 in p, -1e12 in t. Central differences of the
    # first-order gradient agree with the second-order one.
    p0 = np.array([5e-13, 2e-13, 0.3, 0.5, 1.0 - 2**-45, 0.9])
    t0 = np.array([0.0, 0.0, 0.7, 1.0, 1.0, 0.2])
    h = np.array([1e-14, 1e-14, 1e-6, 1e-6, 2**-48, 1e-6])

    def gradients(p_values: np.ndarray) -> list[np.ndarray]:
        p, t = ab.tensor(p_values, requires_grad=True), ab.tensor(t0, requires_grad=True)
        (gp,) = ab.grad(F.binary_cross_entropy(p, t, reduction="sum"), [p], create_graph=True)
        return [gp.numpy(), *(g.numpy() for g in ab.grad(gp.sum(), [p, t]))]

    first, hpp, hpt = gradients(p0)
    np.testing.assert_allclose(first[:2], [0.5, 0.2], rtol=1e-12)
    finite = (gradients(p0 + h)[0] - gradients(p0 - h)[0]) / (2 * h)
    np.testing.assert_allclose(hpp, finite, rtol=1e-5)
    np.testing.assert_allclose(hpp[:2], [1e12, 1e12], rtol=1e-12)
    np.testing.assert_allclose(hpt[:2], [-1e12, -1e12], rtol=1e-12)
    np.testing.assert_allclose(hpt[2:4], -1 / (p0[2:4] * (1 - p0[2:4])), rtol=1e-12)


def test_binary_cross_entropy_outside_0_1_is_nan() -> None:
    with np.errstate(invalid="ignore"):
        loss = F.binary_cross_entropy(ab.tensor([-0.5, 1.5, 0.5]), ab.tensor([1.0, 0.0, 1.0]), reduction="none")
    assert np.isnan(loss.numpy()[:2]).all() and np.isfinite(loss.numpy()[2])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_binary_cross_entropy_matches_pytorch_at_the_edges(dtype: Any) -> None:
    torch = pytest.importorskip("torch")
    p0 = np.array([0.0, 1.0, 0.0, 1.0, 1e-20, 1e-13, 0.3, 1 - 1e-7, 4e-45, 0.5], dtype)
    t0 = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.7, 1.0, 1.0, 0.25], dtype)
    p = ab.tensor(p0, requires_grad=True)
    loss = F.binary_cross_entropy(p, ab.tensor(t0), reduction="none")
    (gp,) = ab.grad(loss.sum(), [p])
    pt = torch.tensor(p0, requires_grad=True)
    want = torch.nn.functional.binary_cross_entropy(pt, torch.tensor(t0), reduction="none")
    (gpt,) = torch.autograd.grad(want.sum(), [pt])
    np.testing.assert_allclose(loss.numpy(), want.detach().numpy(), rtol=1e-6, atol=0)
    np.testing.assert_allclose(gp.numpy(), gpt.numpy(), rtol=1e-6, atol=0)


# Each loss on an empty batch: (its name, the scores, the targets). Scores (0, 3), float32 so
# that the nan is seen to keep the dtype.
EMPTY_BATCH = [
    ("cross_entropy", np.zeros(0, dtype=np.int64)),
    ("nll_loss", np.zeros(0, dtype=np.int64)),
    ("mse_loss", np.zeros((0, 3), dtype=np.float32)),
    ("binary_cross_entropy", np.zeros((0, 3), dtype=np.float32)),
    ("binary_cross_entropy_with_logits", np.zeros((0, 3), dtype=np.float32)),
]


@pytest.mark.parametrize("name, target", EMPTY_BATCH, ids=[case[0] for case in EMPTY_BATCH])
def test_the_mean_loss_of_an_empty_batch_is_nan_and_the_sum_zero(name: str, target: np.ndarray) -> None:
    # A mean over no examples is undefined: nan, as in PyTorch and numpy, not the 0.0 that once
    # came back (a plausible loss for a batch that had none). The suite runs with warnings as
    # errors, so this also checks that no numpy RuntimeWarning leaks.
    loss_fn = getattr(F, name)
    scores = ab.tensor(np.zeros((0, 3), dtype=np.float32), requires_grad=True)
    mean = loss_fn(scores, target)
    assert mean.shape == () and mean.dtype == np.float32 and np.isnan(mean.item())
    (g,) = ab.grad(mean, [scores], create_graph=True)
    assert g.shape == (0, 3) and g.dtype == np.float32
    if g.requires_grad:  # (nll_loss is linear in its scores: its gradient is a constant)
        (gg,) = ab.grad(g.sum(), [scores], allow_unused=True)
        assert gg is None or gg.shape == (0, 3)
    total = loss_fn(scores, target, reduction="sum")
    assert total.item() == 0.0 and ab.grad(total, [scores])[0].shape == (0, 3)
    assert loss_fn(scores, target, reduction="none").shape[0] == 0
    # forward mode too: the tangent of nothing's mean is nan, as its value
    _, tangent = ab.functional.jvp(lambda s: loss_fn(s, target), scores.detach(), ab.zeros_like(scores))
    assert np.isnan(tangent.item())


@pytest.mark.parametrize("name, target", EMPTY_BATCH, ids=[case[0] for case in EMPTY_BATCH])
def test_empty_batch_losses_match_pytorch(name: str, target: np.ndarray) -> None:
    torch = pytest.importorskip("torch")
    for reduction in ("mean", "sum"):
        expected = getattr(torch.nn.functional, name)(
            torch.zeros(0, 3), torch.from_numpy(target), reduction=reduction
        ).item()
        got = getattr(F, name)(np.zeros((0, 3), dtype=np.float32), target, reduction=reduction).item()
        assert got == expected or (np.isnan(got) and np.isnan(expected)), (reduction, got, expected)


LOSSES: list[tuple[str, Callable[..., ab.Tensor], Callable[[], tuple[ab.Tensor, ...]]]] = [
    ("log_softmax", lambda x: F.log_softmax(x, axis=1), lambda: (ab.randn(3, 4, requires_grad=True, rng=1),)),
    ("softmax", lambda x: F.softmax(x, axis=0), lambda: (ab.randn(3, 4, requires_grad=True, rng=2),)),
    ("cross_entropy", lambda x: F.cross_entropy(x, TARGETS), lambda: (ab.randn(4, 5, requires_grad=True, rng=3),)),
    (
        "cross_entropy_none",
        lambda x: F.cross_entropy(x, TARGETS, reduction="none"),
        lambda: (ab.randn(4, 5, requires_grad=True, rng=3),),
    ),
    (
        "nll_loss",
        lambda x: F.nll_loss(x, TARGETS, reduction="sum"),
        lambda: (ab.randn(4, 5, requires_grad=True, rng=4),),
    ),
    (
        "mse_loss",
        F.mse_loss,
        lambda: (ab.randn(3, 2, requires_grad=True, rng=5), ab.randn(3, 2, requires_grad=True, rng=6)),
    ),
    (
        "binary_cross_entropy",
        F.binary_cross_entropy,
        lambda: (
            ab.uniform(0.1, 0.9, (3, 2), requires_grad=True, rng=7),
            ab.uniform(0, 1, (3, 2), requires_grad=True, rng=8),
        ),
    ),
    (
        "binary_cross_entropy_with_logits",
        F.binary_cross_entropy_with_logits,
        lambda: (ab.randn(3, 2, requires_grad=True, rng=9), ab.uniform(0, 1, (3, 2), requires_grad=True, rng=10)),
    ),
    (
        "linear",
        F.linear,
        lambda: tuple(ab.randn(*s, requires_grad=True, rng=i) for i, s in enumerate([(2, 3), (4, 3), (4,)])),
    ),
    (
        "conv2d",
        lambda x, w, b: F.conv2d(x, w, b, padding=1),
        lambda: tuple(
            ab.randn(*s, requires_grad=True, rng=i) for i, s in enumerate([(1, 2, 3, 3), (2, 2, 2, 2), (2,)])
        ),
    ),
    ("dropout", lambda x: F.dropout(x, 0.5, rng=3), lambda: (ab.randn(3, 4, requires_grad=True, rng=11),)),
]


@pytest.mark.parametrize("name, fn, make", LOSSES, ids=[case[0] for case in LOSSES])
def test_functions_gradcheck_and_gradgradcheck(
    name: str, fn: Callable[..., ab.Tensor], make: Callable[[], tuple[ab.Tensor, ...]]
) -> None:
    inputs = make()
    assert ab.gradcheck(fn, inputs)
    assert ab.gradgradcheck(fn, inputs)


@pytest.mark.parametrize("scale", [1e4, -1e4])
def test_logit_functions_stay_finite_at_magnitude_1e4(scale: float) -> None:
    logits = ab.tensor([[scale, 0.0, -scale], [0.5 * scale, scale, 0.0]], requires_grad=True)
    targets = np.array([2, 0])
    checks = [
        F.cross_entropy(logits, targets),
        F.log_softmax(logits, axis=1).sum(),
        (F.softmax(logits, axis=1) * ab.tensor([[1.0, 2.0, 3.0]])).sum(),
        F.binary_cross_entropy_with_logits(logits, ab.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])),
    ]
    for value in checks:
        (g,) = ab.grad(value, [logits], create_graph=True)
        (gg,) = ab.grad(g.sum(), [logits])
        assert np.isfinite(value.item()) and np.all(np.isfinite(g.numpy())) and np.all(np.isfinite(gg.numpy()))
    # the exact values: the wrong-class margin is 2 * 1e4 for the first row and 0.5 * 1e4 for the second
    per_example = F.cross_entropy(logits, targets, reduction="none").numpy()
    expected = -np_log_softmax(logits.numpy(), axis=1)[[0, 1], targets]
    assert np.allclose(per_example, expected) and per_example.max() >= 0.5e4


def test_dropout_modes_and_errors() -> None:
    x = ab.randn(3, 4, rng=0)
    assert F.dropout(x, 0.5, training=False) is x and F.dropout(x, 0.0) is x
    assert np.all(F.dropout(x, 1.0).numpy() == 0)
    with pytest.raises(ValueError, match="p must"):
        F.dropout(x, -0.1)


def test_loss_errors_name_shapes_and_values() -> None:
    with pytest.raises(ValueError, match=r"cross_entropy: expected input \(N, C\).*\[4, 5\].*\[3\]"):
        F.cross_entropy(LOGITS, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(LOGITS, TARGETS.astype(float))
    with pytest.raises(IndexError, match=r"\[0, 5\)"):
        F.nll_loss(LOGITS, np.array([0, 1, 2, 5]))
    with pytest.raises(ValueError, match="reduction must be one of"):
        F.mse_loss(LOGITS, LOGITS, reduction="avg")
    with pytest.raises(ValueError, match="mse_loss: input shape"):
        F.mse_loss(LOGITS, LOGITS[:2])
    with pytest.raises(ValueError, match="binary_cross_entropy: input shape"):
        F.binary_cross_entropy(LOGITS, LOGITS[:2])


def test_flatten_keeps_the_batch_axis() -> None:
    assert F.flatten(ab.zeros(2, 3, 4, 5)).shape == (2, 60)
    assert F.flatten(ab.zeros(2, 3, 4, 5), start_axis=2).shape == (2, 3, 20)


def test_float16_binary_cross_entropy_with_logits_is_the_float32_loss_rounded_once() -> None:
    # softplus(x) - t x in float16 rounds both terms before they cancel: at x = 3.5, t = 0.989
    # the loss is 0.06906, the float16 difference was 0.06836 (1% off). Computed in float32 and
    # rounded once, the loss and its gradient sigmoid(x) - t are within float16's rounding.
    torch = pytest.importorskip("torch")
    x0 = np.linspace(-20.0, 20.0, 161).astype(np.float16)
    t0 = np.random.default_rng(5).random(x0.shape).astype(np.float16)
    x = ab.tensor(x0, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, ab.tensor(t0), reduction="none")
    (grad,) = ab.grad(loss.sum(), [x])
    assert loss.dtype == np.float16 and grad.dtype == np.float16
    xt = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        xt, torch.tensor(t0, dtype=torch.float64), reduction="none"
    )
    (want_grad,) = torch.autograd.grad(want.sum(), [xt])
    half_ulp = 2.0**-11  # float16's rounding, relative
    np.testing.assert_allclose(loss.numpy(), want.detach().numpy(), rtol=half_ulp, atol=2.0**-24)
    np.testing.assert_allclose(grad.numpy(), want_grad.numpy(), rtol=half_ulp, atol=2.0**-24)


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, np.bool_])
def test_dropout_of_integers_is_refused_not_scaled_by_a_truncated_factor(dtype: Any) -> None:
    # The scale 1 / (1 - p) was cast to the input's dtype: p = 0.3 kept elements times 1, not
    # 1.43 ([10, 10, 10, 10] gave [10, 0, 0, 0]); PyTorch raises for integers.
    x = ab.tensor(np.full(4, 10).astype(dtype))
    with pytest.raises(TypeError, match=r"dropout: .*floating.*(int64|uint8|bool)\[4\]"):
        F.dropout(x, 0.3, rng=0)
    assert F.dropout(x, 0.3, training=False) is x and F.dropout(x, 0.0) is x


def test_flatten_of_an_empty_batch_and_an_axis_out_of_range_are_pytorchs() -> None:
    # reshape(x, (*x.shape[:1], -1)) could not infer -1 for an empty batch (0, 3, 4) and raised;
    # a 1-D (3,) input with start_axis=1 became (3, 1), a shape PyTorch refuses to make.
    torch = pytest.importorskip("torch")
    for shape, start in [((0, 3, 4), 1), ((2, 0, 4), 1), ((2, 3, 4), -2), ((2, 3, 4), 0), ((2, 3), 1), ((0,), 0)]:
        x = ab.tensor(np.arange(math.prod(shape), dtype=float).reshape(shape), requires_grad=True)
        out = F.flatten(x, start_axis=start)
        want = torch.flatten(torch.zeros(shape), start)
        assert out.shape == tuple(want.shape)
        (grad,) = ab.grad(out.sum(), [x])
        assert grad.shape == shape
    for shape, start in [((3,), 1), ((2, 3), 2), ((2, 3), -3)]:
        with pytest.raises(
            np.exceptions.AxisError, match=rf"flatten: axis {start} is out of bounds.*{re.escape(str(shape))}"
        ):
            F.flatten(ab.zeros(*shape), start_axis=start)


def test_errors_name_the_function_called_not_the_one_it_calls() -> None:
    # log_softmax's axis error named "max" (its shift), softmax's too; cross_entropy's reduction
    # error named nll_loss.
    x = ab.randn(3, 4, rng=0)
    for function in (F.log_softmax, F.softmax):
        with pytest.raises(
            np.exceptions.AxisError, match=rf"^{function.__name__}: axis 2 is out of bounds.*float64\[3, 4\]"
        ):
            function(x, axis=2)
        with pytest.raises(np.exceptions.AxisError, match=rf"^{function.__name__}: axis -1 .*float64\[\]"):
            function(ab.tensor(1.0))
    with pytest.raises(ValueError, match=r"^cross_entropy: reduction must be one of"):
        F.cross_entropy(LOGITS, TARGETS, reduction="avg")
    assert F.softmax(x, axis=np.int64(-2)).shape == (3, 4)


def test_bfloat16_binary_cross_entropy_with_logits_is_the_float32_loss_rounded_once() -> None:
    # PyTorch's bfloat16 (8 significant bits): softplus(x) - t x rounded each term before they
    # cancel, 10% off at x = 3.5, t = 0.988 (loss 0.07077, computed 0.07813); now within
    # bfloat16's rounding, as float16.
    torch = pytest.importorskip("torch")
    x0 = torch.linspace(-20.0, 20.0, 161, dtype=torch.float64).bfloat16()
    t0 = torch.tensor(np.random.default_rng(5).random(161)).bfloat16()
    x = ab.tensor(x0, requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(x, ab.tensor(t0), reduction="none")
    (grad,) = ab.grad(loss.sum(), [x])
    assert loss.data.dtype == torch.bfloat16 and grad.data.dtype == torch.bfloat16
    xt = x0.double().requires_grad_()
    want = torch.nn.functional.binary_cross_entropy_with_logits(xt, t0.double(), reduction="none")
    (want_grad,) = torch.autograd.grad(want.sum(), [xt])
    half_ulp = 2.0**-8  # bfloat16's rounding, relative
    np.testing.assert_allclose(loss.data.double().numpy(), want.detach().numpy(), rtol=half_ulp, atol=2.0**-126)
    np.testing.assert_allclose(grad.data.double().numpy(), want_grad.numpy(), rtol=half_ulp, atol=2.0**-126)


# Integer and boolean inputs: converted to a float before any arithmetic in their own dtype,
# where -x and x - max wrap around (uint8: the sigmoid of 3 was 0, softmax all zeros).
SMALL_INTS = ["uint8", "int8", "uint16", "int16", "bool"]


def _exp_dtype(dtype: str) -> np.dtype[Any]:
    return np.exp(np.zeros((), dtype)).dtype


@pytest.mark.parametrize("dtype", [*SMALL_INTS, "int64"])
def test_sigmoid_of_integers_is_the_sigmoid_of_their_values(dtype: str) -> None:
    values = np.array([0, 1, 3, 100] if dtype != "bool" else [0, 1, 1, 0]).astype(dtype)
    if dtype == "int8":
        values = np.array([-128, -3, 3, 127], dtype)
    expected = 1.0 / (1.0 + np.exp(-values.astype(np.float64)))
    for result in (ab.sigmoid(ab.tensor(values)), ab.sigmoid(values)):  # (a Tensor, and a bare array)
        assert result.dtype == _exp_dtype(dtype)  # the float numpy's exp gives
        np.testing.assert_allclose(result.numpy().astype(np.float64), expected, rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("dtype", SMALL_INTS)
def test_softmax_log_softmax_and_cross_entropy_of_integer_logits(dtype: str) -> None:
    logits = np.array([[1, 2, 3], [0, 1, 1]] if dtype != "int8" else [[-128, 0, 127], [-3, 2, 1]]).astype(dtype)
    wide = logits.astype(np.float64)
    expected = np_log_softmax(wide)
    tolerance = {"rtol": 2e-3, "atol": 2e-3}  # (float16 for 8-bit integers, as numpy's exp gives)
    np.testing.assert_allclose(F.log_softmax(ab.tensor(logits)).numpy().astype(np.float64), expected, **tolerance)
    np.testing.assert_allclose(F.softmax(ab.tensor(logits)).numpy().astype(np.float64), np.exp(expected), **tolerance)
    targets = np.array([2, 0])
    loss = F.cross_entropy(ab.tensor(logits), targets)
    np.testing.assert_allclose(float(loss.item()), -np.mean(expected[[0, 1], targets]), **tolerance)


def test_losses_with_integer_targets_or_inputs_compute_in_floats() -> None:
    p = ab.tensor([0.2, 0.7, 0.9], requires_grad=True)
    t = np.array([0, 1, 0], np.uint8)  # a uint8 label mask: t - 1 was 255
    expected = -np.mean([np.log(0.8), np.log(0.7), np.log(0.1)])
    loss = F.binary_cross_entropy(p, t)
    np.testing.assert_allclose(loss.item(), expected)
    np.testing.assert_allclose(ab.grad(loss, [p])[0].numpy(), np.array([1 / 0.8, -1 / 0.7, 1 / 0.1]) / 3)
    logits = ab.tensor([-1.0, 0.5, 2.0])
    with_logits = F.binary_cross_entropy_with_logits(logits, t).item()
    np.testing.assert_allclose(with_logits, F.binary_cross_entropy_with_logits(logits, t.astype(float)).item())
    a, b = np.array([250, 3, 7], np.uint8), np.array([5, 200, 7], np.uint8)
    mse = F.mse_loss(ab.tensor(a), ab.tensor(b))
    assert mse.dtype == np.float64
    np.testing.assert_allclose(mse.item(), np.mean((a.astype(float) - b.astype(float)) ** 2))


@pytest.mark.parametrize(("narrow", "wide"), [("float16", "float32"), ("float32", "float64"), ("float16", "float64")])
def test_a_binary_loss_of_two_float_dtypes_is_computed_in_the_losss_dtype(narrow: str, wide: str) -> None:
    # float16 logits with float32 targets gave a float32 loss whose softplus(x) had been rounded
    # to float16 before t x cancelled it: 0.06780 for 0.06825 at x = 3.5, t = 0.989 (0.7% off;
    # PyTorch gives 0.06825). Now each input is taken to the loss's dtype first.
    x0 = np.linspace(-8.0, 8.0, 33).astype(narrow)
    t0 = np.random.default_rng(7).random(x0.shape).astype(wide)
    x64, t64 = x0.astype(np.float64), t0.astype(np.float64)
    p0 = (1.0 / (1.0 + np.exp(-x64))).clip(0.01, 0.99).astype(narrow)  # probabilities, exact in narrow
    p64 = p0.astype(np.float64)
    # a few roundings of the loss's dtype, of terms up to 8 that cancel (float16's are 2**-8 there)
    rtol = {"float32": 32 * 2.0**-24, "float64": 32 * 2.0**-53}[wide]
    for logits, target in ((x0, t0), (t0, x0)):  # (either operand the narrow one)
        x = ab.tensor(logits, requires_grad=True)
        loss = F.binary_cross_entropy_with_logits(x, ab.tensor(target), reduction="none")
        assert loss.dtype == np.dtype(wide)
        xs, ts = logits.astype(np.float64), target.astype(np.float64)
        want = np.logaddexp(0.0, xs) - ts * xs
        np.testing.assert_allclose(loss.numpy(), want, rtol=rtol, atol=rtol)
        (grad,) = ab.grad(loss.sum(), [x])
        assert grad.dtype == logits.dtype  # (each gradient in its input's dtype)
    loss = F.binary_cross_entropy(ab.tensor(p0), ab.tensor(t0), reduction="none")
    assert loss.dtype == np.dtype(wide)
    want = -(t64 * np.log(p64) + (1.0 - t64) * np.log1p(-p64))
    np.testing.assert_allclose(loss.numpy(), want, rtol=rtol, atol=rtol)
    x = np.array([3.5], narrow)
    t = np.array([0.989], wide)
    exact = np.logaddexp(0.0, 3.5) - t.astype(np.float64)[0] * 3.5
    np.testing.assert_allclose(F.binary_cross_entropy_with_logits(x, t).item(), exact, rtol=0, atol=rtol)


def test_float16_softmax_log_softmax_and_cross_entropy_over_many_classes() -> None:
    # The sum of exponentials ran in float16 and passed 65504 over 70000 classes (a vocabulary):
    # log_softmax was -inf, the softmax all zeros, the loss inf and every non-target class's
    # gradient 0 (1 / 70000 = 1.4e-5 is a float16 number). Now computed in float32, rounded once.
    classes = 70000
    logits = np.zeros((2, classes), np.float16)
    logits[1, 5] = 3.0
    wide = logits.astype(np.float64)
    want_log = wide - np.log(np.exp(wide).sum(axis=1, keepdims=True))
    ulp = 2.0**-10  # float16's spacing, relative
    got_log = F.log_softmax(ab.tensor(logits), axis=1)
    assert got_log.dtype == np.float16
    np.testing.assert_allclose(got_log.numpy(), want_log, rtol=ulp)
    got = F.softmax(ab.tensor(logits), axis=1)
    assert got.dtype == np.float16
    np.testing.assert_allclose(got.numpy(), np.exp(want_log), rtol=ulp, atol=2.0**-24)  # (subnormals)
    x = ab.tensor(logits, requires_grad=True)
    targets = np.array([0, 5])
    loss = F.cross_entropy(x, targets)
    np.testing.assert_allclose(loss.item(), -want_log[[0, 1], targets].mean(), rtol=ulp)
    (grad,) = ab.grad(loss, [x])
    assert grad.dtype == np.float16
    want_grad = np.exp(want_log)
    want_grad[[0, 1], targets] -= 1.0
    want_grad /= 2
    np.testing.assert_allclose(grad.numpy(), want_grad, rtol=ulp, atol=2.0**-24)
