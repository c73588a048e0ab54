"""Datasets: an IDX reader and writer, MNIST loading and download, and a small bundled MNIST subset."""

from autobp.datasets.idx import IDXError, encode_idx, parse_idx, read_idx, write_idx
from autobp.datasets.mnist import (
    MNIST,
    MNIST_FILES,
    MNIST_MD5,
    MNIST_MIRRORS,
    DownloadError,
    download_mnist,
    load_bundled,
    load_mnist,
    to_columns,
)

__all__ = [
    "IDXError",
    "encode_idx",
    "parse_idx",
    "read_idx",
    "write_idx",
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
