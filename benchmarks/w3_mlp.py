"""W3: one SGD step of a 784-1024-1024-10 ReLU MLP with softmax cross-entropy, float32, batch 256.

The time is dominated by six large matrix products (three forward, three backward for the
weights, two for the activations), so the gap to numpy is what autobp adds around BLAS: copies,
dtype promotions, and extra passes over the (256, 1024) activations. Everything stays float32;
the result check fails on any float64 result. Each call is one step from wherever the previous
left the weights (the work does not depend on their values); the checked first call starts from
the same weights everywhere.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np

from benchmarks.harness import Run, Workload

LR = 0.01
Params = list[np.ndarray]


def torch_sgd_step(weights: list[Any], xt: Any, tt: Any) -> list[Any]:
    """One SGD step of the MLP in PyTorch (weights and biases alternate, ReLU between layers), on
    whatever device the tensors are: the loss and the updated parameters, detached."""
    import torch

    a = xt
    for layer in range(len(weights) // 2):
        a = a @ weights[2 * layer] + weights[2 * layer + 1]
        if layer < len(weights) // 2 - 1:
            a = torch.relu(a)
    loss = torch.nn.functional.cross_entropy(a, tt)
    grads = torch.autograd.grad(loss, weights)
    with torch.no_grad():
        for p, g in zip(weights, grads, strict=True):
            p -= LR * g
    return [loss.detach(), *(p.detach() for p in weights)]


def autobp_sgd_step(tensors: list[Any], x: Any, targets: Any) -> list[Any]:
    """The same step in autobp, on the tensors' own library and device: the loss and the updated
    parameters' arrays."""
    import autobp as ab
    from autobp.nn.functional import cross_entropy
    from autobp.ops import relu

    a = x
    for layer in range(len(tensors) // 2):
        a = a @ tensors[2 * layer] + tensors[2 * layer + 1]
        if layer < len(tensors) // 2 - 1:
            a = relu(a)
    loss = cross_entropy(a, targets)
    grads = ab.grad(loss, tensors)
    for p, g in zip(tensors, grads, strict=True):
        p.data -= LR * g.data  # type: ignore[union-attr]
    return [loss.data, *(p.data for p in tensors)]


def _setup(batch: int, widths: list[int]) -> tuple[Params, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    params: Params = []
    for n_in, n_out in pairwise(widths):
        params.append((rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32))
        params.append(np.zeros(n_out, dtype=np.float32))
    x = rng.random((batch, widths[0]), dtype=np.float32)
    targets = rng.integers(0, widths[-1], size=batch)
    return params, x, targets


def numpy_step(params: Params, x: np.ndarray, targets: np.ndarray) -> list[Any]:
    """Forward, hand-written backward and an in-place SGD update; returns [loss, *params]."""
    layers = len(params) // 2
    activations = [x]
    for layer in range(layers):
        z = activations[-1] @ params[2 * layer] + params[2 * layer + 1]
        activations.append(np.maximum(z, 0) if layer < layers - 1 else z)
    logits = activations[-1]
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(len(targets))
    loss = np.mean(np.log(total[:, 0]) - shifted[rows, targets])
    # dloss/dlogits = (softmax - onehot) / batch
    delta = exp / total
    delta[rows, targets] -= 1
    delta /= len(targets)
    for layer in range(layers - 1, -1, -1):
        below = activations[layer]
        grad_w = below.T @ delta
        grad_b = delta.sum(axis=0)
        if layer:
            delta = (delta @ params[2 * layer].T) * (below > 0)
        params[2 * layer] -= LR * grad_w
        params[2 * layer + 1] -= LR * grad_b
    return [loss, *params]


def make(impl: str, batch: int, hidden: int) -> Run:
    """One SGD step of the MLP [784, hidden, hidden, 10] on ``batch`` examples."""
    widths = [784, hidden, hidden, 10]
    params, x, targets = _setup(batch, widths)
    if impl == "numpy":
        return lambda: numpy_step(params, x, targets)
    if impl == "autobp":
        import autobp as ab

        tensors = [ab.tensor(p, requires_grad=True) for p in params]
        return lambda: autobp_sgd_step(tensors, x, targets)
    if impl == "torch":
        import torch

        weights = [torch.tensor(p, requires_grad=True) for p in params]
        xt, tt = torch.from_numpy(x), torch.from_numpy(targets)

        def run_torch() -> list[Any]:
            return [t.numpy() for t in torch_sgd_step(weights, xt, tt)]

        return run_torch
    if impl == "mygrad":
        import mygrad as mg

        weights_mg = [mg.tensor(p) for p in params]
        one_hot = np.zeros((batch, widths[-1]), dtype=np.float32)
        one_hot[np.arange(batch), targets] = 1

        def run_mygrad() -> list[Any]:
            a: Any = x
            for layer in range(len(weights_mg) // 2):
                a = mg.matmul(a, weights_mg[2 * layer]) + weights_mg[2 * layer + 1]
                if layer < len(weights_mg) // 2 - 1:
                    a = mg.maximum(a, np.float32(0))  # a plain 0 would promote to float64
            shifted = a - a.data.max(axis=1, keepdims=True)
            loss = mg.mean(mg.log(mg.sum(mg.exp(shifted), axis=1)) - mg.sum(shifted * one_hot, axis=1))
            loss.backward()
            for p in weights_mg:
                p.data -= LR * np.asarray(p.grad)
            return [np.asarray(loss.data), *(np.asarray(p.data) for p in weights_mg)]

        return run_mygrad
    raise ValueError(f"W3: unknown implementation {impl!r}")


WORKLOAD = Workload(
    key="W3",
    title="ReLU MLP 784-H-H-10 + softmax CE, float32, one SGD step",
    sizes={
        "full": {"batch": 256, "hidden": 1024},
        "quick": {"batch": 256, "hidden": 1024},
        "tiny": {"batch": 8, "hidden": 16},
    },
    make=make,
)
