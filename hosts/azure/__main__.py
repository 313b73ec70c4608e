"""``python -m hosts.azure MODULE:APP [--partitions N] [--port P]``: the app on the Azure
host, run locally (what ``reactive serve MODULE:APP --host azure-local`` does)."""

from __future__ import annotations

import argparse
import sys

from hosts.azure.local import serve_command
from hosts.cli import CliError, load_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosts.azure")
    parser.add_argument("app", metavar="MODULE:APP")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--port", type=int, default=0, help="the HTTP API's port (0: any)")
    args = parser.parse_args(argv)
    try:
        app = load_app(args.app)
    except CliError as exc:
        print(f"python -m hosts.azure: {exc}", file=sys.stderr)
        return exc.status
    return serve_command(app, args.partitions, port=args.port)


if __name__ == "__main__":
    sys.exit(main())
