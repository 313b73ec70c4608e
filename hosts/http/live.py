"""History rows and current waits of live instances, read from an in-process host's warm
partitions: the ``history`` and ``describe`` callables ``reactive serve`` hands the API.

The host's own ``describe`` is used when it has one; history rows are read here, a
stopgap until hosts offer them: from the partition state machine's orchestration records
(calls, responses, futures, timers). Both are read under the host's lock, which its
driver holds during an invocation, so that a request never sees a state mid-change.
Finished instances have no history here (their partition keeps only the result);
anything unexpected in the records gives ``None`` rather than an error.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reactive.hosting import EventArrival

log = logging.getLogger("reactive.http")

HistoryFn = Callable[[str], Any]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def _call_row(index: int, description: str) -> dict[str, Any]:
    verb, _, rest = description.partition(" ")
    row: dict[str, Any] = {"n": index, "kind": verb}
    if verb in ("perform", "fork"):
        name, _, digest = rest.partition("#")
        row.update(operation=name, digest=digest)
    elif verb == "wait":
        row["event"] = rest
    elif verb in ("sleep", "sleep_until", "exists"):
        row["detail"] = rest
    return row


class LocalInspector:
    """``history(instance_id)`` and ``describe(instance_id)`` over a LocalHost-like object
    with ``workers`` (each with ``partition()``), ``count``, ``schema`` and a ``_mutex``
    that its driver holds during invocations."""

    def __init__(self, host: Any) -> None:
        self.host = host

    def _run(self, instance_id: str) -> tuple[Any, Any] | None:
        owner = self.host.schema.instance_owner(instance_id, self.host.count)
        part = self.host.workers[owner].partition()
        run = part.runs.get(instance_id)
        if run is None or getattr(run, "init", None) is not None:
            return None
        return part, run

    def _locked(self, read: Callable[[str], Any], instance_id: str) -> Any:
        mutex = getattr(self.host, "_mutex", None)
        guard = mutex if mutex is not None else contextlib.nullcontext()
        try:
            with guard:
                return read(instance_id)
        except Exception:  # the records changed shape: report nothing rather than fail
            log.exception("cannot inspect instance %s", instance_id)
            return None

    def history(self, instance_id: str) -> list[dict[str, Any]] | None:
        return self._locked(self._history, instance_id)  # type: ignore[no-any-return]

    def describe(self, instance_id: str) -> list[Any] | None:
        """The host's own account when it has one (``LocalHost.describe``: one line per
        wait), else what the records show; read between invocations either way."""
        own = getattr(self.host, "describe", None)
        read = own if callable(own) else self._describe
        return self._locked(read, instance_id)  # type: ignore[no-any-return]

    def _history(self, instance_id: str) -> list[dict[str, Any]] | None:
        found = self._run(instance_id)
        if found is None:
            return None
        _, run = found
        rows = [_call_row(i, call.description) for i, call in enumerate(run.calls)]
        for i, call in enumerate(run.calls):
            if call.value is not None:
                rows[i]["value"] = call.value
        for response in run.responses:
            if isinstance(response, EventArrival):
                rows.append({"kind": "event arrived", "event": response.name,
                             "value": response.value})
                continue
            index, ok, value = response
            if 0 <= index < len(rows):
                rows[index]["ok"] = bool(ok)
                rows[index]["result" if ok else "error"] = value
        return rows

    def _describe(self, instance_id: str) -> list[dict[str, Any]] | None:
        found = self._run(instance_id)
        if found is None:
            return None
        part, run = found
        waits: list[dict[str, Any]] = []
        if getattr(run, "lock_mode", None) == "acquire" and not getattr(run, "lock_granted", True):
            keys = [f"{k[0]}:{k[1]}" for k in (run.lock_keys or ())]
            waits.append({"kind": "lock", "keys": keys})
        due = {
            (timer[2], timer[3]): timer[0] for timer in getattr(part, "timers", ())
        }
        tag = getattr(run, "tag", instance_id)
        for index, future in sorted(run.futures.items()):
            if future.done() or index >= len(run.calls):
                continue
            row = _call_row(index, run.calls[index].description)
            kind = row["kind"]
            if kind in ("sleep", "sleep_until"):
                wait: dict[str, Any] = {"kind": "timer", "call": index}
                when = due.get((tag, index))
                if when is not None:
                    wait["due"] = _iso(when)
            elif kind == "wait":
                wait = {"kind": "event", "name": row["event"], "call": index}
            elif kind == "perform":
                wait = {"kind": "operation", "operation": row["operation"], "call": index}
                child = getattr(run, "locked_children", {}).get(index)
                if child is not None:
                    wait["child"] = child
            else:
                wait = {"kind": kind, "call": index}
            waits.append(wait)
        return waits


def local_inspector(host: Any) -> tuple[HistoryFn, HistoryFn]:
    inspector = LocalInspector(host)
    return inspector.history, inspector.describe
