"""Shared test configuration: hypothesis profiles.

``default`` keeps the local suite fast; ``ci`` (selected by ``.ci/run`` through
``HYPOTHESIS_PROFILE=ci``) draws many more examples.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import autobp as ab

settings.register_profile(
    "default",
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci",
    max_examples=100,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--array-library",
        default="numpy",
        help="the array library the registry-driven op suite computes with (numpy, array_api_strict, torch, cupy)",
    )


class Library:
    """The array library under test: moves numpy samples in and results out."""

    def __init__(self, name: str) -> None:
        self.xp = ab.backends.library(name)
        self.name = self.xp.name

    def array(self, array: np.ndarray) -> Any:
        """A numpy sample as an array of this library."""
        return array if self.name == "numpy" else self.xp.from_numpy(np.asarray(array))

    def tensor(self, array: np.ndarray, requires_grad: bool = False) -> ab.Tensor:
        return ab.Tensor(self.array(array), requires_grad=requires_grad)


@pytest.fixture(scope="session")
def library(request: pytest.FixtureRequest) -> Library:
    """The library of ``--array-library`` (numpy by default)."""
    return Library(request.config.getoption("--array-library"))
