"""The rules that moved to plain arrays, on the array library under test (``--array-library``).

concatenate, stack and einsum (told ``needs``) and std, prod, max and min (reading values through
``array_of``) now run on the library's own arrays in a first-order backward. At the edges the
sampled suite avoids (zeros, ties, zero spread) and with constant inputs, the fast path equals
the general path bit for bit on that library, and numpy's gradients to 1e-12.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autobp as ab
from tests.conftest import Library
from tests.test_engine_paths import _counting_fast_nodes, _general_path_only

ROWS = np.array([[1.0, 3.0, 3.0], [0.0, 2.0, -1.5], [0.0, 0.0, 4.0], [2.0, 2.0, 2.0]])  # ties, zeros, flat
CONSTANT = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [1.0, 2.0, 3.0], [-2.0, 0.5, 1.0]])

# Each case: the function of x (and a constant of the same library, or a numpy one under numpy).
CASES: dict[str, Callable[[ab.Tensor, Any], ab.Tensor]] = {
    "prod": lambda x, c: ab.prod(x, axis=1),
    "max": lambda x, c: ab.max(x, axis=1, keepdims=True),
    "min": lambda x, c: ab.min(x),
    "std": lambda x, c: ab.std(x, axis=1, ddof=1),
    "concatenate": lambda x, c: ab.concatenate([c, x * x, c], axis=1),
    "stack": lambda x, c: ab.stack([c, ab.sin(x)], axis=1),
    "einsum": lambda x, c: ab.einsum("ij,kj->ik", x, c),
}


def _gradient(library: Library, name: str, general: bool) -> tuple[np.ndarray, str]:
    x = library.tensor(ROWS, requires_grad=True)
    constant = library.tensor(CONSTANT)
    out = CASES[name](x, constant)
    weights = library.tensor(np.linspace(0.5, 1.5, int(np.prod(out.shape))).reshape(out.shape))
    loss = (out * weights).sum()
    with _general_path_only() if general else contextlib.nullcontext(), _counting_fast_nodes(loss) as fast_nodes:
        (grad,) = ab.grad(loss, [x])
    assert (name in fast_nodes) is not general  # the op's rules ran on the library's arrays, or on Tensors
    return library.host(grad), library.dtype(grad)


@pytest.mark.parametrize("name", list(CASES))
def test_fast_path_equals_general_path_and_numpy_on_the_library(library: Library, name: str) -> None:
    fast, fast_dtype = _gradient(library, name, general=False)
    general, general_dtype = _gradient(library, name, general=True)
    assert fast_dtype == general_dtype == "float64"
    np.testing.assert_array_equal(fast, general)
    on_numpy, _ = _gradient(Library("numpy"), name, general=True)
    np.testing.assert_allclose(fast, on_numpy, rtol=1e-12, atol=1e-15)
