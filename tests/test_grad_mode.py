"""Grad mode is per thread; ``no_grad`` / ``enable_grad`` / ``set_grad_enabled`` are re-entrant.

The thread tests force, with events, the interleaving that broke a shared decorator: thread A
enters, thread B (grad off) enters, A leaves first, then B. Each thread must get its own mode back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp import optim

WAIT = 10.0  # seconds: a broken interleaving fails the test instead of hanging it


def run_in_threads(*targets: Callable[[], None]) -> None:
    """Run each target in its own thread; re-raise the first error any of them hit."""
    errors: list[BaseException] = []

    def guarded(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as error:  # handed to the main thread below
                errors.append(error)

        return run

    threads = [threading.Thread(target=guarded(target)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
        assert not thread.is_alive(), "a thread is stuck: the forced interleaving did not happen"
    if errors:
        raise errors[0]


def wait(event: threading.Event) -> None:
    assert event.wait(WAIT), "the other thread never reached its step"


def interleave(enter: Callable[[Callable[[], None]], None]) -> dict[str, list[bool]]:
    """A enters first and leaves first; B enters with grad off while A is inside.

    ``enter(body)`` runs ``body`` inside the grad-mode manager under test. Returns each thread's
    grad mode at: inside the manager, just after it, and (B) after B's own ``no_grad`` block.
    """
    a_inside, b_inside, a_left = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, list[bool]] = {"a": [], "b": []}

    def thread_a() -> None:
        def body() -> None:
            a_inside.set()
            wait(b_inside)
            seen["a"].append(ab.is_grad_enabled())

        enter(body)
        seen["a"].append(ab.is_grad_enabled())
        a_left.set()

    def thread_b() -> None:
        wait(a_inside)

        def body() -> None:
            b_inside.set()
            wait(a_left)
            seen["b"].append(ab.is_grad_enabled())

        with ab.no_grad():
            enter(body)
            seen["b"].append(ab.is_grad_enabled())
        seen["b"].append(ab.is_grad_enabled())

    run_in_threads(thread_a, thread_b)
    return seen


def test_a_shared_decorator_gives_each_thread_its_own_mode_back() -> None:
    @ab.no_grad()
    def decorated(body: Callable[[], None]) -> None:
        body()

    seen = interleave(decorated)
    # A: off inside, back on after. B: off inside, still off in its own no_grad, on after it.
    assert seen == {"a": [False, True], "b": [False, False, True]}


def test_one_manager_shared_by_with_blocks_in_two_threads() -> None:
    manager = ab.no_grad()

    def enter(body: Callable[[], None]) -> None:
        with manager:
            body()

    assert interleave(enter) == {"a": [False, True], "b": [False, False, True]}


def test_set_grad_enabled_true_shared_by_threads_restores_each_mode() -> None:
    @ab.set_grad_enabled(True)
    def decorated(body: Callable[[], None]) -> None:
        body()

    # Inside: on in both. After: A on (as before), B off (inside its no_grad), then on.
    assert interleave(decorated) == {"a": [True, True], "b": [True, False, True]}


class PausingSGD(optim.SGD):
    """SGD whose update lets a test decide when each thread's step may finish."""

    def __init__(self, params: Any, pause: Callable[[], None]) -> None:
        super().__init__(params, lr=0.5)
        self.pause = pause

    def update(self, param: np.ndarray, grad: np.ndarray, state: dict[str, Any], group: dict[str, Any]) -> None:
        self.pause()
        super().update(param, grad, state, group)


def test_two_threads_stepping_optimizers_keep_recording_the_graph() -> None:
    # Optimizer.step is decorated with no_grad() once, for every optimizer in every thread.
    bodies: dict[int, Callable[[], None]] = {}

    def enter(body: Callable[[], None]) -> None:
        w = ab.tensor([1.0, 2.0], requires_grad=True)
        with ab.enable_grad():  # thread B calls this inside its no_grad block
            (w * w).sum().backward()
        bodies[threading.get_ident()] = body
        PausingSGD([w], pause=lambda: bodies[threading.get_ident()]()).step()
        assert np.array_equal(w.numpy(), [0.0, 0.0])  # w - 0.5 * 2w: the step did update

    seen = interleave(enter)
    assert seen == {"a": [False, True], "b": [False, False, True]}


def test_after_a_threaded_step_the_graph_is_recorded_again() -> None:
    def train() -> None:
        w = ab.tensor([3.0], requires_grad=True)
        opt = optim.SGD([w], lr=0.1)
        for _ in range(50):
            opt.zero_grad()
            loss = (w * w).sum()
            assert loss.requires_grad, "grad mode was left off by another thread's step"
            loss.backward()
            opt.step()
        assert abs(w.item() - 3.0 * 0.8**50) < 1e-12  # w <- w - 0.1 * 2w, fifty times

    run_in_threads(*[train] * 4)


def test_grad_mode_is_per_thread_and_new_threads_start_with_it_on() -> None:
    seen: list[bool] = []
    with ab.no_grad():
        run_in_threads(lambda: seen.append(ab.is_grad_enabled()))
        assert not ab.is_grad_enabled()
    assert seen == [True]


def test_a_walks_array_mode_forward_mode_and_tracing_tape_stay_in_their_thread() -> None:
    # All of a thread's modes live on one object fetched per op (grad_mode.Modes): another
    # thread's ops must see their own, fresh ones, not those of the thread that set them.
    from autobp.engine.mode_switch import modes
    from autobp.forward import carries_tangent

    x = ab.tensor([1.0, 2.0], requires_grad=True)
    seen: dict[str, Any] = {}

    def other_thread() -> None:
        y = ab.exp(np.ones(2))  # no array mode here: an op on an array gives a Tensor
        z = x * 2.0  # no forward-mode level here: no tangent; recorded, as grad mode is on
        seen["exp"], seen["tangent"], seen["recorded"] = type(y), carries_tangent(z), z.grad_fn

    def traced_function(w: ab.Tensor) -> ab.Tensor:
        run_in_threads(other_thread)  # while this thread traces a tape: its ops go on no tape
        return (w * w).sum()

    with ab.forward_ad.dual_level(), modes(False, arrays=True):
        ab.forward_ad.make_dual(x, ab.tensor([1.0, 1.0]))
        assert type(ab.exp(np.ones(2))) is np.ndarray  # (this thread's array mode is on)
        run_in_threads(other_thread)
    assert seen == {"exp": ab.Tensor, "tangent": False, "recorded": seen["recorded"]}
    assert seen["recorded"] is not None
    seen.clear()
    taped = ab.tape.value_and_grad(traced_function)
    for point in ([1.0, 3.0], [2.0, 5.0]):  # traced, then replayed
        value, gradient = taped(np.array(point))
        assert gradient.tolist() == [2 * p for p in point] and value.item() == sum(p * p for p in point)
    assert seen["exp"] is ab.Tensor and seen["recorded"] is not None


def test_decorators_are_re_entrant_under_recursion() -> None:
    seen: list[tuple[int, bool]] = []

    @ab.no_grad()
    def off(depth: int) -> None:
        seen.append((depth, ab.is_grad_enabled()))
        if depth:
            on(depth - 1)
        seen.append((depth, ab.is_grad_enabled()))

    @ab.enable_grad()
    def on(depth: int) -> None:
        seen.append((depth, ab.is_grad_enabled()))
        if depth:
            off(depth - 1)
            off(0)
        seen.append((depth, ab.is_grad_enabled()))

    on(5)
    assert ab.is_grad_enabled()
    # Every call sees its own decorator's mode on entry and again after its callees returned.
    expected = [(d, d % 2 == 1) for d, _ in seen]
    assert seen == expected


def test_one_with_manager_re_entered_in_one_thread() -> None:
    manager = ab.set_grad_enabled(False)
    with manager:
        with ab.enable_grad():
            with manager:
                assert not ab.is_grad_enabled()
            assert ab.is_grad_enabled()
        assert not ab.is_grad_enabled()
    assert ab.is_grad_enabled() and manager.previous == {}


def test_the_decorator_keeps_the_function_name_and_result() -> None:
    @ab.no_grad()
    def double(x: ab.Tensor) -> ab.Tensor:
        """Twice x."""
        return x * 2

    out = double(ab.tensor([1.0], requires_grad=True))
    assert (double.__name__, double.__doc__) == ("double", "Twice x.")
    assert not out.requires_grad and out.item() == 2.0


def test_a_decorated_generator_runs_each_step_in_the_mode() -> None:
    @ab.no_grad()
    def modes() -> Any:
        received = yield ab.is_grad_enabled()
        yield (received, ab.is_grad_enabled())
        return "done"

    steps = modes()
    assert next(steps) is False
    assert ab.is_grad_enabled()  # the caller's mode between steps
    assert steps.send("x") == ("x", False)
    with pytest.raises(StopIteration) as stop:
        next(steps)
    assert stop.value.value == "done"
