"""``python -m autobp demo``: the same as the ``autobp`` console script."""

from __future__ import annotations

import sys

from autobp.cli import main

sys.exit(main())
