"""``python -m reactive``: the command line. It lives in :mod:`hosts.cli` because it runs
applications on a host; the library itself never imports hosts."""

import sys

from hosts.cli import main

sys.exit(main())
