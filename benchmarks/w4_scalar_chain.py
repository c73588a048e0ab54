"""W4: a very long chain on one scalar, forward and backward: graph size, traversal and memory per node.

The chain alternates ``* 1.0000001`` and ``+ 1e-9``; the hand-written numpy version runs the same
forward on a numpy float64 scalar and carries the derivative back (``1.0000001`` per product, 1 per
sum). The row ``numpy-array`` runs the same on a one-element array: numpy's cost per op on an
array rather than a scalar (about six times the scalar's), the floor closer to what autobp's 0-d
Tensors and PyTorch's tensors do. The harness also reports tracemalloc's peak during forward +
backward divided by the op count: the memory a recorded node costs.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from benchmarks.harness import PEERS, Run, Workload

FACTOR, SHIFT = 1.0000001, 1e-9
START = 0.5


def numpy_chain(ops: int, start: Any = START) -> list[Any]:
    """Forward on a float64 scalar (or the array ``start``), then the derivative of the result by hand."""
    x = np.float64(start) if np.ndim(start) == 0 else start
    for i in range(ops):
        x = x * FACTOR if i % 2 == 0 else x + SHIFT
    grad = np.ones_like(x)
    for i in range(ops - 1, -1, -1):
        if i % 2 == 0:
            grad = grad * FACTOR  # d(x * c) = c; d(x + c) = 1
    return [np.reshape(x, ()), np.reshape(grad, ())]


def _framework_chain(x: Any, ops: int) -> Any:
    for i in range(ops):
        x = x * FACTOR if i % 2 == 0 else x + SHIFT
    return x


def make(impl: str, ops: int) -> Run:
    """Forward and backward through ``ops`` scalar ops; returns [value, gradient]."""
    if impl == "numpy":
        return lambda: numpy_chain(ops)
    if impl == "numpy-array":
        return lambda: numpy_chain(ops, np.array([START]))
    if impl == "autobp":
        import autobp as ab

        def run_autobp() -> list[Any]:
            x = ab.tensor(START, requires_grad=True)
            y = _framework_chain(x, ops)
            (grad,) = ab.grad(y, [x])
            return [y.data, grad.data]  # type: ignore[union-attr]

        return run_autobp
    if impl == "torch":
        import torch

        def run_torch() -> list[Any]:
            x = torch.tensor(START, dtype=torch.float64, requires_grad=True)
            y = _framework_chain(x, ops)
            (grad,) = torch.autograd.grad(y, [x])
            return [y.detach().numpy(), grad.numpy()]

        return run_torch
    if impl == "mygrad":
        import mygrad as mg

        def run_mygrad() -> list[Any]:
            x = mg.tensor(START)
            y = _framework_chain(x, ops)
            y.backward()
            return [np.asarray(y.data), np.asarray(x.grad)]

        return run_mygrad
    raise ValueError(f"W4: unknown implementation {impl!r}")


WORKLOAD = Workload(
    key="W4",
    title="scalar chain (* c, + c), fwd+bwd (per op, memory per node)",
    sizes={"full": {"ops": 1_000_000}, "quick": {"ops": 100_000}, "tiny": {"ops": 1_000}},
    make=make,
    impls=("numpy", "autobp", "numpy-array", *PEERS),
    ops=lambda ops: ops,
    memory=True,
)
