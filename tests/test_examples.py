"""Run each example end to end on tiny settings, so that the documented commands stay true."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

import autobp as ab
from autobp.datasets import MNIST_FILES, write_idx

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(script: str, *args: str) -> str:
    # One BLAS thread: small matrices on a shared machine are much faster without thread contention.
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def final_accuracy(output: str) -> float:
    match = re.search(r"test accuracy: ([\d.]+)%", output)
    assert match, output
    return float(match.group(1))


def test_mlp_mnist_learns_on_the_bundled_subset(tmp_path: Path) -> None:
    output = run("mlp_mnist.py", "--epochs", "2", "--limit", "1000", "--save", str(tmp_path / "mlp.npz"))
    assert final_accuracy(output) > 50.0  # chance is 10%
    state = ab.load(tmp_path / "mlp.npz")["model"]
    assert list(state) == ["1.weight", "1.bias", "3.weight", "3.bias", "5.weight", "5.bias"]


def test_cnn_mnist_runs_on_the_bundled_subset() -> None:
    output = run("cnn_mnist.py", "--epochs", "1", "--limit", "200", "--channels", "4")
    assert "Conv2d(1, 4, kernel_size=(3, 3)" in output and "MaxPool2d" in output
    assert 0.0 <= final_accuracy(output) <= 100.0
    loss = float(re.search(r"train loss ([\d.]+)", output).group(1))  # type: ignore[union-attr]
    assert np.isfinite(loss)


def test_examples_read_mnist_idx_files_with_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (64, 28, 28), dtype=np.uint8),
        "train_labels": rng.integers(0, 10, 64, dtype=np.uint8),
        "test_images": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "test_labels": rng.integers(0, 10, 20, dtype=np.uint8),
    }
    for field, name in MNIST_FILES.items():
        write_idx(tmp_path / name, arrays[field])
    for script in ("mlp_mnist.py", "cnn_mnist.py"):
        output = run(script, "--data", str(tmp_path), "--epochs", "1", "--batch-size", "32")
        assert "epoch 1:" in output and 0.0 <= final_accuracy(output) <= 100.0


def test_custom_op_registers_and_gradchecks() -> None:
    output = run("custom_op.py", "--size", "4")
    assert "registered: <op log_cosh>" in output
    assert "matches log(cosh(x)): True" in output
    assert "gradcheck: True" in output and "gradgradcheck: True" in output
    center = float(re.search(r"robust center: ([-\d.]+)", output).group(1))  # type: ignore[union-attr]
    assert abs(center - 2.0) < 0.2  # the data sit at 2 with one outlier at 100


def test_hessian_example_converges_quadratically() -> None:
    output = run("hessian.py", "--n", "50", "--dim", "3", "--steps", "5")
    difference = float(re.search(r"max difference ([\d.e+-]+)", output).group(1))  # type: ignore[union-attr]
    assert difference < 1e-10
    norms = [float(v) for v in re.findall(r"\|grad\| ([\d.e+-]+)", output)]
    assert len(norms) == 5 and norms[-1] < 1e-10 < norms[0]


SCRIPTS = ["mlp_mnist.py", "cnn_mnist.py", "reproduce_nielsen.py", "custom_op.py", "hessian.py"]
MNIST_SCRIPTS = SCRIPTS[:3]


def test_every_example_is_listed_here() -> None:
    assert sorted(SCRIPTS) == sorted(p.name for p in EXAMPLES.glob("*.py") if p.name != "mnist_common.py")


def test_every_flag_of_every_example_says_its_default() -> None:
    for script in SCRIPTS:
        text = run(script, "--help")
        # Each option's help starts on a line "  --flag ..." and runs until the next option.
        options = re.split(r"\n  (?=-)", text.split("options:", 1)[1])[1:]
        assert len(options) >= 3, text
        for option in options:
            if option.startswith("-h, --help"):
                continue
            assert "default" in " ".join(option.split()), f"{script}: {option}"
        if script in MNIST_SCRIPTS:
            assert "--data DIR" in text and "--download" in text and "bundled" in text


def test_mnist_examples_report_missing_data_in_one_line_naming_the_flag(tmp_path: Path) -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    for script in MNIST_SCRIPTS:
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / script), "--data", str(tmp_path / "nowhere")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"{script}: --data ") and "add --download" in line and "bundled" in line


def test_mnist_examples_refuse_numbers_they_cannot_take_naming_the_flag() -> None:
    # --limit -5 trained on all but the last 5 images, --lr inf to weights of nan, both with no
    # error; --batch-size 0 and --seed -1 ended in a traceback.
    cases = [
        ("mlp_mnist.py", "--limit", "-5"),
        ("mlp_mnist.py", "--lr", "inf"),
        ("cnn_mnist.py", "--batch-size", "0"),
        ("cnn_mnist.py", "--epochs", "0"),
        ("mlp_mnist.py", "--seed", "-1"),
        ("reproduce_nielsen.py", "--eta", "1e400"),
        ("reproduce_nielsen.py", "--batch", "0"),
        ("reproduce_nielsen.py", "--seeds", "-1"),
    ]
    for script, flag, value in cases:
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / script), flag, value], capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert f"error: argument {flag}: expected a " in result.stderr and f"got {value!r}" in result.stderr


def test_reproduction_runs_on_the_bundled_subset_and_plots_every_seed(tmp_path: Path) -> None:
    output = run(
        "reproduce_nielsen.py", "--sizes", "784,8,10", "--seeds", "0", "1", "--epochs", "2", "--out", str(tmp_path)
    )
    assert "the MNIST subset bundled with autobp: training on 9,000 images, validating on 1,000" in output
    # Without a terminal there is no bar: one line per epoch says how far it got.
    assert re.findall(r"seed=(\d) epoch (\d)/2: test accuracy", output) == [
        ("0", "1"),
        ("0", "2"),
        ("1", "1"),
        ("1", "2"),
    ]
    assert (tmp_path / "test_accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "plot: wrote" in output and "SUMMARY [784, 8, 10] init=book engine=autobp: best of 2 seeds" in output
