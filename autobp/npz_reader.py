"""Reading an ``.npz`` archive without trusting it: every size, count and CRC is checked.

``autobp.io.load`` reads through these functions; each raises ``LoadError`` on a damaged, cut
or foreign file before it allocates what the file merely declares.
"""

from __future__ import annotations

import math
import struct
import zipfile
import zlib
from typing import Any, Literal

import numpy as np

__all__ = ["LoadError"]


class LoadError(ValueError):
    """``ab.load`` cannot read the file as one written by ``ab.save``: damaged, truncated or foreign.

    Every such case (an empty or cut file, a flipped byte, a header that does not match its data,
    entries that contradict each other, pickled content) raises this one type, with the file and
    the entry in the message. It is a ``ValueError``, as ``load``'s errors were before it existed.
    """


# A deflate stream expands at most 1032-fold: a member declaring more was not written by zlib.
_MAX_DEFLATE_RATIO = 1032
# What zipfile and numpy's header reader raise on damaged bytes (a flipped flag bit reads as an
# encrypted member: RuntimeError; a bad offset as OSError); load turns each into a LoadError.
DAMAGE = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    struct.error,
    zlib.error,
    NotImplementedError,
    RuntimeError,
    OSError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    OverflowError,
)


def declared_entries(file: Any, file_size: int, where: str) -> int | None:
    """The entry count the end-of-archive record declares; None where zip64 keeps it elsewhere."""
    tail_size = min(file_size, 22 + 0xFFFF)  # the record (22 bytes) and at most a 64 KiB comment
    file.seek(file_size - tail_size)
    tail = file.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise LoadError(f"load: {where} has no end-of-archive record: cut short or damaged")
    (count,) = struct.unpack_from("<H", tail, at + 10)
    return None if count == 0xFFFF else int(count)


def member_infos(archive: zipfile.ZipFile, where: str, declared: int | None) -> list[zipfile.ZipInfo]:
    infos = archive.infolist()
    # zipfile reads the directory by its byte size and never counts: a damaged length field in one
    # record swallows the records after it, and those entries would silently go missing.
    if declared is not None and declared != len(infos):
        raise LoadError(f"load: {where} declares {declared} entries but its directory lists {len(infos)}: damaged")
    seen: set[str] = set()
    for info in infos:
        name = info.filename
        if name in seen:
            raise LoadError(f"load: {where}: entry {name!r} appears more than once")
        seen.add(name)
        if not name.endswith(".npy"):
            raise LoadError(f"load: {where}: member {name!r} is not an .npy array; not a file written by ab.save")
    return infos


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, where: str, file_size: int) -> np.ndarray:
    """The array in one member, its sizes checked against the file before anything is allocated."""
    entry = f"load: {where}: entry {info.filename[:-4]!r}"
    stored = info.compress_type == zipfile.ZIP_STORED
    if not stored and info.compress_type != zipfile.ZIP_DEFLATED:
        raise LoadError(
            f"{entry} uses compression method {info.compress_type}; ab.save stores, np.savez_compressed deflates"
        )
    if (
        info.compress_size > file_size
        or (stored and info.file_size != info.compress_size)
        or info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 64
    ):
        raise LoadError(
            f"{entry} declares {info.file_size} bytes ({info.compress_size} in the archive) in a {file_size}-byte file"
        )
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise LoadError(f"{entry} is .npy format version {version}; ab.save writes 1.0 or 2.0")
        if dtype.hasobject:
            raise LoadError(f"{entry} holds a pickled object array; refused (never unpickled)")
        if dtype.shape:  # a sub-array dtype: np.save never writes one
            raise LoadError(f"{entry} declares the sub-array dtype {dtype}")
        count = math.prod(shape)
        data_size = info.file_size - member.tell()
        if count * dtype.itemsize != data_size:
            # refused before allocating: a header cannot make load reserve more than the file holds
            raise LoadError(
                f"{entry} holds {data_size} bytes of data, but its header declares {dtype}{list(shape)} "
                f"({count * dtype.itemsize} bytes)"
            )
        order: Literal["C", "F"] = "F" if fortran_order else "C"
        # data_size is bounded by the archive's real size (checked above): this allocates no
        # more than the file holds. Chunks keep each copy in cache, as np.load's reader does.
        array = np.empty(shape, dtype, order=order)
        # the array's bytes in file order: a view (reshape in the array's own order copies nothing)
        target = array.reshape(-1, order="A").view(np.uint8) if data_size else np.empty(0, np.uint8)
        filled = 0
        while filled < data_size:
            chunk = member.read(min(data_size - filled, 1 << 18))
            if not chunk:
                raise LoadError(f"{entry} ends after {filled} of its {data_size} bytes of data")
            target[filled : filled + len(chunk)] = np.frombuffer(chunk, np.uint8)
            filled += len(chunk)
        if member.read(1):  # also runs zipfile's CRC check of the whole member
            raise LoadError(f"{entry} holds more bytes than its header declares")
    return array


def refuse_foreign(where: str, head: bytes) -> None:
    if not head:
        raise LoadError(f"load: {where} is empty (0 bytes), not a file written by ab.save")
    if head.startswith(b"\x93NUMPY"):
        raise LoadError(f"load: {where} is a single .npy array, not a file written by ab.save")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise LoadError(
            f"load: {where} is not an .npz file written by ab.save (it starts with {head!r}); numpy would "
            "have to unpickle it, which autobp never does"
        )
