"""CLI: ``python -m tests.standins.eventhubs --port 0 --hub orders:4 --hub results:2``."""

from __future__ import annotations

import argparse
import asyncio

from .server import LOOPBACK, serve_until_signalled


def _hub(text: str) -> tuple[str, int]:
    name, sep, count = text.rpartition(":")
    if not sep or not name or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"expected NAME:PARTITIONS, got {text!r}")
    return name, int(count)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.standins.eventhubs",
        description="In-memory Event Hubs stand-in speaking AMQP 1.0 to the azure-eventhub SDK.",
    )
    parser.add_argument("--host", default=LOOPBACK, choices=[LOOPBACK], help="listen address")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument(
        "--hub",
        type=_hub,
        action="append",
        default=[],
        metavar="NAME:PARTITIONS",
        help="an event hub and its partition count (repeatable)",
    )
    parser.add_argument("--verbose", action="store_true", help="log protocol problems to stderr")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="also stop when the process that started this one exits",
    )
    args = parser.parse_args(argv)
    hubs = dict(args.hub) or {"eh1": 4}
    asyncio.run(serve_until_signalled(hubs, args.port, args.verbose, args.exit_with_parent))


if __name__ == "__main__":
    main()
