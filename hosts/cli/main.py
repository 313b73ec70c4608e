"""The ``reactive`` entry point: parse, run the chosen command's handler (imported only
now, so that ``reactive --help`` loads no host), and turn errors into exit statuses."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

from hosts.cli.errors import FAILED, INTERRUPTED, CliError
from hosts.cli.parser import PROG, build_parser
from hosts.cli.wording import one_line

Handler = Callable[[argparse.Namespace], int]


def handler_of(reference: str) -> Handler:
    """The command handler that ``"module:function"`` names."""
    module, _, name = reference.partition(":")
    found: Handler = getattr(importlib.import_module(module), name)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        status: int = handler_of(args.handler)(args)
    except CliError as exc:
        print(f"{PROG}: error: {one_line(str(exc))}", file=sys.stderr)
        return exc.status
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:  # e.g. `reactive list app | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return FAILED
    return status
