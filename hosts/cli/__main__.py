"""``python -m hosts.cli``: the ``reactive`` command line."""

import sys

from hosts.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
