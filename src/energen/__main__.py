"""``python -m energen`` is the ``energen`` command."""

from __future__ import annotations

import sys

from .cli.main import main

sys.exit(main())
