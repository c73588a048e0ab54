"""Run the benchmark suite: a table on stdout, the raw timings as JSON.

    python -m benchmarks                 # full sizes, peers (torch, mygrad) when installed
    python -m benchmarks --quick         # smaller W1 and W4, a few seconds per workload
    python -m benchmarks --only W2,W4 --repeats 7 --json out.json --markdown

Every workload runs its numpy and autobp versions (and the peers') in one process: each result is
checked against numpy's first, then the calls are timed interleaved and the medians compared,
with the objects made before the timing (imports, inputs) out of the garbage collector's reach
(``--unfrozen`` leaves them in: benchmarks/harness.py says what that costs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks import torch_func_checks, workloads
from benchmarks.harness import PEERS, Result, available_peers, measure, steady_allocator

DEFAULT_JSON = Path(__file__).resolve().parent / "results.json"


def machine(peers: Sequence[str] = ()) -> dict[str, Any]:
    """What the numbers depend on: CPU, Python, numpy and its BLAS, the peers' versions, BLAS settings."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
        "env": {k: v for k, v in os.environ.items() if k.startswith(("OPENBLAS", "OMP_", "MKL_"))},
    }
    import autobp

    info["autobp"] = autobp.__version__
    info["commit"] = _commit()
    for name in peers:
        module = __import__(name)
        info[name] = getattr(module, "__version__", "?")
    if "torch" in info:
        import torch

        info["torch_threads"] = torch.get_num_threads()
    return info


def _commit() -> str:
    """The repository's HEAD, with ``+dirty`` when the work tree differs from it; '' outside git."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        )
    except OSError:
        return ""
    if head.returncode != 0:
        return ""
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _blas() -> str:
    try:
        config: Any = np.show_config(mode="dicts")
        blas = config["Build Dependencies"]["blas"]
        return f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # numpy < 2 or an unusual build: the version alone is still worth printing
        return "unknown"


def _format_time(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def table(results: Sequence[Result], markdown: bool = False) -> str:
    """One row per workload and implementation: median, ratio to numpy, per-op time, peak memory per op."""
    header = ["workload", "size", "impl", "median", "x numpy", "µs/op", "peak B/op"]
    rows = [header]
    for r in results:
        size = ",".join(f"{k}={v}" for k, v in r.size.items())
        per_op = "" if r.per_op_us is None else f"{r.per_op_us:.2f}"
        memory = "" if r.peak_bytes_per_op is None else f"{r.peak_bytes_per_op:.0f}"
        rows.append([r.workload, size, r.impl, _format_time(r.median), f"{r.ratio:.2f}", per_op, memory])
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        lines.insert(1, "|" + "|".join(" --- " for _ in header) + "|")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--quick", action="store_const", const="quick", dest="scale", help="smaller sizes")
    scale.add_argument("--tiny", action="store_const", const="tiny", dest="scale", help="smoke-test sizes")
    parser.add_argument("--only", default="", help="comma-separated workloads, e.g. W2,W4 (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per implementation (default 5)")
    parser.add_argument(
        "--min-seconds", type=float, default=1.0, help="repeat short workloads until numpy has run this long (max 100)"
    )
    parser.add_argument("--peers", default=",".join(PEERS), help="peers to add when installed ('' for none)")
    parser.add_argument("--torch-threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--json", default=str(DEFAULT_JSON), help="where to write the results ('' to skip)")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    parser.add_argument("--data", default="", help="a folder with MNIST for W1 (default: random data)")
    parser.add_argument("--verbose", action="store_true", help="log each repeat on stderr")
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave malloc as it is (default: glibc keeps freed memory, so no call pays another's page faults)",
    )
    parser.add_argument(
        "--unfrozen",
        action="store_true",
        help="let the collector walk the whole process while timing (default: objects made before the timing "
        "are frozen, so no implementation pays for what another imported)",
    )
    parser.set_defaults(scale="full")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected workloads and report; returns the exit status."""
    args = parse_args(argv)
    known = {w.key: w for w in workloads()}
    selected = [key.strip().upper() for key in args.only.split(",") if key.strip()] or list(known)
    unknown = [key for key in selected if key not in known]
    if unknown:
        print(f"benchmarks: unknown workload(s) {unknown}; choose from {sorted(known)}", file=sys.stderr)
        return 2
    peers = available_peers([p.strip() for p in args.peers.split(",") if p.strip()])
    if "torch" in peers:
        import torch

        torch.set_num_threads(args.torch_threads)
    if args.data:
        from benchmarks import w1_network

        w1_network.DATA_DIR[:] = [args.data]
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None
    info = machine(peers)  # before measuring: the commit is the code the run imported
    info["allocator"] = "the platform's default (--default-allocator)" if args.default_allocator else steady_allocator()
    info["collector"] = (
        "walks the whole process (--unfrozen)"
        if args.unfrozen
        else "objects made before the timing frozen (gc.freeze: benchmarks/harness.py)"
    )
    # Forward mode against torch.func, as every workload's result is checked before it is timed.
    checked = torch_func_checks.summary() if "torch" in peers else None
    results: list[Result] = []
    for key in selected:
        results += measure(known[key], args.scale, peers, args.repeats, log, args.min_seconds, freeze=not args.unfrozen)
    print(f"# {info['cpu']} ({info['cpus']} CPUs), Python {info['python']}, numpy {info['numpy']} ({info['blas']})")
    print(f"# autobp {info['autobp']} at {info['commit'] or 'an unknown commit'}")
    print(f"# peers: {', '.join(f'{p} {info[p]}' for p in peers) or 'none installed'}; scale {args.scale}")
    print(f"# allocator: {info['allocator']}")
    print(f"# collector: {info['collector']}")
    if checked is not None:
        print(f"# {checked}")
    print(table(results, markdown=args.markdown))
    if args.json:
        settings = {"scale": args.scale, "repeats": args.repeats, "min_seconds": args.min_seconds, "argv": sys.argv[1:]}
        report = {"machine": info, "settings": settings, "results": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"# wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
