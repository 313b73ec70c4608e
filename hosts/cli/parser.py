"""Every command's arguments. Handlers are named as ``"module:function"`` and imported by
:func:`hosts.cli.main.main` once a command is chosen; ``bench``'s arguments, which list the
benchmark's workloads and hosts, are added only when ``bench`` is parsed. So building the
parser imports no host, no benchmark and no cloud SDK."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from hosts.cli.errors import USAGE_ERROR
from hosts.cli.wording import one_line

PROG = "reactive"
API_KEY_ENV = "REACTIVE_API_KEY"
DEFAULT_PORT = 8080


class CommandParser(argparse.ArgumentParser):
    """A command's parser; ``complete`` (``"module:function"``, called with the parser)
    adds the rest of its arguments on first use, when they need a heavy import."""

    complete: str | None = None

    def _fill(self) -> None:
        if self.complete is not None:
            module, _, name = self.complete.partition(":")
            self.complete = None
            getattr(importlib.import_module(module), name)(self)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._fill()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._fill()
        return super().format_help()


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _target() -> CommandParser:
    """The MODULE:APP argument; a fresh one per command (``list`` makes its own optional)."""
    target = CommandParser(add_help=False)
    target.add_argument(
        "app",
        metavar="MODULE:APP",
        help="module (dotted name or .py file) and App attribute; APP may be omitted "
        "when the module defines a single App",
    )
    return target


def _emulator_options() -> CommandParser:
    emulator = CommandParser(add_help=False)
    emulator.add_argument(
        "--partitions", type=positive_int, default=None, metavar="N",
        help="default: 4, or a state folder's own count",
    )
    emulator.add_argument(
        "--seed", type=int, default=0, metavar="S", help="schedule seed (default: 0)"
    )
    emulator.add_argument(
        "--faults",
        action="store_true",
        help="inject faults: message round-trips, partition restores, duplicate deliveries",
    )
    emulator.add_argument(
        "--clock",
        choices=("virtual", "real"),
        default="virtual",
        help="virtual (default) fires timers as soon as nothing else can run; real waits",
    )
    emulator.add_argument(
        "--quiet", "-q", action="store_true", help="do not print application log lines"
    )
    emulator.add_argument(
        "--state",
        metavar="DIR",
        help="durable mode: keep input logs and snapshots in DIR (real clock); a killed run "
        "resumes where it stopped when started again with the same DIR",
    )
    return emulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run Reactive Machine applications on the in-process emulator.",
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {importlib.metadata.version('reactive-machine')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=CommandParser)
    emulator = _emulator_options()

    run = commands.add_parser(
        "run",
        parents=[_target(), emulator],
        help="run an application's startup orchestrations until quiescence",
        description="Run the application's startup orchestrations on the emulator until "
        "nothing is left to do, printing its log lines, then a summary. Exits with status "
        "1 if an instance failed or an error went unhandled.",
    )
    run.add_argument(
        "--max-time", type=float, metavar="SECONDS",
        help="stop once this much (virtual or real) time has passed: for applications "
        "with eternal orchestrations, which never let a run end on its own",
    )
    run.add_argument(
        "--json", action="store_true",
        help="print the summary as JSON on stdout (log lines go to stderr)",
    )
    run.set_defaults(handler="hosts.cli.run:cmd_run")

    start = commands.add_parser(
        "start",
        parents=[_target(), emulator],
        help="start one orchestration (after the startup orchestrations)",
        description="Start orchestration NAME on a fresh emulator, after the application's "
        "startup orchestrations. Log lines go to stderr.",
    )
    start.add_argument("name", metavar="NAME", help="the orchestration class name")
    start.add_argument(
        "--input", default="{}", metavar="JSON",
        help="its fields as a JSON object, @FILE to read it from a file, - from stdin "
        "(default: {})"
    )
    start.add_argument("--id", metavar="INSTANCE_ID", help="the instance id (default: random)")
    start.add_argument(
        "--wait", action="store_true", help="print its result as JSON (or its error)"
    )
    start.set_defaults(handler="hosts.cli.run:cmd_start")

    bench = commands.add_parser(
        "bench",
        help="run the fixed benchmark workloads and print a table",
        description="Run fixed workloads that verify their own results; a wrong result is "
        "counted as an error and makes the command exit with status 1.",
    )
    bench.complete = "hosts.cli.bench:add_arguments"  # they name the benchmark's workloads
    bench.set_defaults(handler="hosts.cli.bench:cmd_bench")

    listing = commands.add_parser(
        "list", parents=[_target()], help="list the application's operations by kind"
    )
    listing.set_defaults(handler="hosts.cli.listing:cmd_list_any")
    _add_ops_commands(commands, listing)
    return parser


# -- serve and the instance commands ---------------------------------------------------------


def _one_line_errors(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make argparse report misuse as one line (no usage block) with status 2."""

    def error(message: str) -> NoReturn:
        sys.stderr.write(f"{parser.prog}: error: {one_line(message)}\n")
        sys.exit(USAGE_ERROR)

    parser.error = error  # type: ignore[method-assign]
    return parser


def _where() -> argparse.ArgumentParser:
    where = argparse.ArgumentParser(add_help=False)
    group = where.add_argument_group("where the instances are")
    group.add_argument("--url", metavar="URL", help="a server's address (reactive serve)")
    group.add_argument(
        "--api-key", metavar="KEY", help=f"the server's API key (default: ${API_KEY_ENV})"
    )
    group.add_argument("--state", metavar="DIR", help="a state folder")
    group.add_argument(
        "--app", metavar="MODULE:APP",
        help="with --state: the application (optional: instance commands need no classes)",
    )
    group.add_argument("--json", action="store_true", help="print the API's JSON")
    return where


def _add_ops_commands(commands: Any, listing: argparse.ArgumentParser) -> None:
    """Register ``serve`` and the instance commands; ``list`` lists instances when given
    ``--url`` or ``--state``."""
    where = _where()

    def add(name: str, handler: str, **kwargs: Any) -> Any:
        parser = commands.add_parser(name, **kwargs)
        parser.set_defaults(handler=handler)
        return _one_line_errors(parser)

    serve = add(
        "serve", "hosts.cli.serve:cmd_serve",
        help="serve the HTTP API and dashboard over a durable state folder",
        description="Drive the application's partitions in the background and serve the "
        "HTTP API and the dashboard on 127.0.0.1. Prints the URL and the API key.",
    )
    serve.add_argument("app", metavar="MODULE:APP", help="module and App attribute")
    serve.add_argument(
        "--host", choices=("local", "aws-local", "azure-local"), default="local",
        help="local (default): a durable state folder; aws-local: SQS and S3 on a local "
        "endpoint (moto); azure-local: Event Hubs and Blob Storage (Azurite, the stand-in)",
    )
    serve.add_argument("--state", metavar="DIR", help="the state folder (--host local)")
    serve.add_argument(
        "--endpoint-url", metavar="URL",
        help="aws-local: the AWS endpoint (default: AWS_ENDPOINT_URL)",
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, metavar="P",
        help=f"default: {DEFAULT_PORT}; 0 picks a free port",
    )
    serve.add_argument(
        "--partitions", type=positive_int, metavar="N",
        help="for a new folder (default: 4); a folder keeps its own count",
    )
    serve.add_argument(
        "--no-auth-loopback", action="store_true",
        help="serve without an API key (loopback peers only)",
    )
    serve.add_argument("--quiet", "-q", action="store_true", help="no request log lines")

    instances = "hosts.cli.instances"
    status = add("status", f"{instances}:cmd_status", parents=[where],
                 help="an instance's status")
    status.add_argument("instance_id", metavar="ID")

    history = add(
        "history", f"{instances}:cmd_history", parents=[where], help="an instance's history rows"
    )
    history.add_argument("instance_id", metavar="ID")

    raise_event = add(
        "raise-event", f"{instances}:cmd_raise_event", parents=[where],
        help="deliver an external event to an instance",
    )
    raise_event.add_argument("instance_id", metavar="ID")
    raise_event.add_argument("name", metavar="NAME", help="the event name it waits for")
    raise_event.add_argument(
        "--value", metavar="JSON", help="the event's value as JSON, or @FILE (default: null)"
    )
    raise_event.add_argument(
        "--request-id", metavar="RID", help="makes a retried command deliver the event once"
    )

    terminate = add("terminate", f"{instances}:cmd_terminate", parents=[where],
                    help="stop an instance")
    terminate.add_argument("instance_id", metavar="ID")
    terminate.add_argument("--reason", default="", metavar="TEXT")

    purge = add("purge", f"{instances}:cmd_purge", parents=[where],
                help="forget a finished instance")
    purge.add_argument("instance_id", metavar="ID")

    add("partitions", f"{instances}:cmd_partitions", parents=[where],
        help="each partition's health: last commit, timers, backlog, dead letters, held "
        "messages")

    _extend_list(listing, where)


def _extend_list(listing: argparse.ArgumentParser, where: argparse.ArgumentParser) -> None:
    """``reactive list MODULE:APP`` lists an application's operations; with ``--url`` or
    ``--state`` it lists instances instead."""
    for action in listing._actions:
        if action.dest == "app":
            action.nargs = "?"
            action.default = None
            action.help = (action.help or "") + " (not needed with --url or --state)"
    for group in where._action_groups:
        for action in group._group_actions:
            if action.dest != "app":  # the positional MODULE:APP names the application
                listing._add_action(action)
    listing.add_argument(
        "--status", choices=("pending", "running", "completed", "failed", "terminated")
    )
    listing.add_argument("--name", metavar="NAME", help="orchestration name")
    listing.add_argument("--since", metavar="TIME", help="created at or after (ISO-8601)")
    listing.add_argument("--until", metavar="TIME", help="created before (ISO-8601)")
    listing.add_argument("--limit", type=positive_int, default=100, metavar="N")
    listing.add_argument("--cursor", metavar="ID", help="the next page, as printed")
    _one_line_errors(listing)


__all__ = ["PROG", "CommandParser", "build_parser", "positive_int"]
