"""Shared test configuration: hypothesis profiles and the array library under test.

``default`` keeps the local suite fast; ``ci`` (selected by ``.ci/run`` through
``HYPOTHESIS_PROFILE=ci``) draws many more examples; ``backends`` draws a few, for the registry
suite on another array library (``--array-library array_api_strict|torch|cupy``, with
``--array-device cuda`` for torch on a GPU).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import autobp as ab
from autobp.ops.registry import REGISTRY

settings.register_profile(
    "default",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# CI draws the same examples on every run (derandomize): a landing is judged by one run, and a red
# one must come back red when rerun, with the failing example printed (print_blob). New examples
# are still drawn by every local run of `default`, and by `explore` (ci's count, drawn at random).
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("explore", settings.get_profile("ci"), derandomize=False)
# The registry suite on another array library (.ci/run, benchmarks/gpu.sh): every op still runs,
# on fewer draws, so that two more libraries fit in CI's time.
settings.register_profile("backends", settings.get_profile("ci"), max_examples=5)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--array-library",
        default="numpy",
        help="the array library the registry-driven op suite computes with (numpy, array_api_strict, torch, cupy)",
    )
    parser.addoption(
        "--array-device",
        default=None,
        help="the device of --array-library's arrays (e.g. cuda for torch on a GPU); default: the library's own",
    )


def _missing_gpu_reason(name: str, device: str | None) -> str | None:
    """Why ``name``'s arrays cannot be made on ``device`` on this machine (None: they can)."""
    if name in ("torch", "pytorch") and device is not None and device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            return f"--array-library torch --array-device {device}: this torch has no usable CUDA device"
        return None
    if name not in ("cupy", "cp"):
        return None
    try:
        import cupy
    except ImportError as error:
        return f"--array-library cupy: cupy is not installed ({error}); pip install 'autobp[cupy]' on a CUDA machine"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # no driver, no device: cupy raises its own CUDA runtime errors
        return f"--array-library cupy: no CUDA GPU is usable here ({type(error).__name__}: {error})"
    return None if count > 0 else "--array-library cupy: cupy found no CUDA GPU on this machine"


def library_or_skip(name: str) -> Any:
    """The autobp backend of library ``name``, or a skip saying why it cannot run here (not
    installed; CuPy without a usable GPU)."""
    module = {"array_api_strict": "array_api_strict", "torch": "torch", "cupy": "cupy"}.get(name, "numpy")
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{name} is not installed here (autobp[{name.replace('array_api_', '')}] installs it)")
    if name == "cupy":
        reason = _missing_gpu_reason("cupy", None)
        if reason is not None:
            pytest.skip(reason)
    return ab.backends.library(name)


class Library:
    """The array library under test: moves numpy samples in and results out."""

    def __init__(self, name: str, device: str | None = None) -> None:
        self.xp = ab.backends.library(name)
        self.name = self.xp.name
        self.device = device

    def array(self, array: np.ndarray) -> Any:
        """A numpy sample as an array of this library (on the chosen device)."""
        if self.name == "numpy":
            return array
        return self.xp.from_numpy(np.asarray(array), self.device)

    def tensor(self, array: np.ndarray, requires_grad: bool = False) -> ab.Tensor:
        return ab.Tensor(self.array(array), requires_grad=requires_grad)

    def convert(self, value: Any) -> Any:
        """Numpy arrays inside a keyword value (an index tuple) as this library's arrays: array type in."""
        if isinstance(value, np.ndarray):
            return self.array(value)
        if isinstance(value, tuple):
            return tuple(self.convert(v) for v in value)
        return value

    def kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        return {key: self.convert(value) for key, value in kwargs.items()}

    @staticmethod
    def dtype(tensor: ab.Tensor) -> str:
        """``"float32"``, ``"int64"``...: a Tensor's dtype by name, comparable across libraries."""
        return ab.backends.namespace(tensor.data).dtype_name(tensor.dtype)

    @staticmethod
    def host(value: Any) -> Any:
        """A Tensor's values as a numpy array (None stays None)."""
        return None if value is None else value.numpy()


@pytest.fixture(scope="session")
def library(request: pytest.FixtureRequest) -> Library:
    """The library of ``--array-library`` (numpy by default) on ``--array-device``; skips, saying
    why, when cupy or the GPU asked for is missing."""
    name, device = request.config.getoption("--array-library"), request.config.getoption("--array-device")
    reason = _missing_gpu_reason(name, device)
    if reason is not None:
        pytest.skip(reason)
    return Library(name, device)


@pytest.fixture
def scratch_ops() -> Iterator[list[str]]:
    """Names registered by a test, removed afterwards so the registry-driven suite never sees them."""
    names: list[str] = []
    yield names
    for name in names:
        REGISTRY.pop(name, None)
