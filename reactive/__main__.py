"""``python -m reactive``: the command line (see :mod:`reactive.cli`)."""

import sys

from reactive.cli import main

sys.exit(main())
