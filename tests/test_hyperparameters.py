"""Invalid hyper-parameters of convolution and pooling raise ``ValueError`` naming the argument.

Each case is checked with the ops' array work replaced by a trap, so the error must come before
any computation (``stride=0`` used to surface as ZeroDivisionError from the output-size formula).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autobp as ab
import autobp.backends.numpy_nn as numpy_nn
import autobp.ops.nn as nn_ops
from autobp import nn

X = np.zeros((1, 2, 6, 6))
W = np.zeros((3, 2, 3, 3))
GRAD = np.zeros((1, 3, 4, 4))  # conv2d(X, W)'s output shape
POOLED = np.zeros((1, 2, 3, 3))

BAD_STRIDES = [0, -1, (1, 0), (2, -2), True, 1.5, (1,), (1, 2, 3), "2", None]
BAD_PADDINGS = [-1, (0, -1), 0.5, (1, 2, 3), False, "1"]
BAD_KERNELS = [0, -2, (2, 0), True, 2.0, (3,)]

CallWith = Callable[[Any], Any]
CASES: list[tuple[str, str, CallWith, list[Any]]] = [
    ("conv2d", "stride", lambda v: ab.conv2d(X, W, stride=v), BAD_STRIDES),
    ("conv2d", "padding", lambda v: ab.conv2d(X, W, padding=v), BAD_PADDINGS),
    ("conv_transpose2d", "stride", lambda v: ab.conv_transpose2d(GRAD, W, stride=v), BAD_STRIDES),
    ("conv_transpose2d", "padding", lambda v: ab.conv_transpose2d(GRAD, W, padding=v), BAD_PADDINGS),
    ("conv_transpose2d", "output_padding", lambda v: ab.conv_transpose2d(GRAD, W, output_padding=v), BAD_PADDINGS),
    ("conv2d_weight", "kernel_size", lambda v: ab.conv2d_weight(X, GRAD, v), BAD_KERNELS),
    ("conv2d_weight", "stride", lambda v: ab.conv2d_weight(X, GRAD, 3, stride=v), BAD_STRIDES),
    ("conv2d_weight", "padding", lambda v: ab.conv2d_weight(X, GRAD, 3, padding=v), BAD_PADDINGS),
    ("max_pool2d", "kernel_size", lambda v: ab.max_pool2d(X, v), BAD_KERNELS),
    ("max_pool2d", "stride", lambda v: ab.max_pool2d(X, 2, v), [s for s in BAD_STRIDES if s is not None]),
    ("max_pool2d", "padding", lambda v: ab.max_pool2d(X, 2, 2, v), BAD_PADDINGS),
    ("max_pool2d_scatter", "kernel_size", lambda v: nn_ops.max_pool2d_scatter(POOLED, X, v), BAD_KERNELS),
    ("max_pool2d_scatter", "stride", lambda v: nn_ops.max_pool2d_scatter(POOLED, X, 2, v), [0, (2, 0)]),
    ("max_pool2d_gather", "padding", lambda v: nn_ops.max_pool2d_gather(X, X, 2, 2, v), BAD_PADDINGS),
    ("conv2d", "stride", lambda v: nn.functional.conv2d(ab.tensor(X), ab.tensor(W), stride=v), [0]),
    ("max_pool2d", "stride", lambda v: nn.functional.max_pool2d(X, 2, v), [0]),
    ("Conv2d", "kernel_size", lambda v: nn.Conv2d(2, 3, v), BAD_KERNELS),
    ("Conv2d", "stride", lambda v: nn.Conv2d(2, 3, 3, stride=v), BAD_STRIDES),
    ("Conv2d", "padding", lambda v: nn.Conv2d(2, 3, 3, padding=v), BAD_PADDINGS),
    ("Conv2d", "in_channels", lambda v: nn.Conv2d(v, 3, 3), [0, -1, 2.0, True, None]),
    ("Conv2d", "out_channels", lambda v: nn.Conv2d(2, v, 3), [0, -3, 1.5, None]),
    ("MaxPool2d", "kernel_size", lambda v: nn.MaxPool2d(v), BAD_KERNELS),
    ("MaxPool2d", "stride", lambda v: nn.MaxPool2d(2, v), [0, -1, (1, 0), 1.0]),
    ("MaxPool2d", "padding", lambda v: nn.MaxPool2d(2, padding=v), BAD_PADDINGS),
]


@pytest.fixture
def no_array_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Trap the helpers every conv/pool computation starts with, in the general forwards (any
    library) and in numpy's fast ones: a call fails the test."""

    def trap(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("computation started before the hyper-parameters were checked")

    for helper in ("_padded", "_im2col", "_offsets", "_pool_argmax"):
        monkeypatch.setattr(nn_ops, helper, trap)
    for helper in ("padded", "im2col", "offsets", "pool_argmax"):
        monkeypatch.setattr(numpy_nn, helper, trap)


@pytest.mark.parametrize(
    "name, argument, call, value",
    [(name, argument, call, value) for name, argument, call, values in CASES for value in values],
    ids=[f"{name}-{argument}={value!r}" for name, argument, _, values in CASES for value in values],
)
def test_invalid_hyper_parameters_name_the_argument_and_value(
    name: str, argument: str, call: CallWith, value: Any, no_array_work: None
) -> None:
    with pytest.raises(ValueError, match=rf"^{name}: {argument} .*{argument}={re.escape(repr(value))}"):
        call(value)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: ab.max_pool2d(X, 2, 2, 2), r"max_pool2d: padding=2 must be at most half the kernel \(2, 2\)"),
        (lambda: nn.MaxPool2d((2, 4), padding=(1, 3)), r"MaxPool2d: padding=\(1, 3\) must be at most half"),
        (lambda: ab.conv_transpose2d(GRAD, W, stride=2, output_padding=2), r"output_padding=2 must be smaller"),
        (lambda: ab.conv2d(X, np.zeros((3, 2, 0, 3))), r"conv2d: weight \(3, 2, 0, 3\) has an empty kernel"),
        (lambda: ab.conv_transpose2d(GRAD, np.zeros((3, 2, 3, 0))), r"conv_transpose2d: weight .* empty kernel"),
    ],
)
def test_inconsistent_hyper_parameters_are_refused_before_computing(
    call: Callable[[], Any], message: str, no_array_work: None
) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_the_trap_catches_computation_so_the_checks_above_mean_something(no_array_work: None) -> None:
    with pytest.raises(AssertionError, match="computation started"):
        ab.conv2d(X, W, stride=1)
    with pytest.raises(AssertionError, match="computation started"):
        ab.max_pool2d(X, 2)


@pytest.mark.parametrize("stride, padding", [(1, 0), ((1, 2), (0, 1)), (np.int64(2), [1, 1])])
def test_valid_spellings_are_accepted_by_layer_and_op(stride: Any, padding: Any) -> None:
    (sh, sw), (ph, pw) = ((stride, stride) if np.ndim(stride) == 0 else stride), tuple(np.broadcast_to(padding, 2))
    layer = nn.Conv2d(2, 3, (3, 2), stride=stride, padding=padding, rng=0)
    out = layer(ab.randn(1, 2, 6, 7, rng=1))
    assert out.shape == (1, 3, (6 + 2 * ph - 3) // sh + 1, (7 + 2 * pw - 2) // sw + 1)
    assert nn.MaxPool2d(2, stride, padding)(out).shape[:2] == (1, 3)


@pytest.mark.parametrize("sizes", [(0, 2), (2, 0), (-1, 2), (2.0, 2), (True, 2)])
def test_linear_sizes_are_checked_where_the_layer_is_built(sizes: tuple[object, object]) -> None:
    with pytest.raises(ValueError, match=r"Linear: (in|out)_features must be a positive int"):
        ab.nn.Linear(*sizes)  # type: ignore[arg-type]
