"""Memory: backward frees the graph, create_graph cycles are announced, training stays flat."""

from __future__ import annotations

import gc
import tracemalloc
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import autobp as ab


@pytest.fixture
def no_gc() -> Iterator[None]:
    """Only reference counting frees objects: whatever survives is held, or sits in a cycle."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _forward(x: ab.Tensor) -> tuple[ab.Tensor, list[weakref.ref[Any]]]:
    h = ab.tanh(x @ x.T)
    z = ab.exp(h) * h
    loss = z.sum()
    refs = [weakref.ref(t) for t in (h, z)]  # (each is its op's node too)
    return loss, refs


def test_backward_frees_the_graph_without_the_garbage_collector(no_gc: None) -> None:
    x = ab.randn(3, 4, requires_grad=True, rng=0)
    loss, refs = _forward(x)
    assert all(r() is not None for r in refs)
    loss.backward()
    assert all(r() is None for r in refs)
    assert loss.grad_fn is not None and loss.grad_fn.inputs is None  # released, not just unreachable


def test_retain_graph_keeps_it_until_the_last_backward(no_gc: None) -> None:
    x = ab.randn(3, 4, requires_grad=True, rng=0)
    loss, refs = _forward(x)
    loss.backward(retain_graph=True)
    assert all(r() is not None for r in refs)
    loss.backward()
    assert all(r() is None for r in refs)
    with pytest.raises(RuntimeError, match="a second time"):
        loss.backward()


def test_saved_arrays_are_released_while_the_output_lives() -> None:
    x = ab.randn(256, 256, requires_grad=True, rng=0)  # 512 KiB per intermediate
    gc.collect()
    tracemalloc.start()
    try:
        loss = ab.exp(ab.tanh(x * 2.0) * 3.0).sum()
        during = tracemalloc.get_traced_memory()[0]
        loss.backward()
        x.grad = None
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert during > 4 * x.data.nbytes  # four intermediates were alive...
    assert after < during - 3 * x.data.nbytes  # ...and are gone, though `loss` still is not


def test_grad_with_create_graph_leaves_no_cycle(no_gc: None) -> None:
    x = ab.randn(3, requires_grad=True, rng=0)
    (g,) = ab.grad((x**3).sum(), [x], create_graph=True)
    node = weakref.ref(g)  # (g is the node of the op that made it)
    (h,) = ab.grad(g.sum(), [x])
    np.testing.assert_allclose(h.data, 6.0 * x.data)
    del g
    assert node() is None


def test_backward_with_create_graph_warns_about_the_cycle_and_gc_frees_it() -> None:
    x = ab.randn(3, requires_grad=True, rng=0)
    with pytest.warns(UserWarning, match="reference cycle"):
        (x**3).sum().backward(create_graph=True)
    assert x.grad is not None and x.grad.requires_grad
    node = weakref.ref(x.grad)  # (the node of the op that made it)
    (second,) = ab.grad(x.grad.sum(), [x])
    np.testing.assert_allclose(second.data, 6.0 * x.data)
    x.grad = None
    gc.collect()
    assert node() is None


def test_backward_with_create_graph_on_a_linear_function_makes_no_cycle(no_gc: None) -> None:
    x = ab.randn(3, requires_grad=True, rng=0)
    (x * 2.0).sum().backward(create_graph=True)  # the gradient is a constant: no warning needed
    assert not x.grad.requires_grad


def _train(steps: int, traced: int, leak: list[Any] | None = None) -> tuple[int, int]:
    """SGD on a 4-8-1 tanh MLP; tracemalloc watches the last ``traced`` steps (it slows each
    allocation several times, and a leak shows in any window). Returns the traced memory halfway
    through the window (once caches have settled) and at the end."""
    generator = np.random.default_rng(0)
    inputs = ab.tensor(generator.standard_normal((16, 4)))
    targets = ab.tensor(generator.standard_normal((16, 1)))
    params = [
        ab.tensor(generator.standard_normal((4, 8)) * 0.5, requires_grad=True),
        ab.zeros(8, requires_grad=True),
        ab.tensor(generator.standard_normal((8, 1)) * 0.5, requires_grad=True),
        ab.zeros(1, requires_grad=True),
    ]
    w1, b1, w2, b2 = params
    marks = {steps - traced: "start", steps - traced // 2: "warm", steps: "end"}
    memory = {}
    try:
        for step in range(steps + 1):
            if step in marks:
                gc.collect()
                if marks[step] == "start":
                    tracemalloc.start()
                memory[marks[step]] = tracemalloc.get_traced_memory()[0]
            if step == steps:
                break
            hidden = ab.tanh(inputs @ w1 + b1)
            loss = ((hidden @ w2 + b2 - targets) ** 2).mean()
            loss.backward()
            with ab.no_grad():
                for p in params:
                    p.sub_(0.05 * p.grad)
                    p.grad = None
            if leak is not None:
                leak.append(loss)
    finally:
        tracemalloc.stop()
    assert float(loss.item()) < 1.0  # it trained
    return memory["warm"], memory["end"]


def test_two_thousand_training_steps_keep_memory_flat() -> None:
    warm, end = _train(2000, traced=300)
    assert end - warm < BOUND, f"memory grew by {end - warm} bytes over the last 150 steps"


def test_the_memory_check_sees_a_small_leak() -> None:
    """The bound is tight enough to catch keeping one released loss tensor per step."""
    kept: list[Any] = []
    warm, end = _train(300, traced=300, leak=kept)
    assert end - warm > BOUND


# Bytes the last 150 steps may add. Untraced objects that caches and free lists replace with
# traced ones make the traced total creep up early in a window (a few KB, levelling off);
# keeping one released loss per step adds about 75 KB.
BOUND = 24 * 1024
