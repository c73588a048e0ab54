"""Write the example page of ``autobp explain`` that the backpropagation tutorial links to.

Run by the docs build hook (docs/hooks/autobp_docs.py) before every build; also runnable alone:
``python docs/scripts/explain_page.py``. Writes docs/assets/explain/index.html (not in git): the
page ``autobp explain`` writes with its defaults, rewritten only when its content changed.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from autobp.cli import main

OUT = Path(__file__).resolve().parent.parent / "assets" / "explain"


def write() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        status = main(["explain", "--out", scratch])
        if status != 0:
            sys.exit(f"autobp explain failed with status {status}")
        page = (Path(scratch) / "index.html").read_bytes()
    target = OUT / "index.html"
    OUT.mkdir(parents=True, exist_ok=True)
    if not target.exists() or target.read_bytes() != page:
        target.write_bytes(page)


if __name__ == "__main__":
    write()
