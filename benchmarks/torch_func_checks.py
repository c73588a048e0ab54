"""Forward mode against PyTorch: ``autobp.functional``'s ``jvp``, ``jacfwd``, ``hvp`` and ``hessian``
next to ``torch.func``'s, on the same functions, points and directions.

    python -m benchmarks.torch_func_checks      # needs torch (pip install -e ".[bench]")

A peer check, as the timed workloads' results are checked against numpy's before they are
timed: ``python -m benchmarks`` runs it first when torch is a peer, and ``tests/test_benchmarks.py``
runs it where torch is installed (CI installs it; the tests do not need it). Each function is
written once against a namespace that has ``tanh``, ``exp``, ``sin`` and ``sum`` (``autobp`` or
``torch``), so the two libraries differentiate the same expression. Results must have the same
structure (tuples of tuples for several inputs, as ``torch.func`` nests them) and shapes, and agree
to ``rtol`` (float64: 1e-10; float32: 1e-4, the two libraries round differently). autobp's
results keep the inputs' dtype; torch's are compared by value (its forward mode turns some float32
tangents into float64).
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks.w5_hvp import _loss

__all__ = ["Case", "CASES", "check", "run_all", "main"]

TRANSFORMS = ("jvp", "jacfwd", "hvp", "hvp reverse-over-forward", "hessian")


@dataclass(frozen=True)
class Case:
    """A function of ``len(shapes)`` arrays, written against ``lib`` (``autobp`` or ``torch``), the
    transforms it is checked under, and its dtype. ``scalar``: it returns one element (``hvp``
    and ``hessian`` need that)."""

    name: str
    function: Callable[..., Any]
    shapes: tuple[tuple[int, ...], ...]
    transforms: tuple[str, ...]
    dtype: Any = np.float64

    @property
    def rtol(self) -> float:
        return 1e-4 if self.dtype == np.float32 else 1e-10


def _mlp(lib: Any, *params: Any) -> Any:
    """W5's loss, ``0.5 * sum (f(x) - y)^2`` of a 3-4-4-1 tanh MLP, on fixed inputs and targets."""
    rng = np.random.default_rng(9)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    dtype = params[0].dtype
    if lib.__name__ == "torch":
        x, y = lib.tensor(x, dtype=dtype), lib.tensor(y, dtype=dtype)
    else:
        x, y = x.astype(dtype), y.astype(dtype)
    return _loss(lib, list(params), x, y)


_MLP_SHAPES = ((3, 4), (4,), (4, 4), (4,), (4, 1), (1,))

CASES = [
    Case("tanh(A @ x)", lambda lib, a, x: lib.tanh(a @ x), ((3, 2), (2,)), ("jvp", "jacfwd")),
    Case(
        "sin(x) * exp(y) + tanh(x * y) ** 2",
        lambda lib, x, y: lib.sin(x) * lib.exp(y) + lib.tanh(x * y) ** 2,
        ((4,), (4,)),
        ("jvp", "jacfwd"),
    ),
    Case(
        "sum(exp(a) * b ** 3) + sum(sin(a * b))",
        lambda lib, a, b: lib.sum(lib.exp(a) * b**3) + lib.sum(lib.sin(a * b)),
        ((3,), (3,)),
        TRANSFORMS,
    ),
    Case("W5's MLP loss (3-4-4-1)", _mlp, _MLP_SHAPES, TRANSFORMS),
    Case("W5's MLP loss (3-4-4-1), float32", _mlp, _MLP_SHAPES, ("jvp", "hvp", "hessian"), np.float32),
]


def _points(case: Case, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The inputs and a direction of the same shapes."""
    rng = np.random.default_rng(seed)
    inputs = [(0.5 * rng.standard_normal(shape)).astype(case.dtype) for shape in case.shapes]
    direction = [rng.standard_normal(shape).astype(case.dtype) for shape in case.shapes]
    return inputs, direction


def autobp_result(case: Case, transform: str, inputs: Sequence[np.ndarray], direction: Sequence[np.ndarray]) -> Any:
    """``transform`` of ``case`` by ``autobp.functional``."""
    import autobp as ab

    def f(*xs: Any) -> Any:
        return case.function(ab, *xs)

    xs = tuple(ab.tensor(a) for a in inputs)
    vs = tuple(ab.tensor(v) for v in direction)
    if transform == "jvp":
        return ab.functional.jvp(f, xs, vs)
    if transform == "jacfwd":
        return ab.functional.jacfwd(f, xs)
    if transform == "hvp":
        return ab.functional.hvp(f, xs, vs)[1]
    if transform == "hvp reverse-over-forward":
        return ab.functional.hvp(f, xs, vs, strategy="reverse-over-forward")[1]
    if transform == "hessian":
        return ab.functional.hessian(f, xs)
    raise ValueError(f"torch_func_checks: unknown transform {transform!r}; use one of {TRANSFORMS}")


def torch_result(case: Case, transform: str, inputs: Sequence[np.ndarray], direction: Sequence[np.ndarray]) -> Any:
    """The same by ``torch.func``: ``jvp``, ``jacfwd``, ``hessian``, and H v as ``jvp`` of ``grad``."""
    import torch

    def f(*xs: Any) -> Any:
        return case.function(torch, *xs)

    xs = tuple(torch.tensor(a) for a in inputs)
    vs = tuple(torch.tensor(v) for v in direction)
    with warnings.catch_warnings():
        # torch.func's first call scripts a helper with torch.jit.script, which torch 2.13 deprecates
        # itself: its warning, not this check's (the tests turn warnings into errors).
        warnings.filterwarnings("ignore", r".*torch\.jit\.script.* is deprecated", DeprecationWarning)
        return _torch_transform(f, transform, xs, vs)


def _torch_transform(f: Callable[..., Any], transform: str, xs: tuple[Any, ...], vs: tuple[Any, ...]) -> Any:
    import torch.func as tf

    every = tuple(range(len(xs)))
    if transform == "jvp":
        return tf.jvp(f, xs, vs)
    if transform == "jacfwd":
        return tf.jacfwd(f, argnums=every)(*xs)
    if transform.startswith("hvp"):
        return tf.jvp(tf.grad(lambda *ys: f(*ys).sum(), argnums=every), xs, vs)[1]
    if transform == "hessian":
        return tf.hessian(lambda *ys: f(*ys).sum(), argnums=every)(*xs)
    raise ValueError(f"torch_func_checks: unknown transform {transform!r}; use one of {TRANSFORMS}")


def _arrays(result: Any) -> list[np.ndarray]:
    """The arrays of a (nested) result, in order."""
    if isinstance(result, tuple | list):
        return [a for item in result for a in _arrays(item)]
    data = getattr(result, "data", result)
    return [data.detach().numpy() if hasattr(data, "detach") else np.asarray(data)]


def _structure(result: Any) -> Any:
    """Nested tuples of shapes: what must match before the values are compared."""
    if isinstance(result, tuple | list):
        return tuple(_structure(item) for item in result)
    return tuple(result.shape)


def check(
    case: Case,
    transform: str,
    seed: int = 0,
    ours: Callable[[Case, str, Sequence[np.ndarray], Sequence[np.ndarray]], Any] = autobp_result,
) -> float:
    """Compare ``ours`` (autobp by default) with torch.func on one case; returns the largest
    difference relative to the result's scale, or raises AssertionError naming the case."""
    inputs, direction = _points(case, seed)
    got, want = ours(case, transform, inputs, direction), torch_result(case, transform, inputs, direction)
    where = f"{case.name}, {transform}"
    if _structure(got) != _structure(want):
        raise AssertionError(f"{where}: autobp gives shapes {_structure(got)}, torch.func {_structure(want)}")
    worst = 0.0
    for a, b in zip(_arrays(got), _arrays(want), strict=True):
        # autobp keeps the inputs' dtype; torch.func's forward mode does not always (the tangent of
        # 0.5 * a 0-d float32 tensor is float64 in torch 2.13), so only its values are compared.
        if a.dtype != case.dtype:
            raise AssertionError(f"{where}: autobp gives {a.dtype} for {np.dtype(case.dtype)} inputs")
        scale = max(float(np.max(np.abs(b))), 1.0) if b.size else 1.0
        error = float(np.max(np.abs(a - b))) / scale if a.size else 0.0
        if not np.allclose(a, b, rtol=case.rtol, atol=case.rtol * scale):
            raise AssertionError(f"{where}: autobp and torch.func differ by up to {error:.3g} (rtol {case.rtol})")
        worst = max(worst, error)
    return worst


def run_all(seeds: Sequence[int] = (0, 1)) -> list[tuple[str, str, float]]:
    """Every case under each of its transforms, at each seed: ``(case, transform, worst difference)``."""
    return [
        (case.name, transform, max(check(case, transform, seed) for seed in seeds))
        for case in CASES
        for transform in case.transforms
    ]


def summary() -> str:
    """One line for the benchmark report: how many checks agree (raises when one does not)."""
    checks = run_all()
    return f"torch.func checks: {len(checks)} agree ({', '.join(TRANSFORMS)}), worst relative difference " + (
        f"{max(worst for _, _, worst in checks):.1e}"
    )


def main() -> int:
    for name, transform, worst in run_all():
        print(f"{name:42} {transform:26} agrees, worst relative difference {worst:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
