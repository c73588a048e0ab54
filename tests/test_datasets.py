"""IDX reading and writing, MNIST loading and download (without the network), and the bundled subset."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autobp.datasets import (
    MNIST_FILES,
    DownloadError,
    IDXError,
    download_mnist,
    encode_idx,
    load_bundled,
    load_mnist,
    read_idx,
    to_columns,
    write_idx,
)

IDX_DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@given(
    array=st.sampled_from(IDX_DTYPES).flatmap(
        lambda dtype: hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4))
    ),
    compressed=st.booleans(),
)
def test_idx_round_trip(tmp_path_factory: pytest.TempPathFactory, array: np.ndarray, compressed: bool) -> None:
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if compressed else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_header_is_big_endian_with_the_standard_magic(tmp_path: Path) -> None:
    raw = encode_idx(np.zeros((3, 2, 258), np.uint8))
    assert raw[:4] == bytes([0, 0, 0x08, 3]) and raw[4:16] == bytes([0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 1, 2])
    path = tmp_path / "x.idx"
    path.write_bytes(encode_idx(np.array([1, 258], dtype=np.int32)))
    assert path.read_bytes()[8:] == bytes([0, 0, 0, 1, 0, 0, 1, 2])  # data big-endian too
    assert read_idx(path).tolist() == [1, 258]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x00\x00", "shorter than the 4-byte magic"),
        (b"\x12\x34\x08\x01" + b"\x00" * 8, "bad magic number 0x12340801"),
        (b"\x00\x00\x07\x01" + b"\x00" * 8, "bad magic number"),
        (b"\x00\x00\x08\x00", "declares 0 dimensions"),
        (b"\x00\x00\x08\xff" + b"\x00\x00\x00\x01" * 255, "declares 255 dimensions; an array has 1 to 64"),
        # 65536 ** 4 elements: an int64 product wrapped to 0, which matched a header-only file
        (b"\x00\x00\x08\x04" + b"\x00\x01\x00\x00" * 4, r"truncated: dimensions \[65536, 65536, 65536, 65536\]"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated inside its header"),
        (encode_idx(np.arange(10, dtype=np.uint8))[:-3], r"truncated: dimensions \[10\] of uint8 need 18 bytes"),
        (encode_idx(np.arange(10, dtype=np.uint8)) + b"\x00", "longer than its header says"),
    ],
)
def test_corrupt_idx_files_give_clear_errors(tmp_path: Path, raw: bytes, message: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(raw)
    with pytest.raises(IDXError, match=message):
        read_idx(path)


def test_truncated_gzip_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.idx.gz"
    path.write_bytes(gzip.compress(encode_idx(np.arange(100, dtype=np.uint8)))[:-10])
    with pytest.raises(IDXError, match="not a valid gzip file"):
        read_idx(path)


def test_write_idx_rejects_what_idx_cannot_store(tmp_path: Path) -> None:
    with pytest.raises(IDXError, match="write_idx: IDX stores"):
        write_idx(tmp_path / "x.idx", np.zeros(3, dtype=np.int64))


def fake_mnist(
    directory: Path, n_train: int = 30, n_test: int = 12, gz: bool = True, seed: int = 0
) -> dict[str, bytes]:
    """Small random MNIST-shaped IDX files under the standard names; returns their uncompressed bytes."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, n_train, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    contents = {}
    for field, name in MNIST_FILES.items():
        write_idx(directory / (name if gz else name.removesuffix(".gz")), arrays[field])
        contents[name] = encode_idx(arrays[field])
    return contents


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_reads_the_four_standard_files(tmp_path: Path, gz: bool) -> None:
    contents = fake_mnist(tmp_path, gz=gz)
    data = load_mnist(tmp_path)
    assert data.train_images.shape == (30, 28, 28) and data.test_labels.shape == (12,)
    assert data.train_images.tobytes() == contents["train-images-idx3-ubyte.gz"][16:]


def test_load_mnist_checks_the_files_agree(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(IDXError, match="12 test images but 11 labels"):
        load_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(12, 10, np.uint8))
    with pytest.raises(IDXError, match="digits 0-9, found 10"):
        load_mnist(tmp_path)


def test_load_mnist_names_the_dtype_and_shape_it_refuses(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((30, 28, 28), np.float32))
    with pytest.raises(IDXError, match=r"got float32\[30, 28, 28\] and uint8\[30\]"):
        load_mnist(tmp_path)


def test_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="download=True"):
        load_mnist(tmp_path)


def test_download_offline_gives_a_clear_error_and_no_files(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"(?s)any mirror \(offline\?\).*127\.0\.0\.1:9"):
        load_mnist(tmp_path / "mnist", download=True, mirrors=["http://127.0.0.1:9/"], timeout=2)
    assert list((tmp_path / "mnist").iterdir()) == []


def test_download_rejects_a_wrong_checksum(tmp_path: Path) -> None:
    fake_mnist(tmp_path / "mirror")  # random content: its md5 is not MNIST's
    target = tmp_path / "mnist"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_mnist(target, mirrors=[(tmp_path / "mirror").as_uri()])
    assert list(target.iterdir()) == []


def test_download_verifies_and_moves_files_into_place(tmp_path: Path) -> None:
    contents = fake_mnist(tmp_path / "mirror")
    checksums = {name: hashlib.md5(raw).hexdigest() for name, raw in contents.items()}
    (tmp_path / "bad").mkdir()
    for name in MNIST_FILES.values():  # the first mirror serves garbage: the second one must be used
        (tmp_path / "bad" / name).write_bytes(b"not gzip")
    mirrors = [(tmp_path / "bad").as_uri(), (tmp_path / "mirror").as_uri() + "/"]
    data = load_mnist(tmp_path / "mnist", download=True, mirrors=mirrors, checksums=checksums)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(MNIST_FILES.values())
    assert data.test_images.tobytes() == contents["t10k-images-idx3-ubyte.gz"][16:]


def test_bundled_subset_is_stratified_real_digits() -> None:
    data = load_bundled()
    assert data.train_images.shape == (10_000, 28, 28) and data.test_images.shape == (2_000, 28, 28)
    assert data.train_images.dtype == np.uint8
    assert np.bincount(data.train_labels, minlength=10).tolist() == [1000] * 10
    assert np.bincount(data.test_labels, minlength=10).tolist() == [200] * 10
    # Real digits, not noise: ink covers a minority of the pixels, the border is nearly blank, the centre is not.
    ink = (data.train_images > 128).mean()
    assert 0.05 < ink < 0.3
    assert data.train_images[:, 0, :].mean() < 1.0 < 50.0 < data.train_images[:, 10:18, 10:18].mean()
    path = Path(__file__).resolve().parent.parent / "autobp" / "data" / "mnist_subset.npz"
    assert path.stat().st_size <= 2_100_000


def test_to_columns_scales_and_transposes() -> None:
    images = np.arange(2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 3)
    x, labels = to_columns(images, np.array([3, 4], np.uint8))
    assert x.shape == (6, 2) and x.dtype == np.float64 and labels.dtype == np.int64
    np.testing.assert_allclose(x[:, 1], images[1].ravel() / 255.0)


def test_to_columns_refuses_what_it_would_scale_or_pair_wrongly() -> None:
    # Float images in [0, 1] came back divided by 255 (as float32), 5 images went with 3 labels,
    # and limit=-1 dropped the last example, all without an error.
    from autobp.datasets import to_columns

    pixels = np.arange(5 * 2 * 2, dtype=np.uint8).reshape(5, 2, 2)
    labels = np.arange(5, dtype=np.uint8)
    x, y = to_columns(pixels, labels, limit=np.int64(3))
    assert x.dtype == np.float64 and x.shape == (4, 3) and x[:, 2].tolist() == [8 / 255, 9 / 255, 10 / 255, 11 / 255]
    assert y.tolist() == [0, 1, 2]
    empty_x, empty_y = to_columns(pixels, labels, limit=0)
    assert empty_x.shape == (4, 0) and empty_y.shape == (0,)
    with pytest.raises(TypeError, match="uint8 pixels"):
        to_columns(pixels / 255.0, labels)
    with pytest.raises(ValueError, match="same n"):
        to_columns(pixels, labels[:3])
    for limit in (-1, 2.0, True):
        with pytest.raises(ValueError, match="limit must be a count"):
            to_columns(pixels, labels, limit=limit)  # type: ignore[arg-type]
