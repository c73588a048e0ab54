"""Tests for ab.save / ab.load: exact round trips, and files with pickled content are refused unread."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import autobp as ab
from autobp import nn, optim


class Payload:
    """Unpickling this object creates ``marker``: the file must never appear."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def assert_same(a: Any, b: Any) -> None:
    assert type(a) is type(b), (a, b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, ab.Tensor | np.ndarray):
        x, y = np.asarray(a), np.asarray(b)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
    else:
        assert a == b


def test_nested_objects_round_trip_exactly(tmp_path: Path) -> None:
    obj = {
        "model": {"fc1.weight": ab.randn(3, 2, rng=0), "half": ab.tensor(np.ones(2, np.float32))},
        "arrays": [np.arange(4, dtype=np.int32), np.array([True, False]), np.float64(1.0 / 3.0)],
        "scalars": (1, 2.5, True, "text", None),
        "odd/keys|and%": {7: "int key", "a/b": 1.0 / 3.0},
        "empty": ({}, [], ()),
        "zero_d": np.array(3.0),
    }
    path = tmp_path / "state.npz"
    ab.save(obj, path)
    assert_same(ab.load(path), obj)
    ab.save(ab.tensor([1.0, 2.0]), path)  # a bare leaf
    assert_same(ab.load(path), ab.tensor([1.0, 2.0]))


def test_model_and_optimizer_round_trip_through_a_file(tmp_path: Path) -> None:
    def make() -> tuple[nn.Module, optim.Optimizer]:
        model = nn.Sequential(nn.Linear(3, 4, rng=0), nn.Tanh(), nn.Linear(4, 2, rng=1))
        return model, optim.Adam(model.parameters(), lr=0.05, amsgrad=True)

    def train(model: nn.Module, opt: optim.Optimizer, seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(3):
            x, y = ab.tensor(rng.standard_normal((5, 3))), ab.tensor(rng.standard_normal((5, 2)))
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()

    model, opt = make()
    train(model, opt, 0)
    ab.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "ckpt.npz")
    restored_model, restored_opt = make()
    checkpoint = ab.load(tmp_path / "ckpt.npz")
    restored_model.load_state_dict(checkpoint["model"])
    restored_opt.load_state_dict(checkpoint["optimizer"])
    assert_same(restored_opt.state_dict(), opt.state_dict())
    train(model, opt, 1)
    train(restored_model, restored_opt, 1)
    for (_, a), (_, b) in zip(model.named_parameters(), restored_model.named_parameters(), strict=True):
        assert np.array_equal(a.numpy(), b.numpy())


def test_save_refuses_what_would_need_pickling(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="dtype object"):
        ab.save({"bad": np.array([{}], dtype=object)}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="cannot store set"):
        ab.save({"bad": {1, 2}}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="keys must be str or int"):
        ab.save({(1, 2): 1.0}, tmp_path / "x.npz")


def test_a_pickled_object_array_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npz"
    np.savez(path, **{"d:weights|array": np.array([Payload(marker)], dtype=object)})
    with pytest.raises(ValueError, match=r"evil\.npz.*'d:weights\|array'.*pickled"):
        ab.load(path)
    assert not marker.exists()
    # The payload is live: loading it the unsafe way does run it (so the check above means something).
    with np.load(path, allow_pickle=True) as archive:
        archive["d:weights|array"]
    assert marker.exists()


def test_a_plain_pickle_file_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match=r"evil\.npz.*unpickle"):
        ab.load(path)
    assert not marker.exists()


def test_foreign_files_are_refused_with_clear_errors(tmp_path: Path) -> None:
    np.save(tmp_path / "single.npy", np.zeros(2))
    with pytest.raises(ValueError, match=r"single \.npy array"):
        ab.load(tmp_path / "single.npy")
    np.savez(tmp_path / "plain.npz", weights=np.zeros(2))
    with pytest.raises(ValueError, match=r"'weights' was not written by ab\.save"):
        ab.load(tmp_path / "plain.npz")
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
        archive.writestr("x|tensor.npy", b"not numpy")
    with pytest.raises(ValueError, match=r"bad\.npz"):
        ab.load(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError):
        ab.load(tmp_path / "missing.npz")
