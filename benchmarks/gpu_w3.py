"""W3 on a GPU: one SGD step of the 784-1024-1024-10 float32 ReLU MLP, batch 256, with autobp
computing on CuPy or on torch CUDA tensors, against the same step in PyTorch CUDA (its own
autograd). Issue #15's goal: autobp within 1.5x PyTorch CUDA.

    python -m benchmarks.gpu_w3                              # cupy and torch on cuda
    python -m benchmarks.gpu_w3 --libraries torch --device cpu --repeats 3   # try it without a GPU

Every implementation's first step starts from the same weights and is checked against
benchmarks/w3_mlp.py's hand-written numpy step (float32 tolerances), then the steps are timed
interleaved, with the device synchronised around each, and the medians printed. An
implementation that fails prints its error and the others still run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.w3_mlp import _setup, autobp_sgd_step, numpy_step, torch_sgd_step

WIDTHS = [784, 1024, 1024, 10]
BATCH = 256
Step = Callable[[], list[np.ndarray]]


def synchronizer(library: str, device: str) -> Callable[[], None]:
    """A call that waits for the device's queued work (a GPU runs asynchronously)."""
    if device == "cpu":
        return lambda: None
    if library == "cupy":
        import cupy

        return lambda: cupy.cuda.Device().synchronize()
    import torch

    return torch.cuda.synchronize


def autobp_step(library: str, device: str) -> Step:
    """autobp's W3 step with every array in ``library`` on ``device``."""
    import autobp as ab

    params, x, targets = _setup(BATCH, WIDTHS)
    tensors = [ab.tensor(p).to(library, device) for p in params]
    for t in tensors:
        t.requires_grad = True
    xs, ts = ab.tensor(x).to(library, device), ab.tensor(targets).to(library, device)
    return lambda: autobp_sgd_step(tensors, xs, ts)


def torch_step(device: str) -> Step:
    """The same step written in PyTorch, its autograd on ``device``."""
    import torch

    params, x, targets = _setup(BATCH, WIDTHS)
    weights = [torch.tensor(p, device=device, requires_grad=True) for p in params]
    xt, tt = torch.tensor(x, device=device), torch.tensor(targets, device=device)

    def step() -> list[Any]:
        return torch_sgd_step(weights, xt, tt)

    return step


def host(value: Any) -> np.ndarray:
    """Any library's array as a numpy array (an explicit copy to the host)."""
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    if type(value).__module__.startswith("cupy"):
        import cupy

        return cupy.asnumpy(value)
    return np.asarray(value)


def check(name: str, result: list[Any]) -> None:
    """The first step's loss and new weights against the hand-written numpy step (float32)."""
    params, x, targets = _setup(BATCH, WIDTHS)
    expected = numpy_step(params, x, targets)
    for k, (got, want) in enumerate(zip(result, expected, strict=True)):
        got = host(got)
        assert got.dtype == np.float32, f"{name}: result {k} is {got.dtype}, not float32"
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5, err_msg=f"{name}: result {k}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--libraries", nargs="+", default=["cupy", "torch"], help="autobp's array libraries")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--repeats", type=int, default=30, help="timed steps per implementation (default: 30)")
    args = parser.parse_args(argv)

    steps: dict[str, tuple[Step, Callable[[], None]]] = {}
    builders = {f"autobp on {lib}": (lambda lib=lib: autobp_step(lib, args.device), lib) for lib in args.libraries}
    builders[f"PyTorch {args.device}"] = (lambda: torch_step(args.device), "torch")
    for name, (build, lib) in builders.items():
        try:
            step, sync = build(), synchronizer(lib, args.device)
            check(name, step())  # also the warm-up (kernels compiled, memory pools filled)
            for _ in range(2):
                step()
            sync()
            steps[name] = (step, sync)
        except Exception as error:  # report and go on: one broken library must not hide the others
            print(f"W3 {name}: FAILED {type(error).__name__}: {str(error)[:300]}", flush=True)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.repeats):
        for name, (step, sync) in steps.items():  # interleaved: drift hits every implementation alike
            sync()
            start = time.perf_counter()
            step()
            sync()
            times[name].append(time.perf_counter() - start)
    reference = statistics.median(times[f"PyTorch {args.device}"]) if f"PyTorch {args.device}" in times else None
    for name, samples in times.items():
        median = statistics.median(samples)
        ratio = f", {median / reference:.2f}x PyTorch" if reference else ""
        print(f"W3 {name}: {1e3 * median:.2f} ms per step (median of {len(samples)}){ratio}", flush=True)
    return 0 if len(steps) == len(builders) else 1


if __name__ == "__main__":
    raise SystemExit(main())
