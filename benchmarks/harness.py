"""Timing harness shared by the workloads: checked results, interleaved repeats, medians, ratios.

A workload module builds one zero-argument ``run`` callable per implementation (``numpy``,
``autobp`` and, when installed, ``torch`` and ``mygrad``). The harness calls every ``run`` once and
checks its result against the numpy one (this call is also the warm-up), then times the calls
interleaved, rotating the order each repeat so that drift in the machine's load hits every
implementation alike, and reports medians and ratios to numpy.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib.util
import statistics
import time
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "PEERS",
    "Result",
    "Workload",
    "available_peers",
    "check_close",
    "frozen",
    "interleaved_medians",
    "measure",
    "peak_bytes",
    "steady_allocator",
]

PEERS = ("torch", "mygrad")
Run = Callable[[], Any]


@dataclass(frozen=True)
class Workload:
    """One benchmark: how to build each implementation's ``run`` at a given size.

    Attributes:
        key: the short name, ``"W1"`` ... ``"W5"``.
        title: what is computed, for the table.
        sizes: keyword arguments of ``make`` for the scales ``"full"``, ``"quick"`` and ``"tiny"``.
        make: ``make(impl, **size) -> run``; ``run()`` does the timed work once and returns the
            result (arrays) that is checked against numpy's.
        impls: the implementations this workload has, ``"numpy"`` first (the baseline of every
            ratio); a peer runs only when installed and asked for.
        ops: ``ops(**size)``, the op count for a per-op time; None where per-op time means nothing.
        memory: whether to report tracemalloc's peak bytes per op (needs ``ops``).
        rtol, atol: tolerances of the result check, per dtype kind of the numpy result.
    """

    key: str
    title: str
    sizes: Mapping[str, Mapping[str, int]]
    make: Callable[..., Run]
    impls: tuple[str, ...] = ("numpy", "autobp", *PEERS)
    ops: Callable[..., int] | None = None
    memory: bool = False
    rtol: float = 1e-6
    atol: float = 1e-9
    rtol32: float = 1e-3
    atol32: float = 1e-5


@dataclass
class Result:
    """The timings of one implementation of one workload."""

    workload: str
    impl: str
    size: dict[str, int]
    times: list[float]
    median: float
    ratio: float = float("nan")
    per_op_us: float | None = None
    peak_bytes_per_op: float | None = None
    notes: list[str] = field(default_factory=list)


def available_peers(wanted: Sequence[str] = PEERS) -> list[str]:
    """The peer frameworks that are installed (the optional ``bench`` extra)."""
    return [name for name in wanted if importlib.util.find_spec(name) is not None]


def _arrays(result: Any) -> list[np.ndarray]:
    if isinstance(result, list | tuple):
        return [a for item in result for a in _arrays(item)]
    return [np.asarray(result)]


def check_close(workload: Workload, impl: str, result: Any, expected: Any) -> None:
    """Raise AssertionError unless ``result`` matches numpy's ``expected`` in shape, dtype and value."""
    got, want = _arrays(result), _arrays(expected)
    if len(got) != len(want):
        raise AssertionError(f"{workload.key} {impl}: {len(got)} result arrays, numpy gives {len(want)}")
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if a.shape != b.shape or a.dtype != b.dtype:
            raise AssertionError(
                f"{workload.key} {impl}: result {i} is {a.dtype}{list(a.shape)}, numpy gives {b.dtype}{list(b.shape)}"
            )
        single = b.dtype == np.float32
        rtol = workload.rtol32 if single else workload.rtol
        atol = workload.atol32 if single else workload.atol
        if not np.allclose(a, b, rtol=rtol, atol=atol):
            worst = float(np.max(np.abs(a - b)))
            raise AssertionError(f"{workload.key} {impl}: result {i} differs from numpy by up to {worst:.3g}")


def peak_bytes(run: Run) -> int:
    """tracemalloc's peak of Python and numpy allocations during one call (torch's own memory is not seen)."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        run()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


# glibc's mallopt parameters (malloc.h): what steady_allocator pins.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's largest on 64-bit systems; bigger arrays are still mapped


def steady_allocator() -> str:
    """Keep freed memory in the process for the rest of the run (glibc's malloc: no trimming of
    the heap, no mapping per array under 32 MiB); returns what the allocator does, for the report.

    By default glibc gives the top of its heap back to the system when more than 128 KiB there are
    free, and maps large arrays fresh each time. A call then pays page faults (the kernel zeroing
    each page again) for memory the implementation timed before it freed: W5's numpy baseline took
    660 µs a call when each call followed one of autobp's, 320 µs with the heap kept, so every
    ratio depended on the order of the rotation. Pinned, each implementation runs as in a
    training loop, on memory it reuses.
    """
    try:  # (the process's own symbols: the C library it runs on, whatever its file is called)
        mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    except OSError:
        mallopt = None
    if mallopt is None:
        return "the platform's default (no glibc mallopt)"
    if not (mallopt(_M_TRIM_THRESHOLD, 1 << 30) and mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)):
        return "the platform's default (mallopt refused)"
    return "glibc malloc pinned: no heap trimming, no mmap under 32 MiB (benchmarks/harness.py)"


@contextlib.contextmanager
def frozen(enabled: bool = True) -> Iterator[None]:
    """While active, every object the process holds now is out of the cycle collector's reach
    (``gc.freeze``; put back on exit): a collection walks only what was made since (``measure``
    says what walking the rest cost). ``enabled=False`` changes nothing."""
    if not enabled:
        yield
        return
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def interleaved_medians(runs: Mapping[str, Run], repeats: int, freeze: bool = True) -> dict[str, float]:
    """The median seconds of a call of each of ``runs``, called in turns ``repeats`` times (the
    order rotated each round), each call after a collection, the process's objects ``frozen``:
    the harness's way, for the scripts that time a few runs of their own."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    with frozen(freeze):
        for repeat in range(repeats):
            _time_round(runs, repeat, times)
    return {name: statistics.median(taken) for name, taken in times.items()}


def _time_round(runs: Mapping[str, Run], repeat: int, times: dict[str, list[float]]) -> None:
    """One call of each run, timed into ``times``, in an order rotated by ``repeat``: drift in the
    machine's load hits every implementation alike."""
    names = list(runs)
    for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
        times[name].append(_time_once(runs[name]))


def _time_once(run: Run) -> float:
    # Garbage left by the previous call is collected first so that no implementation pays for another's
    # (with the process's older objects frozen, see measure, this walks only what the calls left).
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def measure(
    workload: Workload,
    scale: str,
    peers: Sequence[str],
    repeats: int = 5,
    log: Callable[[str], None] | None = None,
    min_seconds: float = 1.0,
    max_repeats: int = 100,
    freeze: bool = True,
) -> list[Result]:
    """Check every implementation against numpy, then time them interleaved; one Result each.

    The first call of each implementation is the checked one and doubles as warm-up; timed calls
    follow, in an order rotated every repeat: at least ``repeats`` of them, and more (up to
    ``max_repeats``) while the fastest implementation has been timed for under ``min_seconds``, so
    that short workloads get medians of many calls on a noisy machine. Ratios are medians over
    numpy's median.

    With ``freeze`` (the default), every object the process holds once the checked calls are done
    (the imported modules, torch's 145,000 objects among them, and every implementation's inputs)
    is moved out of the collector's reach (``gc.freeze``) for the timing, and put back after. The
    collection before each call then walks only the garbage of the calls, and a full collection
    inside a call only the objects the calls made. Unfrozen, that collection walked the whole
    process, leaving each call to start on caches it had emptied (W5's numpy baseline 311 µs a
    call against 269, autobp's forward-over-reverse 679 against 534), and autobp's W4 graph paid
    for torch's objects at each full collection as it grew (about 0.45 µs per op): costs of what
    else the process imported, not of the implementation timed. ``freeze=False`` (``python -m
    benchmarks --unfrozen``) measures as before.
    """
    size = dict(workload.sizes[scale])
    names = [name for name in workload.impls if name not in PEERS or name in peers]
    runs = {name: workload.make(name, **size) for name in names}
    expected = runs["numpy"]()
    for name in names[1:]:
        check_close(workload, name, runs[name](), expected)
    times: dict[str, list[float]] = {name: [] for name in names}
    with frozen(freeze):
        repeat = 0
        while repeat < repeats or (repeat < max_repeats and min(sum(t) for t in times.values()) < min_seconds):
            _time_round(runs, repeat, times)
            if log is not None:
                log(f"{workload.key} repeat {repeat + 1}: " + ", ".join(f"{n} {times[n][-1]:.4g}s" for n in names))
            repeat += 1
    ops = workload.ops(**size) if workload.ops is not None else None
    results = []
    for name in names:
        median = statistics.median(times[name])
        result = Result(workload.key, name, size, times[name], median)
        result.ratio = median / statistics.median(times["numpy"])
        if ops:
            result.per_op_us = median / ops * 1e6
            if workload.memory and name in ("numpy", "autobp"):  # peers: time only
                result.peak_bytes_per_op = peak_bytes(workload.make(name, **size)) / ops
        results.append(result)
    return results
