"""W2: a chain of elementwise ops on 10 elements, forward and backward; the cost is all per-op overhead.

The chain cycles through ``sin``, ``* 0.9``, ``+ 0.1`` and ``tanh``; the numpy version carries the
derivative back by hand (``cos x``, ``0.9``, ``1``, ``1 - tanh^2``). The gradient seed is ones, so
no extra reduction op is timed. ``benchmarks/overhead.py`` prints the same numbers on their own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.harness import Run, Workload

SCALE, SHIFT = 0.9, 0.1
KINDS = ("sin", "scale", "shift", "tanh")


def _input(elements: int) -> np.ndarray:
    return np.random.default_rng(2).uniform(-1.0, 1.0, elements)


def numpy_chain(x0: np.ndarray, ops: int) -> list[np.ndarray]:
    """Forward keeping what each derivative needs, then the hand-written backward."""
    x = x0
    saved: list[Any] = []
    for i in range(ops):
        kind = KINDS[i % 4]
        if kind == "sin":
            saved.append(x)
            x = np.sin(x)
        elif kind == "scale":
            x = x * SCALE
        elif kind == "shift":
            x = x + SHIFT
        else:
            x = np.tanh(x)
            saved.append(x)
    grad = np.ones_like(x)
    for i in range(ops - 1, -1, -1):
        kind = KINDS[i % 4]
        if kind == "sin":
            grad = grad * np.cos(saved.pop())  # d sin x = cos x
        elif kind == "scale":
            grad = grad * SCALE
        elif kind == "tanh":
            out = saved.pop()
            grad = grad * (1.0 - out * out)  # d tanh x = 1 - tanh^2 x
    return [x, grad]


def _framework_chain(x: Any, ops: int, sin: Any, tanh: Any) -> Any:
    for i in range(ops):
        kind = KINDS[i % 4]
        if kind == "sin":
            x = sin(x)
        elif kind == "scale":
            x = x * SCALE
        elif kind == "shift":
            x = x + SHIFT
        else:
            x = tanh(x)
    return x


def make(impl: str, elements: int, ops: int) -> Run:
    """Forward and backward through ``ops`` ops on ``elements`` numbers; returns [value, gradient]."""
    x0 = _input(elements)
    if impl == "numpy":
        return lambda: numpy_chain(x0, ops)
    if impl == "autobp":
        import autobp as ab
        from autobp.ops import sin, tanh

        def run_autobp() -> list[np.ndarray]:
            x = ab.tensor(x0, requires_grad=True)
            y = _framework_chain(x, ops, sin, tanh)
            (grad,) = ab.grad(y, [x], grad_outputs=ab.ones_like(y))
            return [y.data, grad.data]  # type: ignore[union-attr]

        return run_autobp
    if impl == "torch":
        import torch

        def run_torch() -> list[np.ndarray]:
            x = torch.tensor(x0, requires_grad=True)
            y = _framework_chain(x, ops, torch.sin, torch.tanh)
            (grad,) = torch.autograd.grad(y, [x], grad_outputs=torch.ones_like(y))
            return [y.detach().numpy(), grad.numpy()]

        return run_torch
    if impl == "mygrad":
        import mygrad as mg

        def run_mygrad() -> list[np.ndarray]:
            x = mg.tensor(x0)
            y = _framework_chain(x, ops, mg.sin, mg.tanh)
            y.backward(np.ones_like(x0))
            return [np.asarray(y.data), np.asarray(x.grad)]

        return run_mygrad
    raise ValueError(f"W2: unknown implementation {impl!r}")


WORKLOAD = Workload(
    key="W2",
    title="elementwise chain on 10 elements, fwd+bwd (per op)",
    sizes={
        "full": {"elements": 10, "ops": 1000},
        "quick": {"elements": 10, "ops": 1000},
        "tiny": {"elements": 10, "ops": 40},
    },
    make=make,
    ops=lambda elements, ops: ops,
)
