"""What autobp's commands and examples share: the MNIST flags, one-line data errors, and progress.

``add_data_flags`` adds ``--data DIR`` and ``--download``; ``load_data`` turns them into MNIST
arrays (the bundled subset when ``--data`` is absent) and turns every data problem into one line
naming the flag and a non-zero exit, never a traceback. ``Progress`` shows a tqdm bar on a terminal
when tqdm is installed (the ``demo`` extra) and plain lines otherwise, so a log stays readable.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

from autobp.datasets import MNIST, DownloadError, IDXError, load_bundled, load_mnist
from autobp.datasets.mnist import missing_files

__all__ = ["add_data_flags", "layer_sizes", "load_data", "positive", "seed_number", "Progress", "plural"]


def positive(kind: type) -> Any:
    """An argparse ``type=``: a value of ``kind`` (int, float) that is > 0, and finite: ``--eta inf``
    (or ``1e400``, which Python reads as inf) trained on with no error, to weights of nan."""
    wanted = f"a positive {kind.__name__}" if kind is int else f"a positive finite {kind.__name__}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if not (value > 0 and math.isfinite(value)):  # (nan > 0 is false)
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def seed_number(text: str) -> int:
    """An argparse ``type=`` for ``--seed`` (and any count from 0): a whole number >= 0, as
    ``numpy.random.default_rng`` takes (``--seed -1`` ended in numpy's traceback, "expected
    non-negative integer")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def layer_sizes(example: str) -> Any:
    """An argparse ``type=`` for ``--sizes``: comma-separated positive layer sizes (``example`` in errors)."""

    def parse(text: str) -> list[int]:
        try:
            sizes = [int(part) for part in text.split(",")]
        except ValueError:
            sizes = []
        if len(sizes) < 2 or min(sizes) < 1:
            raise argparse.ArgumentTypeError(f"expected two or more positive layer sizes like {example}, got {text!r}")
        return sizes

    parse.__name__ = "layer sizes"  # argparse names the type in its error: "invalid layer sizes value"
    return parse


Item = TypeVar("Item")


def plural(count: int, noun: str) -> str:
    """``count`` and ``noun``, with an s unless the count is one.

    >>> plural(1, "epoch"), plural(3, "epoch")
    ('1 epoch', '3 epochs')
    """
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--data DIR`` (default: the bundled subset) and ``--download`` to ``parser``."""
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="directory with the four MNIST files, gzipped or not (default: the subset bundled with autobp, "
        "10,000 training and 2,000 test images)",
    )
    parser.add_argument(
        "--download",
        action="store_true",
        help="fetch the MNIST files missing from --data from a public mirror, checksum-verified (default: off)",
    )


def load_data(args: argparse.Namespace, command: str) -> tuple[MNIST, str]:
    """The MNIST arrays the flags ask for and a phrase saying where they came from.

    Raises ``SystemExit`` with one line that names the flag (``--data``, ``--download``) and says
    what to do when the files are missing, cannot be downloaded, or are not MNIST.
    """
    data: Path | None = args.data
    if data is None:
        if args.download:
            raise SystemExit(f"{command}: --download needs --data DIR, the directory to put the MNIST files in")
        return load_bundled(), "the MNIST subset bundled with autobp"
    bundled = "or leave out --data to use the subset bundled with autobp"
    try:
        return load_mnist(data, download=args.download), f"MNIST from {data}"
    except DownloadError as error:
        raise SystemExit(
            f"{command}: --download could not fetch {error.name or 'MNIST'} into {data} "
            f"({error.first_failure or 'no mirror answered'}; offline?); copy the four MNIST files there, {bundled}"
        ) from None
    except FileNotFoundError:
        missing = ", ".join(missing_files(data)) or "some MNIST files"
        raise SystemExit(
            f"{command}: --data {data} lacks {missing}; add --download to fetch them, "
            f"copy the four MNIST files there, {bundled}"
        ) from None
    except (IDXError, OSError) as error:
        raise SystemExit(f"{command}: --data {data}: {str(error).splitlines()[0]}; {bundled}") from None


class Progress:
    """Progress of a long loop: a tqdm bar on a terminal when tqdm is installed, else plain lines.

    ``bar=None`` decides by itself (tqdm importable and ``stream`` a terminal); True or False
    forces it. ``iterate`` advances the bar over an iterable (``advance`` by a count), ``postfix``
    sets the text after the bar (the last epoch's accuracy, say), ``line`` prints a line that
    stays, and ``note`` prints a line only when there is no bar (the bar's postfix already shows
    it). Use it as a context manager.
    """

    def __init__(
        self, total: int, desc: str, unit: str = "batch", bar: bool | None = None, stream: TextIO | None = None
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._bar: Any = None
        if bar is None:
            bar = _has_tqdm() and self.stream.isatty()
        if bar:
            from tqdm import tqdm

            # mininterval 0.1 s: short epochs (the demo's take a third of a second) still show movement.
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=self.stream, leave=True, mininterval=0.1)

    @property
    def shown(self) -> bool:
        """True when a bar is drawn."""
        return self._bar is not None

    def iterate(self, items: Iterable[Item]) -> Iterator[Item]:
        """Yield ``items``, advancing the bar by one for each."""
        for item in items:
            yield item
            if self._bar is not None:
                self._bar.update(1)

    def advance(self, count: int) -> None:
        """Advance the bar by ``count`` steps done outside ``iterate``."""
        if self._bar is not None:
            self._bar.update(count)

    def postfix(self, text: str) -> None:
        """Show ``text`` after the bar (nothing without a bar)."""
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def line(self, text: str) -> None:
        """Print ``text`` on stdout, above the bar when there is one."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stdout)
        else:
            print(text, flush=True)

    def note(self, text: str) -> None:
        """Print ``text`` only when no bar is drawn (a log then still shows each step)."""
        if self._bar is None:
            print(text, flush=True)

    def close(self) -> None:
        """Finish the bar; it stays on the screen."""
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has_tqdm() -> bool:
    import importlib.util

    return importlib.util.find_spec("tqdm") is not None
