"""Hessian-vector products by double backward, and Newton's method built on them.

The problem: L2-regularized logistic regression on synthetic data, which is strictly convex, so
Newton's method converges quadratically. ``hvp(v) = d/dw <grad f(w), v>`` needs the gradient
itself to be differentiable: ``ab.grad(..., create_graph=True)``. The Hessian is assembled from
``dim`` HVPs (one per basis vector) and checked against the closed form
``X^T diag(p (1 - p)) X / n + lam I``.

    python examples/hessian.py
"""

from __future__ import annotations

import argparse

import numpy as np

import autobp as ab
from autobp.nn import functional as F


def make_problem(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    w_true = rng.standard_normal(dim)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-x @ w_true))).astype(np.float64)
    return x, y


def loss(w: ab.Tensor, x: np.ndarray, y: np.ndarray, lam: float) -> ab.Tensor:
    """Mean logistic loss plus ``lam / 2 * |w|^2``. Shapes: w (dim,) -> scalar."""
    return F.binary_cross_entropy_with_logits(ab.tensor(x) @ w, ab.tensor(y)) + 0.5 * lam * (w * w).sum()


def hvp(w: ab.Tensor, v: np.ndarray, x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """The Hessian of ``loss`` at ``w`` times ``v``, by differentiating ``<grad, v>``."""
    (g,) = ab.grad(loss(w, x, y, lam), [w], create_graph=True)
    assert g is not None
    (hv,) = ab.grad((g * ab.tensor(v)).sum(), [w])
    assert hv is not None
    return hv.numpy()


def hessian(w: ab.Tensor, x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    return np.stack([hvp(w, e, x, y, lam) for e in np.eye(w.size)], axis=1)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description="Hessian-vector products and Newton steps")
    parser.add_argument("--n", type=int, default=200, help="number of synthetic examples (default: 200)")
    parser.add_argument("--dim", type=int, default=5, help="number of features, the Hessian's size (default: 5)")
    parser.add_argument("--lam", type=float, default=0.1, help="L2 regularization strength (default: 0.1)")
    parser.add_argument("--steps", type=int, default=6, help="Newton steps (default: 6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default: 0)")
    args = parser.parse_args(argv)
    x, y = make_problem(args.n, args.dim, args.seed)

    w = ab.zeros(args.dim, requires_grad=True)
    h = hessian(w, x, y, args.lam)
    p = 1.0 / (1.0 + np.exp(-x @ w.numpy()))
    closed_form = x.T @ (x * (p * (1 - p))[:, None]) / args.n + args.lam * np.eye(args.dim)
    print(f"Hessian from HVPs vs closed form: max difference {np.abs(h - closed_form).max():.2e}")

    grad_norm = float("nan")
    for step in range(args.steps):
        value = loss(w, x, y, args.lam)
        (g,) = ab.grad(value, [w])
        assert g is not None
        grad_norm = float(np.linalg.norm(g.numpy()))
        print(f"step {step}: loss {value.item():.10f}, |grad| {grad_norm:.3e}")
        newton = np.linalg.solve(hessian(w, x, y, args.lam), g.numpy())
        with ab.no_grad():
            w = ab.tensor(w.numpy() - newton, requires_grad=True)
    return grad_norm


if __name__ == "__main__":
    main()
