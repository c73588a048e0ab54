"""Anomaly mode: errors name the op and the user's line that ran its forward."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp import graph
from autobp.anomaly import is_anomaly_check_nan_enabled


def _here(offset: int = 0) -> str:
    """``file", line N`` of the caller's line (plus ``offset``), as a traceback prints it."""
    frame = inspect.currentframe()
    assert frame is not None and frame.f_back is not None
    return f'{__file__}", line {frame.f_back.f_lineno + offset}'


def test_nan_in_forward_names_the_op_and_the_forward_line() -> None:
    x = ab.tensor([0.5, 2.0], requires_grad=True)
    where = _here(offset=2)
    with ab.detect_anomaly(), pytest.raises(ab.AnomalyError) as info:
        ab.log(x - 1.0)
    message = str(info.value)
    assert "op 'log'" in message and "1 nan of 2 values" in message
    assert where in message


def test_nan_in_backward_names_the_op_and_the_forward_line() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    with ab.detect_anomaly():
        where, root = _here(), ab.sqrt(x - 1.0)
        loss = root.sum()
        with pytest.raises(ab.AnomalyError) as info:
            loss.backward()
    message = str(info.value)
    assert "backward of op 'sqrt'" in message and "1 inf of 2 values" in message
    assert where in message
    assert x.grad is None


def test_backward_error_names_the_op_and_keeps_the_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_rule(grad: Any, out: Any, x: Any) -> Any:
        raise ZeroDivisionError("a broken vjp")

    monkeypatch.setattr(ab.REGISTRY["tanh"], "rules", (broken_rule,))
    x = ab.tensor([1.0], requires_grad=True)
    with ab.detect_anomaly():
        where, y = _here(), ab.tanh(x)
        with pytest.raises(ab.AnomalyError) as info:
            (y * 2.0).sum().backward()
    assert "backward of op 'tanh' failed: ZeroDivisionError: a broken vjp" in str(info.value)
    assert where in str(info.value)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_stale_saved_tensor_error_gets_the_forward_line() -> None:
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    c = ab.tensor([3.0, 4.0])
    with ab.detect_anomaly():
        where, y = _here(), x * c
        c.mul_(2.0)
        with pytest.raises(
            ab.AnomalyError, match=r"backward of op 'mul' failed: RuntimeError: .*version 0.*version 1"
        ) as info:
            y.sum().backward()
    assert where in str(info.value)


def test_check_nan_false_records_traces_but_allows_non_finite_values() -> None:
    x = ab.tensor([0.0, 1.0], requires_grad=True)
    with ab.detect_anomaly(check_nan=False):
        assert ab.is_anomaly_enabled() and not is_anomaly_check_nan_enabled()
        y = ab.sqrt(ab.log(x))
        y.sum().backward()
    assert y.grad_fn is not None and y.grad_fn.trace is not None
    assert not np.isfinite(x.grad.data).all()


@pytest.mark.parametrize(
    "make",
    [lambda x: ab.sin(x), lambda x: x * 2.0, lambda x: x * x, lambda x: 2.0 - x],
    ids=["sin", "x*2", "x*x", "2-x"],
)
def test_an_op_on_the_public_functions_shorter_road_records_its_trace(make: Any) -> None:
    # (the road records inline where anomaly mode is off: record, which keeps the trace, otherwise)
    x = ab.tensor([0.5, 1.0], requires_grad=True)
    with ab.detect_anomaly():
        y = make(x)
    assert y.grad_fn is not None and y.grad_fn.trace is not None and y.grad_fn.trace[-1].filename == __file__
    assert make(x).grad_fn.trace is None


def test_outside_the_mode_nothing_is_recorded_or_checked() -> None:
    x = ab.tensor([0.0, 1.0], requires_grad=True)
    y = ab.log(x)
    assert graph._anomaly_hook is None and not ab.is_anomaly_enabled()
    assert y.grad_fn is not None and y.grad_fn.trace is None
    y.sum().backward()  # inf gradient, no error: numpy semantics
    assert np.isinf(x.grad.data[0])


def test_the_mode_is_restored_after_errors_and_nesting() -> None:
    with pytest.raises(ZeroDivisionError), ab.detect_anomaly():
        with ab.detect_anomaly(check_nan=False):
            assert not is_anomaly_check_nan_enabled()
        assert is_anomaly_check_nan_enabled()
        raise ZeroDivisionError
    assert not ab.is_anomaly_enabled()


def test_set_detect_anomaly_as_a_call_and_as_a_context_manager() -> None:
    ab.set_detect_anomaly(True)
    try:
        assert ab.is_anomaly_enabled()
        with ab.set_detect_anomaly(False):
            assert not ab.is_anomaly_enabled()
        assert ab.is_anomaly_enabled()
    finally:
        ab.set_detect_anomaly(False)
    assert not ab.is_anomaly_enabled()


def test_detect_anomaly_as_a_decorator() -> None:
    @ab.detect_anomaly()
    def step(x: ab.Tensor) -> ab.Tensor:
        return ab.log(x)

    with pytest.raises(ab.AnomalyError, match="op 'log'"):
        step(ab.tensor([-1.0], requires_grad=True))
    assert not ab.is_anomaly_enabled()


def test_trace_stops_at_user_code() -> None:
    x = ab.tensor([1.0], requires_grad=True)
    with ab.detect_anomaly():
        y = ab.nn.functional.sigmoid(x)  # library code between this line and the op
    trace = y.grad_fn.trace
    assert trace[-1].filename == __file__  # the innermost frame is this test, not autobp's machinery
