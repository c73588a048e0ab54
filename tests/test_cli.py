"""The ``autobp`` command: the demo on tiny settings, the graph command, and usage errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from autobp import cli
from autobp.datasets import MNIST_FILES, write_idx


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = cli.main(argv)
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_demo_trains_checks_gradients_and_writes_its_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["demo", "--epochs", "2", "--limit", "2000", "--out", str(tmp_path / "out")], capsys)
    assert code == 0, out
    difference = float(re.search(r"gradient check: max \|autograd - reference\| = (\S+)", out).group(1))  # type: ignore[union-attr]
    assert difference <= 1e-10
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "loss_graph.dot",
        "loss_graph.svg",
        "training.png",
        "history.json",
    }
    assert (tmp_path / "out" / "training.png").read_bytes()[:4] == b"\x89PNG"
    source = (tmp_path / "out" / "loss_graph.dot").read_text()
    assert all(f"<B>{name}</B>" in source for name in ["w1", "b1", "z1", "a1", "w2", "z2", "a2", "cost"])
    assert "rankdir=TB" in source  # a chain drawn top to bottom stays readable in a narrow window
    history = json.loads((tmp_path / "out" / "history.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2] and history[1]["total"] == 2000  # as the console counts
    final = float(re.search(r"final test accuracy: ([\d.]+)%", out).group(1))  # type: ignore[union-attr]
    assert final == pytest.approx(100 * history[-1]["correct"] / 2000, abs=0.005)
    assert final > 25.0  # chance is 10% (about 200 of 2000 right): two short epochs already beat it far
    assert re.findall(r"epoch (\d)/2: training cost", out) == ["1", "2"]


def test_demo_reads_mnist_from_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "mnist").mkdir()
    for field, name in MNIST_FILES.items():
        n = 40 if field.startswith("train") else 20
        if field.endswith("images"):
            array = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        else:
            array = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(tmp_path / "mnist" / name, array)
    code, out, _ = run(
        ["demo", "--data", str(tmp_path / "mnist"), "--epochs", "1", "--out", str(tmp_path / "o")], capsys
    )
    assert code == 0 and "training [784, 30, 10] on 40 images" in out and "testing on 20" in out


def test_graph_without_dot_writes_the_source_and_says_how_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli.shutil, "which", lambda name: None)
    code, out, _ = run(["graph", "--sizes", "4,3,2", "--out", str(tmp_path)], capsys)
    assert code == 0
    assert [p.name for p in tmp_path.iterdir()] == ["loss_graph.dot"]
    assert "apt install graphviz" in out and "dot -Tsvg" in out
    source = (tmp_path / "loss_graph.dot").read_text()
    assert all(name in source for name in ["w2", "b1", "z2", "a1", "sigmoid", "matmul", "float64[3, 4]"])


def test_python_m_autobp_graph_renders_a_picture(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "autobp",
            "graph",
            "--sizes",
            "5,3,2",
            "--batch",
            "2",
            "--format",
            "png",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "loss_graph.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "loss_graph.dot").exists()


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["demo", "--epochs", "-1"], "--epochs"),
        (["demo", "--eta", "fast"], "--eta"),
        # a learning rate that is not a positive finite number trained on to weights of nan (inf,
        # 1e400, which Python reads as inf), and a negative seed ended in numpy's traceback
        (["demo", "--eta", "inf"], "--eta"),
        (["demo", "--eta", "1e400"], "--eta"),
        (["demo", "--eta", "nan"], "--eta"),
        (["demo", "--eta", "0"], "--eta"),
        (["demo", "--eta", "-0.5"], "--eta"),
        (["demo", "--epochs", "0"], "--epochs"),
        (["demo", "--epochs", "2.5"], "--epochs"),
        (["demo", "--limit", "0"], "--limit"),
        (["demo", "--seed", "-1"], "--seed"),
        (["graph", "--seed", "-1"], "--seed"),
        (["graph", "--batch", "-3"], "--batch"),
        (["explain", "--eta", "inf"], "--eta"),
        (["explain", "--seed", "-1"], "--seed"),
        (["demo", "--batch", "0"], "--batch"),
        (["demo", "--sizes", "784,x,10"], "--sizes"),
        (["demo", "--sizes", "100,10"], "--sizes"),
        (["demo", "--bogus"], "--bogus"),
        (["graph", "--format", "gif"], "--format"),
        ([], "demo,graph"),
    ],
)
def test_bad_flags_give_a_usage_error_naming_the_flag(
    argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(argv, capsys)
    assert code == 2
    assert "usage:" in err and flag in err
    if flag in ("--eta", "--epochs", "--batch", "--limit", "--seed"):  # the flag, the value, what is wanted
        assert f"error: argument {flag}: expected a " in err and f"got {argv[2]!r}" in err


def test_layer_names_follow_the_network_from_input_to_output() -> None:
    import autobp as ab
    from autobp.models import Network

    net = Network([4, 3, 3, 2], rng=0)
    x = ab.tensor(np.random.default_rng(0).random((4, 5)))
    names = cli.layer_names(net.cost(x, np.zeros((2, 5))))
    assert sorted(names) == ["a1", "a2", "a3", "z1", "z2", "z3"]
    a = x.data
    for layer, (w, b) in enumerate(zip(net.weights, net.biases, strict=True), start=1):
        z = w.data @ a + b.data  # the slow obvious forward pass, layer by layer
        a = 1 / (1 + np.exp(-z))
        np.testing.assert_allclose(names[f"z{layer}"].data, z, rtol=1e-14)
        np.testing.assert_allclose(names[f"a{layer}"].data, a, rtol=1e-14)


def test_one_epoch_is_singular_and_the_plot_has_whole_epoch_ticks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["demo", "--epochs", "1", "--limit", "100", "--out", str(tmp_path)], capsys)
    assert code == 0 and "after 1 epoch (" in out and "1 epochs" not in out
    figure = cli._plot([{"epoch": 1, "correct": 5, "total": 10, "loss": 0.5}], tmp_path / "one.png")
    ticks = [list(axes.get_xticks()) for axes in figure.axes]
    assert ticks == [[1], [1]]  # whole epochs, not 0.96 ... 1.04


@pytest.mark.parametrize("extra", [[], ["--download"]])
def test_missing_data_is_one_line_naming_the_flag(
    extra: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str, timeout: float) -> bytes:
        raise OSError("Name or service not known")

    monkeypatch.setattr("autobp.datasets.mnist._fetch", offline)
    code, out, err = run(["demo", "--data", str(tmp_path / "none"), *extra, "--out", str(tmp_path / "o")], capsys)
    assert code != 0 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("autobp demo: --d") and "download=True" not in err
    if extra:
        assert "--download could not fetch" in err and "Name or service not known" in err
    else:
        assert "--data" in err and "add --download" in err and "train-images-idx3-ubyte.gz" in err


def test_cli_errors_exit_non_zero_without_a_traceback_in_a_real_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "autobp", "demo", "--data", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "--download" in result.stderr


def test_download_without_data_says_where_files_would_go(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["demo", "--download"], capsys)
    assert code == 1
    assert err.strip() == "autobp demo: --download needs --data DIR, the directory to put the MNIST files in"


@pytest.mark.parametrize("command", ["demo", "graph"])
def test_every_flag_says_its_default(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0
    options = re.split(r"\n  (?=-)", out.split("options:", 1)[1])[1:]
    assert len(options) >= 5
    for option in options:
        assert option.startswith("-h, --help") or "default" in option, option


@pytest.mark.parametrize("command", ["graph", "demo"])
def test_running_out_of_memory_is_one_line_naming_the_flags(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A mini-batch (graph) or a layer (demo) of 10^15 floats: more bytes than any machine's address
    # space, so numpy's allocation fails at once wherever this runs (overcommit or not).
    flags = ["--batch", str(10**15)] if command == "graph" else ["--sizes", f"784,{10**15},10", "--limit", "10"]
    code, _, err = run([command, *flags, "--out", str(tmp_path)], capsys)
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"autobp {command}: out of memory: ") and "--batch or --sizes" in err
