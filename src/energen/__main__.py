"""``python -m energen`` is the ``energen`` command."""

import sys

from .cli import main

sys.exit(main())
