"""Tests for ab.save / ab.load: exact round trips, and files with pickled content are refused unread."""

from __future__ import annotations

import io
import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

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


# -- damaged files: one error type, LoadError (a ValueError), for every kind of damage ------------------
SMALL = {"w": ab.tensor([[1.0, -2.0], [0.5, 3.0]]), "steps": [3, 2.5], "name": "net", "ids": np.arange(3)}


def small_file(tmp_path: Path, compression: int = zipfile.ZIP_STORED) -> bytes:
    """SMALL as ab.save writes it; deflated member by member (as np.savez_compressed does) if asked."""
    ab.save(SMALL, tmp_path / "small.npz")
    if compression != zipfile.ZIP_STORED:
        with zipfile.ZipFile(tmp_path / "small.npz") as stored:
            members = {name: stored.read(name) for name in stored.namelist()}
        with zipfile.ZipFile(tmp_path / "small.npz", "w", compression) as deflated:
            for name, data in members.items():
                deflated.writestr(name, data)
    return (tmp_path / "small.npz").read_bytes()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def load_intact_or_refused(path: Path) -> None:
    """A damaged file loads as the original (the byte did not matter) or raises LoadError; nothing else."""
    try:
        loaded = ab.load(path)
    except ab.LoadError as error:
        assert str(path) in str(error)
        return
    assert_same(loaded, SMALL)


def test_load_error_is_a_value_error_and_public() -> None:
    assert issubclass(ab.LoadError, ValueError) and ab.LoadError is ab.io.LoadError


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(ab.LoadError, match=r"empty\.npz is empty"):
        ab.load(tmp_path / "empty.npz")


def test_a_member_shorter_than_its_header_is_refused(tmp_path: Path) -> None:
    data = npy_bytes(np.arange(6.0))
    path = zip_of(tmp_path / "short.npz", {"d:a|tensor.npy": data[:-8]})
    with pytest.raises(
        ab.LoadError, match=r"'d:a\|tensor' holds 40 bytes of data, but its header declares float64\[6\]"
    ):
        ab.load(path)
    path = zip_of(tmp_path / "long.npz", {"d:a|tensor.npy": data + b"\0" * 8})  # longer: as wrong
    with pytest.raises(ab.LoadError, match=r"holds 56 bytes of data"):
        ab.load(path)


def test_a_header_declaring_terabytes_is_refused_before_allocating(tmp_path: Path) -> None:
    data = npy_bytes(np.arange(2.0)).replace(b"(2,)", b"(1099511627776,)")  # 2**40 float64: 8 TiB
    path = zip_of(tmp_path / "huge.npz", {"d:a|tensor.npy": data})
    with pytest.raises(ab.LoadError, match=r"header declares float64\[1099511627776\]"):
        ab.load(path)


def test_a_zip_entry_declaring_gigabytes_is_refused_before_reading(tmp_path: Path) -> None:
    raw = bytearray(small_file(tmp_path))
    directory = raw.index(b"PK\x01\x02")  # the first central-directory record
    raw[directory + 20 : directory + 28] = struct.pack("<II", 0xFFFFFFF0, 0xFFFFFFF0)  # both sizes
    (tmp_path / "big.npz").write_bytes(bytes(raw))
    with pytest.raises(ab.LoadError, match=r"declares 4294967280 bytes"):
        ab.load(tmp_path / "big.npz")


@pytest.mark.parametrize("first", ["d:a|tensor", "d:a/d:b|tensor"])
def test_an_entry_inside_another_entrys_value_is_refused(tmp_path: Path, first: str) -> None:
    second = "d:a/d:b|tensor" if first == "d:a|tensor" else "d:a|tensor"
    np.savez(tmp_path / "clash.npz", **{first: np.ones(2), second: np.zeros(2)})
    with pytest.raises(ab.LoadError, match=r"clash\.npz: entry 'd:a.*(lies inside|collides)"):
        ab.load(tmp_path / "clash.npz")


@pytest.mark.parametrize(
    "names, message",
    [
        (["d:a|tensor", "d:a|array"], "collides"),  # two values for one key
        (["|tensor", "d:a|tensor"], "lies inside"),  # a top-level value and a dict
        (["l:0|int", "l:2|int"], r"items \[0, 2\], not 0\.\.1"),  # a gap in a list
        (["l:0|int", "d:x|int"], "mix container kinds"),
        (["t:-1|int"], "malformed entry name"),
        (["i:\u00b2|int"], "malformed entry name"),  # a digit to str.isdigit, not to int()
    ],
)
def test_entries_that_contradict_each_other_are_refused(tmp_path: Path, names: list[str], message: str) -> None:
    zip_of(tmp_path / "odd.npz", {f"{name}.npy": npy_bytes(np.array(1)) for name in names})
    with pytest.raises(ab.LoadError, match=message):
        ab.load(tmp_path / "odd.npz")


def test_members_that_are_not_npy_arrays_are_refused(tmp_path: Path) -> None:
    zip_of(tmp_path / "text.npz", {"d:a|tensor": npy_bytes(np.ones(2))})
    with pytest.raises(ab.LoadError, match=r"member 'd:a\|tensor' is not an \.npy array"):
        ab.load(tmp_path / "text.npz")
    zip_of(tmp_path / "none.npz", {})
    with pytest.raises(ab.LoadError, match="holds no entries"):
        ab.load(tmp_path / "none.npz")
    zip_of(tmp_path / "twice.npz", {"d:a|int.npy": npy_bytes(np.array(1))})
    with zipfile.ZipFile(tmp_path / "twice.npz", "a") as archive, pytest.warns(UserWarning, match="Duplicate"):
        archive.writestr("d:a|int.npy", npy_bytes(np.array(2)))
    with pytest.raises(ab.LoadError, match="appears more than once"):
        ab.load(tmp_path / "twice.npz")


@pytest.mark.parametrize(
    "name, array, message",
    [
        ("d:a|float.npy", np.ones(2), r"holds float64\[2\], which no float entry"),
        ("d:a|int.npy", np.array(1.5), r"holds float64\[\], which no int entry"),
        ("d:a|tensor.npy", np.ones(2, dtype=np.float32).reshape(2, 1)[:, :0], None),  # an empty array is fine
    ],
)
def test_scalar_entries_must_hold_what_save_writes(tmp_path: Path, name: str, array: np.ndarray, message: str) -> None:
    zip_of(tmp_path / "kinds.npz", {name: npy_bytes(array)})
    if message is None:
        assert_same(ab.load(tmp_path / "kinds.npz"), {"a": ab.tensor(array)})
        return
    with pytest.raises(ab.LoadError, match=message):
        ab.load(tmp_path / "kinds.npz")


@pytest.mark.parametrize("compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_every_flipped_byte_loads_the_original_or_raises_load_error(tmp_path: Path, compression: int) -> None:
    original = small_file(tmp_path, compression)
    (tmp_path / "intact.npz").write_bytes(original)
    assert_same(ab.load(tmp_path / "intact.npz"), SMALL)  # np.savez_compressed-style files load too
    path = tmp_path / "flipped.npz"
    for position in range(len(original)):  # exhaustive: the file is small
        damaged = bytearray(original)
        damaged[position] ^= 0xFF
        path.write_bytes(bytes(damaged))
        load_intact_or_refused(path)


def test_every_truncation_raises_load_error(tmp_path: Path) -> None:
    original = small_file(tmp_path)
    path = tmp_path / "cut.npz"
    for length in range(len(original)):
        path.write_bytes(original[:length])
        with pytest.raises(ab.LoadError):
            ab.load(path)


@given(data=st.data(), compression=st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
def test_random_byte_damage_loads_the_original_or_raises_load_error(data: st.DataObject, compression: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        original = small_file(Path(folder), compression)
        damaged = bytearray(original)
        for _ in range(data.draw(st.integers(1, 4), label="bytes changed")):
            position = data.draw(st.integers(0, len(original) - 1), label="position")
            damaged[position] = data.draw(st.integers(0, 255).filter(lambda b: b != original[position]), label="byte")
        path = Path(folder) / "damaged.npz"
        path.write_bytes(bytes(damaged))
        load_intact_or_refused(path)


def test_every_dtype_and_memory_order_reads_back_exactly_and_writeable(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "fortran": np.asfortranarray(rng.standard_normal((3, 4, 2))),
        "big_endian": np.arange(5, dtype=">i4"),
        "bool": np.array([True, False]),
        "unicode": np.array(["ab", "c"]),
        "datetime": np.array(["2020-01-01"], dtype="M8[D]"),
        "complex": np.array([1 + 2j]),
        "zero_d": np.array(3.5),
        "empty": np.zeros((0, 3)),
        "structured": np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8")]),
        "strided": np.arange(10.0)[::2],
        "several_chunks": rng.standard_normal(100_000),  # read in more than one chunk
    }
    ab.save(arrays, tmp_path / "dtypes.npz")
    loaded = ab.load(tmp_path / "dtypes.npz")
    assert_same(loaded, arrays)
    assert all(array.flags.writeable for array in loaded.values())
    assert loaded["fortran"].flags.f_contiguous


def test_an_int_beyond_64_bits_is_refused_by_where_it_is(tmp_path: Path) -> None:
    with pytest.raises(OverflowError, match=r"save: the int at 'd:v' does not fit in 64 bits"):
        ab.save({"v": 2**70}, tmp_path / "big.ab")


def test_requires_grad_survives_a_round_trip(tmp_path: Path) -> None:
    # Loaded tensors came back with requires_grad off (PyTorch keeps it).
    w, frozen = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([3.0])
    path = tmp_path / "grad.npz"
    ab.save({"w": w, "frozen": frozen, "nested": [w]}, path)
    loaded = ab.load(path)
    assert loaded["w"].requires_grad and loaded["nested"][0].requires_grad and not loaded["frozen"].requires_grad
    assert loaded["w"].tolist() == [1.0, 2.0] and loaded["w"].grad_fn is None  # (a leaf)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"s": "abc\x00"}, "ends with a NUL character"),  # numpy's strings drop trailing NULs: "abc" came back
        ({"a\x00b": 1}, "holds a NUL character"),  # saved, then load refused the file
        ({"m": np.ma.array([1.0, -999.0], mask=[False, True])}, "would lose its mask"),  # the mask was lost
    ],
)
def test_what_a_file_cannot_keep_is_refused_when_saving(tmp_path: Path, obj: Any, message: str) -> None:
    path = tmp_path / "refused.npz"
    with pytest.raises((ValueError, TypeError), match=message):
        ab.save(obj, path)
    assert not path.exists()  # (refused before the file is opened)


def test_one_tensor_or_array_in_two_places_loads_as_one_object(tmp_path: Path) -> None:
    # A weight tied to two layers, saved in both places, came back as two independent copies:
    # a step on one no longer moved the other, with no error (torch.load gives one object).
    w, a = ab.tensor([1.0, 2.0], requires_grad=True), np.arange(3)
    path = tmp_path / "tied.npz"
    ab.save({"encoder": {"weight": w}, "decoder": {"weight": w}, "pair": (a, a), "other": w * 1.0}, path)
    loaded = ab.load(path)
    assert loaded["encoder"]["weight"] is loaded["decoder"]["weight"]
    assert loaded["encoder"]["weight"].requires_grad and loaded["encoder"]["weight"].tolist() == [1.0, 2.0]
    assert loaded["pair"][0] is loaded["pair"][1] and loaded["pair"][0].tolist() == [0, 1, 2]
    assert loaded["other"] is not loaded["encoder"]["weight"]  # equal values, another object: another entry
    with zipfile.ZipFile(path) as archive:
        assert sum(name.endswith("|same.npy") for name in archive.namelist()) == 2  # stored once each


def test_a_same_entry_naming_no_stored_array_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "dangling.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in {"d:a|int": np.array(1), "d:b|same": np.array("d:a"), "d:c|same": np.array("d:z")}.items():
            with archive.open(f"{name}.npy", "w") as member:
                np.lib.format.write_array(member, value)
    with pytest.raises(ab.LoadError, match="refers to 'd:a', which holds no Tensor or array"):
        ab.load(path)


def test_a_tensors_name_survives_a_round_trip(tmp_path: Path) -> None:
    # The label graph pictures show came back None.
    w, b = ab.tensor([1.0, 2.0], requires_grad=True), ab.tensor([3.0])
    w.name = "encoder.weight"
    path = tmp_path / "named.npz"
    ab.save({"w": w, "b": b, "again": [w]}, path)
    loaded = ab.load(path)
    assert loaded["w"].name == "encoder.weight" and loaded["again"][0] is loaded["w"] and loaded["b"].name is None
    assert set(loaded) == {"w", "b", "again"}
    for name, message in (("d:x|name", "names no Tensor"), ("d:w|name", "which no name entry")):
        with zipfile.ZipFile(tmp_path / "bad.npz", "w") as archive:
            members = {"d:w|tensor": np.array([1.0]), name: np.array("n") if "x" in name else np.array(3)}
            for member, value in members.items():
                with archive.open(f"{member}.npy", "w") as handle:
                    np.lib.format.write_array(handle, value)
        with pytest.raises(ab.LoadError, match=message):
            ab.load(tmp_path / "bad.npz")
