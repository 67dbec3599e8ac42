"""``python -m p2pkit`` is the ``p2pkit`` command."""

import sys

from .cli import main

sys.exit(main())
