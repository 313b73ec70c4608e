"""``python -m reactive``: the command line. The CLI runs applications on hosts, so it
lives with them; the library never imports hosts, so it finds the CLI the way the
``reactive`` console script does: through the installed package's entry point."""

import sys
from importlib.metadata import entry_points


def main() -> int:
    found = entry_points(group="console_scripts", name="reactive")
    if not found:
        print("reactive: the command line is not installed (no 'reactive' console script)",
              file=sys.stderr)
        return 2
    command = next(iter(found)).load()
    return int(command() or 0)


if __name__ == "__main__":
    sys.exit(main())
