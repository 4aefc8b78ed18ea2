"""``python -m driver``: see :mod:`driver.cli`."""

import sys

from .cli import main

sys.exit(main())
