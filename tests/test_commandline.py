"""autobp.commandline: the shared --data/--download flags, their one-line errors, and progress."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import pytest

from autobp.commandline import Progress, add_data_flags, load_data, plural
from autobp.datasets import MNIST_FILES, write_idx


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_data_flags(parser)
    return parser.parse_args(argv)


def test_no_data_flag_reads_the_bundled_subset() -> None:
    data, where = load_data(parse(), "prog")
    assert data.train_images.shape == (10000, 28, 28) and "bundled" in where


def test_data_directory_is_read(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for field, name in MNIST_FILES.items():
        shape = (7, 28, 28) if field.endswith("images") else (7,)
        write_idx(tmp_path / name, rng.integers(0, 10, shape, dtype=np.uint8))
    data, where = load_data(parse("--data", str(tmp_path)), "prog")
    assert data.test_labels.shape == (7,) and where == f"MNIST from {tmp_path}"


def test_corrupt_files_name_the_flag_in_one_line(tmp_path: Path) -> None:
    for name in MNIST_FILES.values():
        (tmp_path / name).write_bytes(b"not an idx file")
    with pytest.raises(SystemExit) as error:
        load_data(parse("--data", str(tmp_path)), "prog")
    message = str(error.value.code)
    assert message.startswith(f"prog: --data {tmp_path}: ") and "\n" not in message and "bundled" in message


def test_a_partial_directory_lists_only_what_is_missing(tmp_path: Path) -> None:
    write_idx(tmp_path / MNIST_FILES["test_labels"], np.zeros(3, np.uint8))
    with pytest.raises(SystemExit) as error:
        load_data(parse("--data", str(tmp_path)), "prog")
    message = str(error.value.code)
    assert MNIST_FILES["train_images"] in message and MNIST_FILES["test_labels"] not in message


def test_a_forced_bar_counts_steps_and_shows_the_postfix() -> None:
    stream = io.StringIO()
    with Progress(6, "training", bar=True, stream=stream) as progress:
        assert progress.shown
        assert list(progress.iterate(range(4))) == [0, 1, 2, 3]
        progress.advance(2)
        progress.postfix("epoch 1/1, test accuracy 50.00%")
        progress.note("only without a bar")
    text = stream.getvalue()
    assert "6/6" in text and "epoch 1/1, test accuracy 50.00%" in text and "only without" not in text


def test_without_a_bar_notes_and_lines_are_printed(capsys: pytest.CaptureFixture[str]) -> None:
    with Progress(3, "training", bar=False) as progress:
        assert not progress.shown
        assert list(progress.iterate("abc")) == ["a", "b", "c"]
        progress.postfix("ignored")
        progress.note("epoch 1: 50%")
        progress.line("kept")
    assert capsys.readouterr().out == "epoch 1: 50%\nkept\n"


def test_plural() -> None:
    assert [plural(n, "epoch") for n in (0, 1, 2, 1000)] == ["0 epochs", "1 epoch", "2 epochs", "1,000 epochs"]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar_only_when_tqdm_is_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    with Progress(1, "x", stream=FakeTerminal()) as progress:
        assert progress.shown  # tqdm is installed with the test extra
    with Progress(1, "x", stream=io.StringIO()) as progress:
        assert not progress.shown  # a log file or pipe: plain lines
    monkeypatch.setattr("autobp.commandline._has_tqdm", lambda: False)
    with Progress(1, "x", stream=FakeTerminal()) as progress:
        assert not progress.shown
