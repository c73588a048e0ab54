"""The IDX file format (MNIST's): a magic number, big-endian dimensions, then the raw array.

Layout: two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64), the number of dimensions, one big-endian uint32 per dimension, then the data in
C order, big-endian. Files ending in ``.gz`` are gzip-compressed.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["IDXError", "parse_idx", "read_idx", "write_idx", "encode_idx"]

_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _DTYPES.items()}


class IDXError(ValueError):
    """An IDX file that is truncated, corrupt or not what was expected."""


def parse_idx(raw: bytes, what: str = "IDX data") -> np.ndarray:
    """Decode uncompressed IDX bytes into a native-endian numpy array.

    Shapes: the array has the dimensions stored in the header.

    >>> parse_idx(encode_idx(np.arange(6, dtype=np.uint8).reshape(2, 3))).tolist()
    [[0, 1, 2], [3, 4, 5]]
    """
    if len(raw) < 4:
        raise IDXError(f"read_idx: {what} is truncated: {len(raw)} bytes, shorter than the 4-byte magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise IDXError(
            f"read_idx: {what} has a bad magic number 0x{raw[:4].hex()}: expected 0x0000 then a type code "
            f"({', '.join(f'0x{c:02x}' for c in _DTYPES)}) and the number of dimensions; is it an IDX file?"
        )
    dtype, ndim = np.dtype(_DTYPES[raw[2]]), raw[3]
    if ndim == 0 or ndim > 64:  # (numpy's arrays have at most 64)
        raise IDXError(f"read_idx: {what} declares {ndim} dimensions; an array has 1 to 64")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"read_idx: {what} is truncated inside its header ({len(raw)} of {header} bytes)")
    shape = tuple(int(n) for n in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = header + math.prod(shape) * dtype.itemsize  # (Python ints: an int64 product could wrap to 0)
    if len(raw) != expected:
        state = "truncated" if len(raw) < expected else "longer than its header says"
        raise IDXError(
            f"read_idx: {what} is {state}: dimensions {list(shape)} of {dtype.newbyteorder('=')} need "
            f"{expected} bytes, the file has {len(raw)}"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def decompress(raw: bytes, what: str) -> bytes:
    """Gunzip ``raw``, turning gzip's several failure types into one ``IDXError``."""
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise IDXError(f"read_idx: {what} is not a valid gzip file (truncated or corrupt): {error}") from error


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file, raw or gzip-compressed (by its ``.gz`` suffix or its gzip magic bytes).

    Shapes: the array has the dimensions stored in the file; dtype as the file's type code.
    """
    path = Path(path)
    raw = path.read_bytes()
    if path.suffix == ".gz" or raw[:2] == b"\x1f\x8b":
        raw = decompress(raw, str(path))
    return parse_idx(raw, str(path))


def encode_idx(array: Any) -> bytes:
    """The IDX bytes of an array (uint8, int8, int16, int32, float32 or float64)."""
    array = np.asarray(array)
    code = _CODES.get(array.dtype.newbyteorder("="))
    if code is None or array.ndim == 0 or array.ndim > 255:
        raise IDXError(f"write_idx: IDX stores 1-255 dimensions of {sorted(map(str, _CODES))}, got {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(_DTYPES[code]).tobytes()


def write_idx(path: str | os.PathLike[str], array: Any) -> None:
    """Write an array as an IDX file, gzip-compressed when the name ends in ``.gz``."""
    path = Path(path)
    raw = encode_idx(array)
    path.write_bytes(gzip.compress(raw, mtime=0) if path.suffix == ".gz" else raw)
