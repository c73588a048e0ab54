"""Smoke test of the benchmark suite: every workload at tiny sizes, autobp checked against numpy.

No timing is asserted: the machine is shared and timings are noisy. What must hold is that each
autobp version computes what its hand-written numpy version computes (the harness checks shape,
dtype and values before timing), and that the entry points run and write their report.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # benchmarks/ is a top-level package beside autobp/, not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import overhead, run, seed_bar, w4_bound, w5_parts, workloads  # noqa: E402
from benchmarks.harness import Workload, check_close, measure, peak_bytes  # noqa: E402

WORKLOADS = workloads()


def test_suite_has_the_five_workloads() -> None:
    assert [w.key for w in WORKLOADS] == ["W1", "W2", "W3", "W4", "W5"]


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.key)
def test_autobp_matches_numpy_at_tiny_size(workload: Workload) -> None:
    results = measure(workload, "tiny", peers=[], repeats=1, min_seconds=0.0)
    assert [r.impl for r in results][:2] == ["numpy", "autobp"]
    assert not {r.impl for r in results} & {"torch", "mygrad"}
    for result in results:
        assert len(result.times) == 1 and result.median > 0 and np.isfinite(result.ratio)
    assert results[0].ratio == 1.0
    if workload.ops is not None:
        assert all(r.per_op_us is not None and r.per_op_us > 0 for r in results)
    if workload.memory:
        assert results[1].peak_bytes_per_op is not None and results[1].peak_bytes_per_op > 0


@pytest.mark.parametrize("workload", WORKLOADS, ids=lambda w: w.key)
def test_results_are_deterministic_and_nontrivial(workload: Workload) -> None:
    size = workload.sizes["tiny"]
    first, second = workload.make("autobp", **size)(), workload.make("autobp", **size)()
    check_close(workload, "autobp", second, first)
    # A check against a perturbed copy must fail, or the smoke test above could not catch a bug.
    perturbed = [np.asarray(a) * 1.01 + 0.01 for a in (first if isinstance(first, list) else [first])]
    with pytest.raises(AssertionError, match="differs from numpy"):
        check_close(workload, "autobp", perturbed, first)


def test_check_close_rejects_dtype_promotion() -> None:
    w3 = next(w for w in WORKLOADS if w.key == "W3")
    expected = [np.ones(3, dtype=np.float32)]
    with pytest.raises(AssertionError, match="float64"):
        check_close(w3, "autobp", [np.ones(3)], expected)


def test_peak_bytes_sees_numpy_allocations() -> None:
    assert peak_bytes(lambda: np.ones(100_000)) >= 800_000


def test_run_main_prints_table_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    argv = ["--tiny", "--only", "w2,W4", "--repeats", "2", "--min-seconds", "0", "--peers", "", "--json", str(out)]
    assert run.main(argv) == 0
    printed = capsys.readouterr().out
    assert "W2" in printed and "W4" in printed and "autobp" in printed
    report = json.loads(out.read_text())
    assert report["machine"]["numpy"] == np.__version__
    rows = {(r["workload"], r["impl"]): r for r in report["results"]}
    assert set(rows) == {("W2", "numpy"), ("W2", "autobp"), ("W4", "numpy"), ("W4", "autobp"), ("W4", "numpy-array")}
    assert len(rows["W2", "autobp"]["times"]) == 2


def test_run_main_markdown_and_unknown_workload(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--tiny", "--only", "W5", "--repeats", "1", "--min-seconds", "0", "--peers", "", "--json", "", "--markdown"]
    assert run.main(argv) == 0
    assert "| W5 |" in capsys.readouterr().out
    assert run.main(["--only", "W9", "--json", ""]) == 2


# A training step's pattern: twenty 64 KiB arrays made and freed, fifty times, counting the page
# faults the process takes meanwhile (each fault: the kernel zeroing a page handed out again).
_CYCLES = """
import resource, sys
import numpy as np
from benchmarks.harness import steady_allocator
if sys.argv[1] == "pinned":
    assert steady_allocator().startswith("glibc malloc pinned"), steady_allocator()
def cycle():
    arrays = [np.ones((128, 64)) for _ in range(20)]
    del arrays
cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    cycle()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux only")
def test_the_steady_allocator_takes_no_page_faults_for_memory_it_reuses() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["PYTHONPATH"] = str(ROOT)

    def faults(how: str) -> int:
        done = subprocess.run([sys.executable, "-c", _CYCLES, how], env=env, capture_output=True, text=True, check=True)
        return int(done.stdout.split()[-1])

    assert faults("default") > 1000  # glibc trims its heap after each cycle and faults it back in
    assert faults("pinned") < 50


def test_run_main_reports_the_allocator(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--tiny", "--only", "W2", "--repeats", "1", "--min-seconds", "0", "--peers", "", "--json", ""]
    assert run.main([*argv, "--default-allocator"]) == 0
    assert "# allocator: the platform's default (--default-allocator)" in capsys.readouterr().out


@pytest.mark.parametrize(("flag", "line"), [([], "objects made before the timing frozen"), (["--unfrozen"], "walks")])
def test_run_main_reports_the_collector(flag: list[str], line: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--tiny", "--only", "W2", "--repeats", "1", "--min-seconds", "0", "--peers", "", "--json", ""]
    assert run.main([*argv, *flag]) == 0
    assert f"# collector: {line}" in capsys.readouterr().out


def test_overhead_script_rows() -> None:
    rows = overhead.overhead(ops=8, elements=3, repeats=1)
    assert rows[0][0] == "forward + backward"
    assert all(autobp_us > 0 and numpy_us > 0 for _, autobp_us, numpy_us in rows)


def test_the_w4_bound_computes_the_chain_it_times(capsys: pytest.CaptureFixture[str]) -> None:
    w4_bound.main(ops=300, repeats=1)  # (main checks both recorders' value and gradient against numpy's)
    rows = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in rows[1:]] == ["floor", "minimal", "autobp", "no-gc", "minimal", "autobp"]
    assert rows[1].endswith("1.00x floor")


def test_the_w4_bound_notices_a_recorder_that_computes_another_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w4_bound, "SHIFT", 2e-9)  # the minimal recorder adds another constant
    with pytest.raises(AssertionError):
        w4_bound.main(ops=300, repeats=1)


def test_w5_parts_times_a_replay_that_gives_the_r_operators_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    medians = w5_parts.parts(batch=4, repeats=3)  # (parts compares the call and the replay with numpy first)
    assert list(medians) == ["numpy", "taped", "replay"] and all(m > 0 for m in medians.values())
    wrong = w5_parts.numpy_hvp
    monkeypatch.setattr(w5_parts, "numpy_hvp", lambda *a: [2.0 * p for p in wrong(*a)])
    with pytest.raises(AssertionError):
        w5_parts.parts(batch=4, repeats=1)


def test_seed_bar_trains_both_sides_alike(capsys: pytest.CaptureFixture[str]) -> None:
    result = seed_bar.measure(images=40, epochs=2, repeats=1)
    assert result["images"] == 40 and set(result["times"]) == {"numpy", "autobp"}
    assert result["difference"] <= 1e-10 and np.isfinite(result["ratio"]) and result["ratio"] > 0
    assert seed_bar.main(["--images", "40", "--epochs", "1", "--repeats", "1"]) == 0
    assert "autobp / numpy:" in capsys.readouterr().out


def test_seed_bar_notices_a_run_that_trained_differently(monkeypatch: pytest.MonkeyPatch) -> None:
    def lazy_run(weights: list[np.ndarray], biases: list[np.ndarray], *rest: object) -> list[np.ndarray]:
        return [*weights, *biases]  # returns the initial weights: trained nothing

    monkeypatch.setitem(seed_bar.RUNS, "autobp", lazy_run)
    assert seed_bar.measure(images=40, epochs=1, repeats=1)["difference"] > 1e-3
    assert seed_bar.main(["--images", "40", "--epochs", "1", "--repeats", "1"]) == 1


def test_instruction_count_workloads_compute_what_they_claim() -> None:
    from benchmarks import instructions

    # The eager and taped steps train the same network to the same weights, bit for bit.
    np.testing.assert_array_equal(instructions.run("eager", 3), instructions.run("taped", 3))
    assert not np.array_equal(instructions.run("eager", 3), instructions.run("eager", 0))
    # The chain's gradient, against the derivative carried back by hand.
    x = np.random.default_rng(0).uniform(-1.0, 1.0, 10)
    grad = np.ones(10)
    saved = []
    for i in range(50):
        saved.append(x)
        x = [np.sin, lambda t: t * 0.9, lambda t: t + 0.1, np.tanh][i % 4](x)
    for i in reversed(range(50)):
        before = saved.pop()
        grad = grad * [np.cos(before), 0.9, 1.0, 1.0 - np.tanh(before) ** 2][i % 4]
    np.testing.assert_allclose(instructions.run("w2", 1), grad, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown kind"):
        instructions.run("w9", 1)
    # W4's chain: d/dx of alternating (* c, + s) over 1,000 ops is c ** 500.
    np.testing.assert_allclose(instructions.run("w4", 1), 1.0000001**500, rtol=1e-12)
    # W5's rows all give the R-operator's H v.
    from benchmarks.w5_hvp import _setup, numpy_hvp

    want = np.concatenate([h.ravel() for h in numpy_hvp(*_setup(128))])
    for kind in instructions.W5_KINDS:
        np.testing.assert_allclose(instructions.run(kind, 1), want, rtol=1e-9, atol=1e-12)


def test_opcode_counts_are_exact_and_name_the_hot_functions(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks import opcodes

    first, second = opcodes.count("w2", 1), opcodes.count("w2", 1)
    assert first == second  # the same step runs the same opcodes: no noise to average out
    assert first[("ops/public_function.py", "binary")] > 0 and first[("engine/__init__.py", "_walk")] > 0
    assert sum(opcodes.count("w2", 3).values()) == 3 * sum(first.values())  # per step, setup left out
    opcodes.main(["w2", "1", "3"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("w2: ") and len(lines) == 4


# -- forward mode against torch.func (the peer check; torch is installed in CI, not needed here) ----------
def test_forward_mode_agrees_with_torch_func() -> None:
    pytest.importorskip("torch")
    from benchmarks import torch_func_checks

    checks = torch_func_checks.run_all(seeds=(3,))
    expected = {(case.name, transform) for case in torch_func_checks.CASES for transform in case.transforms}
    assert {(name, transform) for name, transform, _ in checks} == expected
    assert {t for _, t, _ in checks} == set(torch_func_checks.TRANSFORMS)  # every transform somewhere
    assert all(worst < 1e-4 for _, _, worst in checks)


def test_the_torch_func_check_rejects_wrong_values_shapes_and_dtypes() -> None:
    pytest.importorskip("torch")
    import autobp as ab
    from benchmarks import torch_func_checks
    from benchmarks.torch_func_checks import CASES, autobp_result, check

    scalar = CASES[2]  # sum(exp(a) * b ** 3) + sum(sin(a * b)): every transform

    def scaled(case: Any, transform: str, inputs: Any, direction: Any) -> Any:
        return tuple(h * (1 + 1e-6) for h in autobp_result(case, transform, inputs, direction))

    def first_only(case: Any, transform: str, inputs: Any, direction: Any) -> Any:
        return autobp_result(case, transform, inputs, direction)[:1]

    def single(case: Any, transform: str, inputs: Any, direction: Any) -> Any:
        return tuple(ab.tensor(h.data.astype(np.float32)) for h in autobp_result(case, transform, inputs, direction))

    assert check(scalar, "hvp") < 1e-12
    with pytest.raises(AssertionError, match="differ by up to"):
        check(scalar, "hvp", ours=scaled)
    with pytest.raises(AssertionError, match="shapes"):
        check(scalar, "hvp", ours=first_only)
    with pytest.raises(AssertionError, match="float32 for float64 inputs"):
        check(scalar, "hvp", ours=single)
    with pytest.raises(ValueError, match="unknown transform"):
        torch_func_checks.autobp_result(scalar, "jacrev", [np.ones(3)] * 2, [np.ones(3)] * 2)


def test_run_main_reports_the_torch_func_checks_when_torch_is_a_peer(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    argv = ["--tiny", "--only", "W2", "--repeats", "1", "--min-seconds", "0", "--peers", "torch", "--json", ""]
    assert run.main(argv) == 0
    assert "# torch.func checks: 17 agree" in capsys.readouterr().out


def _freeze_probe(seen: list[int], fail_after: int | None = None) -> Workload:
    """A workload whose runs note how many objects the collector has frozen when they are called."""

    def make(impl: str, n: int) -> Any:
        def run() -> np.ndarray:
            seen.append(gc.get_freeze_count())
            if fail_after is not None and len(seen) > fail_after:
                raise RuntimeError("probe")
            return np.arange(n, dtype=float)

        return run

    return Workload("WX", "probe", {"tiny": {"n": 3}}, make, impls=("numpy", "autobp"))


@pytest.mark.parametrize("freeze", [True, False])
def test_the_timing_freezes_the_process_objects_and_puts_them_back(freeze: bool) -> None:
    seen: list[int] = []
    measure(_freeze_probe(seen), "tiny", peers=[], repeats=2, min_seconds=0.0, freeze=freeze)
    checked, timed = seen[:2], seen[2:]
    assert len(timed) == 4 and checked == [0, 0]  # the checked calls run before anything is frozen
    assert all(count > 1000 for count in timed) if freeze else timed == [0, 0, 0, 0]
    assert gc.get_freeze_count() == 0


def test_a_failing_timed_call_leaves_nothing_frozen() -> None:
    with pytest.raises(RuntimeError, match="probe"):
        measure(_freeze_probe([], fail_after=3), "tiny", peers=[], repeats=2, min_seconds=0.0)
    assert gc.get_freeze_count() == 0
