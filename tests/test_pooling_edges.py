"""max_pool2d routes its gradient as PyTorch does, at first and second order, on every edge case.

The oracle is a slow loop written from PyTorch's CPU kernel: scan a window's cells that lie
inside the input, row by row, starting from ``best = -inf`` at the first such cell, and take a
cell when ``value > best or isnan(value)``. So ties go to the first maximum, a NaN window to its
last NaN (the NaN the forward returns), an all ``-inf`` window to its first cell inside the input
(never to padding, where the gradient used to be lost).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp.ops.nn import max_pool2d_gather, max_pool2d_scatter

Pair = tuple[int, int]


def chosen_cells(x: np.ndarray, kernel: Pair, stride: Pair, padding: Pair) -> np.ndarray:
    """Shapes: x (N, C, H, W) -> (N, C, Ho, Wo, 2): the (row, column) in x each window picks."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, height, width = x.shape
    out = np.zeros((n, c, (height + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1, 2), dtype=int)
    for b, ch, r, col in np.ndindex(out.shape[:4]):
        top, left = r * sh - ph, col * sw - pw
        inside = [
            (i, j) for i in range(top, top + kh) for j in range(left, left + kw) if 0 <= i < height and 0 <= j < width
        ]
        best, cell = -np.inf, inside[0]
        for i, j in inside:
            value = x[b, ch, i, j]
            if value > best or np.isnan(value):
                best, cell = value, (i, j)
        out[b, ch, r, col] = cell
    return out


def same(actual: np.ndarray, expected: np.ndarray) -> bool:
    """Equal but for the order in which overlapping windows' gradients were added."""
    return actual.shape == expected.shape and np.allclose(actual, expected, rtol=1e-13, atol=1e-13)


def gather(values: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """``values`` read at each window's chosen cell. Shapes: (N, C, H, W) -> (N, C, Ho, Wo)."""
    n, c = np.indices(cells.shape[:4])[:2]
    return values[n, c, cells[..., 0], cells[..., 1]]


def scatter(grad: np.ndarray, cells: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Each window's ``grad`` added at its chosen cell. Shapes: (N, C, Ho, Wo) -> ``shape``."""
    out = np.zeros(shape)
    n, c = np.indices(cells.shape[:4])[:2]
    np.add.at(out, (n, c, cells[..., 0], cells[..., 1]), grad)
    return out


def edge_input(seed: int, shape: tuple[int, ...]) -> np.ndarray:
    """Few distinct values (many ties), with -inf, +inf, NaN and whole -inf or NaN regions."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, size=shape).astype(float)
    specials = rng.choice([-np.inf, np.inf, np.nan], size=shape)
    x = np.where(rng.random(shape) < 0.25, specials, x)
    if seed % 3 == 0:
        x[..., : shape[2] // 2, :] = -np.inf  # whole windows of -inf next to the padding
    if seed % 4 == 1:
        x[..., :, shape[3] // 2 :] = np.nan
    if seed % 5 == 2:
        x[...] = -np.inf
    return x


def pool_settings(seed: int) -> tuple[Pair, Pair, Pair]:
    rng = np.random.default_rng(1000 + seed)
    kernel = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    stride = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    padding = (int(rng.integers(0, kernel[0] // 2 + 1)), int(rng.integers(0, kernel[1] // 2 + 1)))
    return kernel, stride, padding


SEEDS = range(60)


@pytest.mark.parametrize("seed", SEEDS)
def test_forward_and_first_order_gradient_match_the_pytorch_loop(seed: int) -> None:
    kernel, stride, padding = pool_settings(seed)
    data = edge_input(seed, (2, 2, 5, 6))
    cells = chosen_cells(data, kernel, stride, padding)
    x = ab.tensor(data, requires_grad=True)
    out = ab.max_pool2d(x, kernel, stride, padding)
    assert np.array_equal(out.numpy(), gather(data, cells), equal_nan=True)
    upstream = np.random.default_rng(seed).standard_normal(out.shape)
    out.backward(upstream)  # (the sum of out * upstream would meet inf * 0)
    assert same(x.grad.numpy(), scatter(upstream, cells, data.shape))


@pytest.mark.parametrize("seed", SEEDS)
def test_second_order_routes_through_the_same_cells(seed: int) -> None:
    # gx = d<v, pool(x)>/dx scatters v; d<u, gx>/dv reads u at the same cells (a gather).
    kernel, stride, padding = pool_settings(seed)
    data = edge_input(seed, (2, 2, 5, 6))
    cells = chosen_cells(data, kernel, stride, padding)
    rng = np.random.default_rng(seed)
    x = ab.tensor(data, requires_grad=True)
    v = ab.tensor(rng.standard_normal(cells.shape[:4]), requires_grad=True)
    u = rng.standard_normal(data.shape)
    (gx,) = ab.grad(ab.max_pool2d(x, kernel, stride, padding), [x], grad_outputs=v, create_graph=True)
    assert same(gx.numpy(), scatter(v.numpy(), cells, data.shape))
    (gx * u).sum().backward()
    assert np.array_equal(v.grad.numpy(), gather(u, cells))


@pytest.mark.parametrize("seed", range(12))
def test_scatter_and_gather_ops_agree_with_the_loop(seed: int) -> None:
    kernel, stride, padding = pool_settings(seed)
    data = edge_input(seed, (1, 2, 6, 5))
    cells = chosen_cells(data, kernel, stride, padding)
    rng = np.random.default_rng(seed)
    grad, values = rng.standard_normal(cells.shape[:4]), rng.standard_normal(data.shape)
    scattered = max_pool2d_scatter(grad, data, kernel, stride, padding).numpy()
    assert same(scattered, scatter(grad, cells, data.shape))
    assert np.array_equal(max_pool2d_gather(values, data, kernel, stride, padding).numpy(), gather(values, cells))


def test_an_all_minus_inf_window_with_padding_keeps_its_gradient() -> None:
    # Every window of kernel 3, padding 1 starts in the padding; none may lose its gradient there.
    x = ab.tensor(np.full((1, 1, 3, 3), -np.inf), requires_grad=True)
    out = ab.max_pool2d(x, 3, 1, 1)
    out.sum().backward()
    assert x.grad.numpy().sum() == out.size
    assert np.array_equal(
        x.grad.numpy(), scatter(np.ones(out.shape), chosen_cells(x.numpy(), (3, 3), (1, 1), (1, 1)), x.shape)
    )


def test_a_nan_window_sends_its_gradient_to_the_last_nan() -> None:
    data = np.array([[[[1.0, np.nan], [5.0, np.nan]]]])
    x = ab.tensor(data, requires_grad=True)
    out = ab.max_pool2d(x, 2)
    out.sum().backward()
    assert np.isnan(out.item())
    assert x.grad.numpy().ravel().tolist() == [0.0, 0.0, 0.0, 1.0]


@pytest.mark.parametrize("dtype", [np.float32, np.int64])
def test_other_dtypes_pick_the_same_cells(dtype: Any) -> None:
    data = edge_input(3, (1, 2, 5, 5))
    if dtype == np.int64:
        data = np.nan_to_num(data, nan=0.0, posinf=9.0, neginf=-9.0)
    data = data.astype(dtype)
    cells = chosen_cells(data.astype(float), (3, 2), (2, 1), (1, 1))
    assert np.array_equal(ab.max_pool2d(data, (3, 2), (2, 1), (1, 1)).numpy(), gather(data, cells), equal_nan=True)
    grad = np.arange(float(cells[..., 0].size)).reshape(cells.shape[:4])
    assert np.array_equal(
        max_pool2d_scatter(grad, data, (3, 2), (2, 1), (1, 1)).numpy(), scatter(grad, cells, data.shape)
    )
