"""autobp's benchmark suite: each workload against hand-written numpy (and PyTorch, MyGrad when installed).

Run ``python -m benchmarks`` (or ``python benchmarks/run.py``); ``--help`` lists the options.
"""

from __future__ import annotations

from benchmarks.harness import Result, Workload

__all__ = ["Result", "Workload", "workloads"]


def workloads() -> list[Workload]:
    """W1 ... W5, in order."""
    from benchmarks import w1_network, w2_elementwise, w3_mlp, w4_scalar_chain, w5_hvp

    return [module.WORKLOAD for module in (w1_network, w2_elementwise, w3_mlp, w4_scalar_chain, w5_hvp)]
