"""``reactive run`` and ``reactive start``: an application on the emulator, or on the
local host over a state folder (``--state``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from hosts.cli.apps import build_orchestration, compile_app, find_orchestration, load_app
from hosts.cli.errors import FAILED, INTERRUPTED, CliError
from hosts.cli.progress import Progress, app_logging
from hosts.cli.summary import error_text, print_summary, summary_rows, wire_error_text
from hosts.cli.wording import count, one_line
from hosts.emulator import ALL_FAULTS, Emulator
from hosts.local import LocalHost
from reactive import App, InstanceStatus, Orchestration, ReactiveError
from reactive.hosting import Host, OperationInfo


def make_host(
    app: App, args: argparse.Namespace, unhandled: TextIO | None, progress: Progress
) -> Host:
    """An emulator set up from the command line; unhandled errors are printed to
    ``unhandled`` as they happen (None: not printed)."""
    faults = dataclasses.replace(ALL_FAULTS, seed=args.seed) if args.faults else None

    def report(error: str) -> None:
        if unhandled is not None:
            progress.clear()
            unhandled.write(f"unhandled error: {one_line(error)}\n")
            unhandled.flush()

    if getattr(args, "state", None) is not None:
        if args.faults:
            raise CliError("--faults and --state do not combine: faults are injected in memory")
        try:
            return LocalHost(
                app,
                partitions=args.partitions,  # None: the folder's own count
                state_dir=Path(args.state),
                seed=args.seed,
                on_unhandled=report,
            )
        except ReactiveError as exc:
            raise CliError(str(exc)) from None
    return Emulator(
        app,
        partitions=args.partitions or 4,
        seed=args.seed,
        faults=faults,
        clock=args.clock,
        on_unhandled=report,
    )



def cmd_run(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    compile_app(app)
    out = sys.stderr if args.json else sys.stdout
    progress = Progress(sys.stderr)
    emulator = make_host(app, args, None if args.quiet else out, progress)
    interrupted = stopped = False
    until = None
    if args.max_time is not None:
        began, limit = emulator.now(), float(args.max_time)

        def until() -> bool:
            return emulator.now() - began >= limit

    with app_logging(emulator, None if args.quiet else out, progress):
        try:
            stopped = until is not None and emulator.run(until=until, progress=progress)
            if until is None:
                emulator.run(progress=progress)
        except KeyboardInterrupt:
            interrupted = True
        except ReactiveError as exc:
            raise CliError(str(exc)) from None
        finally:
            progress.clear()
    try:
        return _finish_run(emulator, out, args, interrupted, stopped)
    finally:
        if isinstance(emulator, LocalHost):
            emulator.close()


def _finish_run(
    emulator: Host, out: TextIO, args: argparse.Namespace, interrupted: bool,
    stopped: bool = False,
) -> int:
    if args.json:
        rows = summary_rows(emulator)
        print(json.dumps({
            "interrupted": interrupted,
            "stopped_at_max_time": stopped,
            "instances": [dataclasses.asdict(row) for row in rows],
            "deliveries": emulator.deliveries,
            "activity_runs": emulator.activity_runs,
            "unhandled": list(emulator.unhandled),
        }, ensure_ascii=False, indent=2))
    else:
        rows = print_summary(emulator, out, list_unhandled=args.quiet, interrupted=interrupted,
                             stopped=stopped)
    if interrupted:
        return INTERRUPTED
    status = 0
    for row in rows:
        if row.status in ("failed", "terminated"):
            print(f"{row.name} {row.status}: {wire_error_text(row.error)}", file=sys.stderr)
            status = FAILED
        elif row.status in ("running", "pending") and not (interrupted or stopped):
            waits = "; ".join(row.waits or []) or "nothing it can name"
            print(f"{row.name} ({row.instance_id}) is stuck: waits for {waits}", file=sys.stderr)
            status = FAILED
    if emulator.unhandled:
        print(
            f"{count(len(emulator.unhandled), 'unhandled error')} during the run", file=sys.stderr
        )
        status = FAILED
    return status


def cmd_start(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    schema = compile_app(app)
    info = find_orchestration(schema, args.name)
    op = build_orchestration(info, args.input)
    log_stream = None if args.quiet else sys.stderr
    progress = Progress(sys.stderr)
    emulator = make_host(app, args, log_stream, progress)
    if isinstance(emulator, LocalHost):
        return _start_durable(emulator, info, op, args, log_stream, progress)
    client = emulator.client()
    with app_logging(emulator, log_stream, progress):
        try:
            emulator.run(progress=progress)  # the startup orchestrations first
            if args.id is not None:
                existing = client.status(args.id)
                if existing is not None:
                    raise CliError(f"instance id {args.id!r} is taken by {existing.name}")
            iid = client.start(op, instance_id=args.id)

            def done() -> bool:
                status = client.status(iid)
                return status is not None and status.done

            emulator.run(until=done if args.wait else None, progress=progress)
        finally:
            progress.clear()
    return _report_start(info, iid, client.status(iid), args.wait, "the emulator is idle")


def _start_durable(
    host: LocalHost,
    info: OperationInfo,
    op: Orchestration[Any],
    args: argparse.Namespace,
    log_stream: TextIO | None,
    progress: Progress,
) -> int:
    """``start`` in a state folder: returns once the start is committed (``--wait``: once
    the instance is done); an existing id of the same orchestration is that instance."""
    client = host.client()
    try:
        with app_logging(host, log_stream, progress):
            try:
                iid = client.start(op, instance_id=args.id)

                def settled() -> bool:
                    status = client.status(iid)
                    return status is not None and (status.done if args.wait else
                                                   status.status != "pending")

                host.run(until=settled, progress=progress)
            finally:
                progress.clear()
        status = client.status(iid)
    except ReactiveError as exc:
        raise CliError(str(exc)) from None
    finally:
        host.close()
    return _report_start(info, iid, status, args.wait, "nothing is left to run")


def _report_start(
    info: OperationInfo, iid: str, status: InstanceStatus | None, wait: bool, idle: str
) -> int:
    """Print what ``start`` ends with: the result as JSON (``--wait``) or the id and
    status; a failure on stderr with exit 1."""
    assert status is not None
    if status.status in ("failed", "terminated"):
        assert status.error is not None
        print(f"{info.name} {status.status}: {error_text(status.error)}", file=sys.stderr)
        if not wait:
            print(f"{iid} {status.status}")
        return FAILED
    if not wait:
        print(f"{iid} {status.status}")
        return 0
    if status.status != "completed":
        raise CliError(
            f"{info.name} ({iid}) is still {status.status} but {idle} "
            "(is it waiting for an external event?)",
            FAILED,
        )
    print(json.dumps(info.result.dump_python(status.result, mode="json"), ensure_ascii=False))
    return 0

