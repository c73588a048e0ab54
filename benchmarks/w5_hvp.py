"""W5: a Hessian-vector product of a tanh MLP's loss against Pearlmutter's R-operator by hand.

The network is 20-64-64-1 with tanh hidden layers, float64, on a batch of inputs; the loss is
``0.5 * sum (f(x) - y)^2``. The ``autobp`` and PyTorch rows compute ``g = grad(loss, params,
create_graph=True)`` and then ``grad(sum_i <g_i, v_i>, params)`` (reverse-over-reverse). The
``autobp-fwdrev`` row runs ``autobp.functional.hvp``: forward-over-reverse, the gradient computed
once while carrying tangents along ``v`` (``autobp.forward``); ``autobp-revfwd`` its
``strategy="reverse-over-forward"``: the directional derivative in forward mode, then one
backward. ``autobp-taped`` runs ``autobp.tape.hvp``: the forward-over-reverse program traced
once, then replayed as straight numpy calls. The numpy version runs the R-operator by hand: a
forward pass with its directional derivative along ``v``, then the backward pass with its
directional derivative (Pearlmutter 1994). MyGrad has no double backward.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from benchmarks.harness import Run, Workload

WIDTHS = [20, 64, 64, 1]
Params = list[np.ndarray]


def _setup(batch: int) -> tuple[Params, Params, np.ndarray, np.ndarray]:
    """Parameters (w1, b1, w2, b2, w3, b3), a direction of the same shapes, inputs and targets."""
    rng = np.random.default_rng(5)
    params: Params = []
    for n_in, n_out in pairwise(WIDTHS):
        params += [rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), 0.1 * rng.standard_normal(n_out)]
    direction = [rng.standard_normal(p.shape) for p in params]
    x = rng.standard_normal((batch, WIDTHS[0]))
    y = rng.standard_normal((batch, WIDTHS[-1]))
    return params, direction, x, y


def numpy_hvp(params: Params, direction: Params, x: np.ndarray, y: np.ndarray) -> Params:
    """The exact Hessian-vector product H v by the R-operator; R{.} is the derivative along v."""
    w1, b1, w2, b2, w3, b3 = params
    v1, c1, v2, c2, v3, c3 = direction
    # Forward and R-forward.
    h1 = np.tanh(x @ w1 + b1)
    s1 = 1.0 - h1 * h1  # tanh' at z1
    r_h1 = s1 * (x @ v1 + c1)
    h2 = np.tanh(h1 @ w2 + b2)
    s2 = 1.0 - h2 * h2
    r_h2 = s2 * (r_h1 @ w2 + h1 @ v2 + c2)
    out = h2 @ w3 + b3
    r_out = r_h2 @ w3 + h2 @ v3 + c3
    # Backward and R-backward: d = dloss/d(.), R{d} its derivative along v.
    d_out = out - y
    r_d_out = r_out
    hv3 = r_h2.T @ d_out + h2.T @ r_d_out
    hc3 = r_d_out.sum(axis=0)
    d_h2 = d_out @ w3.T
    r_d_h2 = r_d_out @ w3.T + d_out @ v3.T
    d_z2 = d_h2 * s2
    r_d_z2 = r_d_h2 * s2 - 2.0 * d_h2 * h2 * r_h2  # R{s2} = -2 h2 R{h2}
    hv2 = r_h1.T @ d_z2 + h1.T @ r_d_z2
    hc2 = r_d_z2.sum(axis=0)
    d_h1 = d_z2 @ w2.T
    r_d_h1 = r_d_z2 @ w2.T + d_z2 @ v2.T
    r_d_z1 = r_d_h1 * s1 - 2.0 * d_h1 * h1 * r_h1
    hv1 = x.T @ r_d_z1
    hc1 = r_d_z1.sum(axis=0)
    return [hv1, hc1, hv2, hc2, hv3, hc3]


def _loss(lib: Any, params: list[Any], x: Any, y: Any) -> Any:
    a = x
    for layer in range(len(params) // 2):
        a = a @ params[2 * layer] + params[2 * layer + 1]
        if layer < len(params) // 2 - 1:
            a = lib.tanh(a)
    return 0.5 * lib.sum((a - y) ** 2)


def _dot(products: list[Any]) -> Any:
    """The sum of the per-parameter inner products <g_i, v_i>, as one scalar of the framework."""
    total = products[0].sum()
    for product in products[1:]:
        total = total + product.sum()
    return total


def make(impl: str, batch: int) -> Run:
    """One Hessian-vector product of the loss at fixed parameters; returns H v, shaped like the params."""
    params, direction, x, y = _setup(batch)
    if impl == "numpy":
        return lambda: numpy_hvp(params, direction, x, y)
    if impl == "autobp":
        import autobp as ab

        tensors = [ab.tensor(p, requires_grad=True) for p in params]
        vs = [ab.tensor(v) for v in direction]

        def run_autobp() -> Params:
            grads = ab.grad(_loss(ab, tensors, x, y), tensors, create_graph=True)
            dot = _dot([g * v for g, v in zip(grads, vs, strict=True)])
            return [h.data for h in ab.grad(dot, tensors)]  # type: ignore[union-attr]

        return run_autobp
    if impl in ("autobp-fwdrev", "autobp-revfwd"):
        import autobp as ab

        strategy = "forward-over-reverse" if impl == "autobp-fwdrev" else "reverse-over-forward"
        points = tuple(ab.tensor(p) for p in params)
        directions = tuple(ab.tensor(v) for v in direction)

        def loss(*weights: Any) -> Any:
            return _loss(ab, list(weights), x, y)

        def run_forward_over_reverse() -> Params:
            _, products = ab.functional.hvp(loss, points, directions, strategy=strategy)
            return [h.data for h in products]

        return run_forward_over_reverse
    if impl == "autobp-taped":
        import autobp as ab

        def loss_of(*arguments: Any) -> Any:  # the six parameters, then x and y (tape inputs, not closures)
            return _loss(ab, list(arguments[:-2]), arguments[-2], arguments[-1])

        taped = ab.tape.hvp(loss_of, argnums=tuple(range(len(params))))
        directions_tuple = tuple(direction)

        def run_taped() -> Params:
            _, products = taped.arrays(*params, x, y, directions_tuple)
            return products

        return run_taped
    if impl == "torch":
        import torch

        weights = [torch.tensor(p, requires_grad=True) for p in params]
        vt = [torch.from_numpy(v) for v in direction]
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)

        def run_torch() -> Params:
            grads = torch.autograd.grad(_loss(torch, weights, xt, yt), weights, create_graph=True)
            dot = _dot([g * v for g, v in zip(grads, vt, strict=True)])
            return [h.numpy() for h in torch.autograd.grad(dot, weights)]

        return run_torch
    raise ValueError(f"W5: unknown implementation {impl!r}")


WORKLOAD = Workload(
    key="W5",
    title="Hessian-vector product of a tanh MLP 20-64-64-1 loss, float64",
    sizes={"full": {"batch": 128}, "quick": {"batch": 128}, "tiny": {"batch": 4}},
    make=make,
    impls=("numpy", "autobp", "autobp-fwdrev", "autobp-revfwd", "autobp-taped", "torch"),
)
