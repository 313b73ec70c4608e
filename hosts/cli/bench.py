"""``reactive bench``: the benchmark's workloads on the chosen hosts. This module and the
benchmark it imports load only when ``bench`` is parsed or run."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from hosts.bench.plot import throughput_svg
from hosts.bench.runner import HOSTS, WORKLOADS, format_table, run_all, to_json
from hosts.cli.errors import FAILED, CliError
from hosts.cli.parser import positive_int


def add_arguments(bench: argparse.ArgumentParser) -> None:
    """``bench``'s options, which name the benchmark's workloads and hosts."""
    bench.add_argument(
        "--workloads", default=",".join(w for w in WORKLOADS), metavar="LIST",
        help=f"comma-separated, from: {', '.join(WORKLOADS)}",
    )
    bench.add_argument(
        "--hosts", default="emulator", metavar="LIST",
        help=f"comma-separated, from: {', '.join(HOSTS)}",
    )
    bench.add_argument(
        "--partitions", default="4", metavar="LIST", help="comma-separated counts (default: 4)"
    )
    bench.add_argument(
        "-n", metavar="LIST", help="items per workload, comma-separated for a sweep "
        "(default: each workload's own)",
    )
    bench.add_argument("--plot", metavar="FILE", help="also draw throughput as an SVG chart")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")


def _choices(text: str, allowed: Sequence[str], what: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    for item in chosen:
        if item not in allowed:
            raise CliError(f"unknown {what} {item!r}; choose from {', '.join(allowed)}")
    return chosen


def cmd_bench(args: argparse.Namespace) -> int:
    workloads = _choices(args.workloads, WORKLOADS, "workload")
    hosts = _choices(args.hosts, HOSTS, "host")
    try:
        partitions = [positive_int(p) for p in args.partitions.split(",")]
        counts: list[int | None] = (
            [positive_int(n) for n in args.n.split(",")] if args.n else [None]
        )
    except argparse.ArgumentTypeError as exc:
        raise CliError(f"--partitions / -n: {exc}") from None
    results = [r for n in counts for r in run_all(workloads, hosts, partitions, n)]
    print(format_table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(to_json(results), indent=2) + "\n")
    if args.plot:
        Path(args.plot).write_text(throughput_svg(results))
    failed = [r for r in results if r.errors]
    for r in failed:
        print(f"{r.workload} on {r.host}: {r.errors} wrong results", file=sys.stderr)
    return FAILED if failed else 0

