"""autobp.backends.numpy_errors: quiet calls silence numpy's floating-point warnings exactly as
np.errstate(all="ignore") would, restore the caller's state, and keep its other settings."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

import autobp as ab
from autobp.backends import numpy_errors
from autobp.backends.numpy_errors import quiet, quietly


@pytest.fixture(params=["derived", "errstate"])
def implementation(request, monkeypatch):
    """Both ways: the derived state (numpy >= 2.0's machinery) and np.errstate, the fallback."""
    if request.param == "errstate":
        monkeypatch.setattr(numpy_errors, "_make_extobj", None)
    return request.param


def _log(x):
    return np.log(np.asarray(x))


def test_a_quiet_call_is_silent_and_the_callers_state_comes_back(implementation):
    with np.errstate(all="raise"):
        with pytest.raises(FloatingPointError):
            _log(-1.0)
        assert np.isnan(quiet(_log)(-1.0))
        with quietly():
            assert np.isneginf(_log(0.0))
        assert np.geterr() == {"divide": "raise", "over": "raise", "under": "raise", "invalid": "raise"}
        with pytest.raises(FloatingPointError):
            _log(0.0)


def test_nested_and_raising_calls_restore_the_state(implementation):
    def inner(x):
        with quietly():
            return quiet(_log)(x)

    def fails(x):
        _log(x)
        raise ValueError("inside")

    with np.errstate(all="raise"):
        assert np.isnan(quiet(inner)(-1.0))
        with pytest.raises(ValueError, match="inside"):
            quiet(fails)(-1.0)
        with pytest.raises(ValueError, match="inside"), quietly():
            fails(-1.0)
        assert np.geterr()["invalid"] == "raise"
        with pytest.raises(FloatingPointError):
            _log(-1.0)


def test_the_buffer_size_and_error_callback_are_the_callers(implementation):
    """Only the error actions change: the state is derived from the one in force at each call,
    and the cache of the last derivation follows the caller's state when it changes."""
    read = quiet(np.getbufsize)
    with np.errstate(all="ignore"):
        for size in (8192, 16384, 8192):
            previous = np.setbufsize(size)
            try:
                assert read() == size
            finally:
                np.setbufsize(previous)
    calls = []
    with np.errstate(all="call", call=lambda kind, flag: calls.append(kind)):
        assert np.isnan(quiet(_log)(-1.0))
        assert calls == []
        assert quiet(np.geterrcall)() is not None
        _log(-1.0)  # the caller's callback is back
    assert calls == ["invalid value"]


def test_another_threads_state_is_its_own(implementation):
    seen = {}

    def worker():
        with np.errstate(all="raise"):
            quiet(_log)(-1.0)
            try:
                _log(-1.0)
            except FloatingPointError:
                seen["raised"] = True

    with np.errstate(all="warn"):
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        with pytest.warns(RuntimeWarning):
            _log(-1.0)
    assert seen == {"raised": True}


def test_ops_and_backward_stay_silent_and_leave_no_state_behind(implementation):
    before = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        x = ab.tensor([0.0, -1.0, 4.0], requires_grad=True)
        y = ab.log(x) + ab.sqrt(x)
        y.sum().backward()
    assert np.geterr() == before
    np.testing.assert_array_equal(y.data[[0, 2]], [-np.inf, np.log(4.0) + 2.0])
    np.testing.assert_array_equal(x.grad.data[[0, 2]], [np.inf, 0.25 + 0.25])


def test_a_backward_that_fails_leaves_the_callers_state(implementation):
    x = ab.tensor([1.0, 2.0], requires_grad=True)
    w = ab.tensor([3.0, 4.0], requires_grad=True)
    loss = (x * w).sum()
    with ab.no_grad():
        w.mul_(2.0)  # saved by mul: backward must refuse
    with np.errstate(all="raise"):
        with pytest.raises(RuntimeError, match="modified"):
            loss.backward()
        assert np.geterr()["invalid"] == "raise"
        with pytest.raises(FloatingPointError):
            _log(-1.0)
