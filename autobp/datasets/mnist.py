"""MNIST: load the four standard IDX files, download them when asked, or use the bundled subset.

The bundled subset (``autobp/data/mnist_subset.npz``, built by ``tools/make_bundled_mnist.py``) holds
10,000 training and 2,000 test images, equally many of each digit, so the demo runs offline.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from autobp.backends import describe
from autobp.datasets.idx import IDXError, decompress, read_idx

__all__ = [
    "MNIST",
    "MNIST_FILES",
    "MNIST_MD5",
    "MNIST_MIRRORS",
    "DownloadError",
    "download_mnist",
    "load_bundled",
    "load_mnist",
    "to_columns",
]

MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
# md5 of the *uncompressed* files: mirrors re-compress, so the gzip bytes may differ.
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte.gz": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte.gz": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte.gz": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
BUNDLED = "mnist_subset.npz"


class MNIST(NamedTuple):
    """MNIST arrays. Shapes: images (n, 28, 28) uint8, labels (n,) uint8 in 0..9."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


class DownloadError(OSError):
    """No mirror delivered a file with the expected checksum (offline, unreachable, or corrupt).

    ``name`` is the file that failed and ``failures`` one line per mirror tried, for callers (the
    ``autobp`` command) that report it in one line.
    """

    def __init__(self, message: str, name: str = "", failures: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.name = name
        self.failures = list(failures)

    @property
    def first_failure(self) -> str:
        """The first mirror's failure, e.g. ``"https://...: [Errno -2] Name or service not known"``."""
        return self.failures[0] if self.failures else ""


def _validate(data: MNIST, where: str) -> MNIST:
    for split in ("train", "test"):
        images, labels = getattr(data, f"{split}_images"), getattr(data, f"{split}_labels")
        if images.ndim != 3 or images.dtype != np.uint8 or labels.ndim != 1 or labels.dtype != np.uint8:
            raise IDXError(
                f"load_mnist: {where}: {split} images must be uint8 (n, rows, cols) and labels uint8 (n,), "
                f"got {describe(images)} and {describe(labels)}"
            )
        if images.shape[0] != labels.shape[0]:
            raise IDXError(f"load_mnist: {where}: {images.shape[0]} {split} images but {labels.shape[0]} labels")
        if labels.size and labels.max() > 9:
            raise IDXError(f"load_mnist: {where}: {split} labels must be digits 0-9, found {labels.max()}")
    return data


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def missing_files(directory: str | os.PathLike[str]) -> list[str]:
    """The standard MNIST file names that ``directory`` lacks (a file counts gzipped or not)."""
    return [name for name in MNIST_FILES.values() if _find(Path(directory), name) is None]


def load_mnist(
    directory: str | os.PathLike[str],
    *,
    download: bool = False,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    checksums: Mapping[str, str] = MNIST_MD5,
    timeout: float = 30.0,
) -> MNIST:
    """Load MNIST from ``directory`` (the four standard names, gzipped or not).

    With ``download=True`` missing files are fetched from ``mirrors`` first (see ``download_mnist``).
    Shapes: train images (60000, 28, 28), test images (10000, 28, 28), uint8; labels (n,) uint8.
    """
    directory = Path(directory)
    missing = missing_files(directory)
    if missing and download:
        download_mnist(directory, names=missing, mirrors=mirrors, checksums=checksums, timeout=timeout)
    elif missing:
        raise FileNotFoundError(
            f"load_mnist: {directory} lacks {', '.join(missing)}; pass download=True to fetch them "
            f"from a public mirror, or copy the four MNIST files there"
        )
    arrays = {}
    for field, name in MNIST_FILES.items():
        path = _find(directory, name)
        assert path is not None  # just downloaded, or checked above
        arrays[field] = read_idx(path)
    return _validate(MNIST(**arrays), str(directory))


def _fetch(url: str, timeout: float) -> bytes:
    import urllib.request  # imported here: it pulls in http, email and ssl, which `import autobp` should not pay for

    with urllib.request.urlopen(url, timeout=timeout) as response:  # mirrors may be http(s) or file URLs
        return bytes(response.read())


def download_mnist(
    directory: str | os.PathLike[str],
    *,
    names: Sequence[str] | None = None,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    checksums: Mapping[str, str] = MNIST_MD5,
    timeout: float = 30.0,
) -> list[Path]:
    """Download MNIST files into ``directory``, trying each mirror in turn; returns the paths written.

    Each file is accepted only when the md5 of its uncompressed content matches ``checksums``; it
    is written to a temporary file and renamed into place, so a failed download never leaves a
    partial file. Raises ``DownloadError`` naming every mirror's failure when none succeeds.
    """
    import hashlib  # download-only imports, kept out of `import autobp`
    import tempfile

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names if names is not None else list(MNIST_FILES.values()):
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + "/" + name
            try:
                raw = _fetch(url, timeout)
                digest = hashlib.md5(decompress(raw, url), usedforsecurity=False).hexdigest()
            except (OSError, IDXError, ValueError) as error:  # URLError and timeouts are OSErrors
                failures.append(f"{url}: {getattr(error, 'reason', error)}")
                continue
            if digest != checksums[name]:
                failures.append(f"{url}: checksum mismatch (md5 {digest}, expected {checksums[name]})")
                continue
            handle, temp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".part")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(raw)
                os.replace(temp, directory / name)
            except BaseException:
                os.unlink(temp)
                raise
            written.append(directory / name)
            break
        else:
            raise DownloadError(
                f"download_mnist: could not get {name} from any mirror (offline?):\n  "
                + "\n  ".join(failures)
                + f"\nCopy the four MNIST files into {directory} by hand, or try again when online.",
                name=name,
                failures=failures,
            )
    return written


def load_bundled() -> MNIST:
    """The MNIST subset shipped inside autobp: 10,000 training and 2,000 test images, 10% per digit.

    Shapes: train images (10000, 28, 28), test images (2000, 28, 28), uint8; labels (n,) uint8.

    >>> data = load_bundled()
    >>> data.train_images.shape, data.test_images.shape, np.bincount(data.test_labels).tolist()[:3]
    ((10000, 28, 28), (2000, 28, 28), [200, 200, 200])
    """
    from importlib import resources

    source = resources.files("autobp") / "data" / BUNDLED
    with source.open("rb") as handle, np.load(handle, allow_pickle=False) as archive:
        data = MNIST(**{field: archive[field] for field in MNIST._fields})
    return _validate(data, f"bundled {BUNDLED}")


def to_columns(images: np.ndarray, labels: np.ndarray, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images as float64 columns in [0, 1] and labels as int64, the network's stacked layout.

    Shapes: images (n, rows, cols), labels (n,) -> x (rows * cols, n), labels (n,); ``limit`` keeps
    the first ``limit`` examples.

    >>> x, y = to_columns(np.full((3, 2, 2), 255, np.uint8), np.array([1, 2, 3], np.uint8), limit=2)
    >>> x.shape, x.max(), y.tolist()
    ((4, 2), np.float64(1.0), [1, 2])
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"to_columns: images must be (n, rows, cols) and labels (n,) with the same n, "
            f"got {images.shape} and {labels.shape}"
        )
    if images.dtype != np.uint8:  # (IDX pixels: dividing anything else by 255 scales it wrongly)
        raise TypeError(f"to_columns: images must be uint8 pixels (0-255), got {images.dtype}")
    if limit is not None and (isinstance(limit, bool) or not hasattr(limit, "__index__") or limit < 0):
        # (a negative limit dropped the last examples: images[:-1])
        raise ValueError(f"to_columns: limit must be a count of examples (an int >= 0), got {limit!r}")
    images, labels = images[:limit], labels[:limit]
    x = images.reshape(images.shape[0], images.shape[1] * images.shape[2]).T / 255.0
    return x, labels.astype(np.int64)
