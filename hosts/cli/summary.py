"""The end of a ``run``: the top-level instances, what live ones wait for, and the
host's counters."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any, TextIO

from hosts.cli.wording import count, one_line, shorten
from hosts.local import LocalHost
from reactive import ApplicationError
from reactive.hosting import Host, statistics
from reactive.hosting.seams import StatusQuery

RESULT_WIDTH = 200  # characters of a result shown in the run summary
UNHANDLED_SHOWN = 10  # unhandled errors listed in a quiet run's summary


@dataclasses.dataclass
class InstanceRow:
    """A top-level orchestration instance (started by the application or a client)."""

    instance_id: str
    name: str
    status: str
    result: Any = None
    error: dict[str, Any] | None = None
    waits: list[str] | None = None


def natural(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def top_level_instances(emulator: Host) -> list[InstanceRow]:
    """Every instance nobody awaits: finished ones from each partition's records, plus the
    ones still running (in durable mode: from the status store)."""
    rows: list[InstanceRow] = []
    if isinstance(emulator, LocalHost):
        records = emulator.status.query(StatusQuery(limit=1_000_000))
        rows = [InstanceRow(r.instance_id, r.name, r.status, r.result, r.error) for r in records]
        return sorted(rows, key=lambda row: natural(row.instance_id))
    for part in emulator.parts:
        for iid, record in part.completed.items():
            rows.append(
                InstanceRow(
                    iid, record["name"], record["status"], record.get("result"), record.get("error")
                )
            )
        for iid, run in part.runs.items():
            if run.init is None and run.reply is None:
                rows.append(InstanceRow(iid, type(run.op).__name__, "running"))
    return sorted(rows, key=lambda row: natural(row.instance_id))


def wire_error_text(error: dict[str, Any] | None) -> str:
    if not isinstance(error, dict):
        return "unknown error"
    kind, message = error.get("type", "Error"), error.get("message", "")
    if kind == "ApplicationError":  # its message already reads "OriginalType: message"
        return one_line(str(message))
    return one_line(f"{kind}: {message}")


def error_text(error: BaseException) -> str:
    if isinstance(error, ApplicationError):
        if error.remote_type == "ApplicationError":  # wrapped twice: the message names the type
            return one_line(error.remote_message)
        return one_line(f"{error.remote_type}: {error.remote_message}")
    return one_line(f"{type(error).__name__}: {error}")



def summary_rows(emulator: Host) -> list[InstanceRow]:
    """The top-level instances, live ones with what they wait for."""
    rows = top_level_instances(emulator)
    for row in rows:
        if row.status == "running":
            row.waits = emulator.describe(row.instance_id)
    return rows


def print_summary(
    emulator: Host, out: TextIO, list_unhandled: bool, interrupted: bool = False,
    stopped: bool = False,
) -> list[InstanceRow]:
    rows = summary_rows(emulator)
    note = " (interrupted)" if interrupted else " (stopped at --max-time)" if stopped else ""
    out.write(f"\n== summary{note} ==\n")
    if rows:
        id_width = max(len(row.instance_id) for row in rows)
        name_width = max(len(row.name) for row in rows)
        for row in rows:
            if row.status == "completed":
                detail = shorten(json.dumps(row.result, ensure_ascii=False), RESULT_WIDTH)
            elif row.error is not None:
                detail = wire_error_text(row.error)
            elif row.waits:
                detail = "waits for " + "; ".join(row.waits)
            else:
                detail = ""
            line = f"{row.instance_id:<{id_width}}  {row.name:<{name_width}}  {row.status:<10}"
            out.write(f"{line} {detail}".rstrip() + "\n")
    else:
        out.write("no orchestration instances\n")
    counts = statistics(emulator)
    stats = [
        count(counts["deliveries"], "delivery", "deliveries"),
        count(counts["activity_runs"], "activity run"),
        count(counts["unhandled"], "unhandled error"),
    ]
    faults = getattr(emulator, "faults", None)  # the durable host injects none
    if faults is not None and (faults.restore_probability or faults.duplicate_probability):
        stats += [
            count(counts["restores"], "restore"),
            count(counts["duplicates_dropped"], "duplicate dropped", "duplicates dropped"),
        ]
    out.write(", ".join(stats) + "\n")
    if list_unhandled:
        for error in emulator.unhandled[:UNHANDLED_SHOWN]:
            out.write(f"unhandled error: {one_line(error)}\n")
        if len(emulator.unhandled) > UNHANDLED_SHOWN:
            out.write(f"... and {len(emulator.unhandled) - UNHANDLED_SHOWN} more\n")
    out.flush()
    return rows

