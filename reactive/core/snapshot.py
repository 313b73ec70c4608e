"""The snapshot codec: a partition's records as JSON-ready data and back.

A snapshot is a "head" (small, written whole) and keyed sections (states, queues, runs,
completed instances). A delta holds the head and only the keyed entries that changed since
the previous delta (None: removed), so that a commit costs what changed. Runs are encoded
by the runner itself; this module only places them.
"""

from __future__ import annotations

import heapq
import json
from collections import deque
from dataclasses import asdict
from typing import Any

from pydantic import ValidationError

from reactive import errors
from reactive.core import messages as m
from reactive.core.partition_base import (
    KEYED_SECTIONS,
    HeldAnswer,
    PartitionBase,
    PendingActivity,
    Settling,
    Timer,
    TimerKind,
)
from reactive.model import RetryPolicy

SNAPSHOT_VERSION = 2


def _head(part: PartitionBase) -> dict[str, Any]:
    wire = part.schema
    return {
        "index": part.index,
        "count": part.count,
        "clock": part.clock,
        "started": part.started,
        "timer_seq": part.timer_seq,
        "timers": part.timers,
        "activities": [
            [iid, call, p.attempt, wire.encode_op(p.op),
             None if p.policy is None else asdict(p.policy),
             p.fork, p.waiting_retry]
            for (iid, call), p in part.activities.items()
        ],
        "initializing": [
            [name, key, [m.to_wire(w, wire) for w in waiters]]
            for (name, key), waiters in part.initializing.items()
        ],
        "early_events": part.early_events,
        "settling": {
            tag: {"wait": held.wait, "release": held.release, "reply": None
                  if held.answer is None else [held.answer.reply, held.answer.ok,
                                               held.answer.value, held.answer.source]}
            for tag, held in part.settling.items()
        },
    }


def _entry(part: PartitionBase, section: str, key: Any) -> tuple[str, Any]:
    """One keyed entry as (its string key, its JSON value or None if it is gone)."""
    if section == "states":
        state = part.states.get(key)
        return _key_text(key), None if state is None else [
            key[0], key[1], state.model_dump(mode="json")
        ]
    if section == "queues":
        queue = part.queues.get(key)
        return _key_text(key), None if not queue else [
            key, [m.to_wire(e, part.schema) for e in queue]
        ]
    if section == "runs":
        run = part.runs.get(key)
        return key, None if run is None else run.to_snapshot()
    return key, part.completed.get(key)


def _keys(part: PartitionBase, section: str) -> list[Any]:
    sections: dict[str, dict[Any, Any]] = {
        "states": part.states, "queues": part.queues, "runs": part.runs,
        "completed": part.completed,
    }
    return list(sections[section])


def snapshot(part: PartitionBase) -> dict[str, Any]:
    """The partition's whole state as JSON-ready data (also clears the change marks)."""
    data: dict[str, Any] = {"v": SNAPSHOT_VERSION, "head": _head(part)}
    for section in KEYED_SECTIONS:
        entries = dict(_entry(part, section, key) for key in _keys(part, section))
        data[section] = {k: v for k, v in entries.items() if v is not None}
        part._dirty[section].clear()
    return data


def take_delta(part: PartitionBase) -> dict[str, Any]:
    """What changed since the last snapshot() or take_delta(): apply it to that one with
    :func:`apply_delta` to get today's snapshot()."""
    data: dict[str, Any] = {"v": SNAPSHOT_VERSION, "head": _head(part)}
    for section in KEYED_SECTIONS:
        dirty = part._dirty[section]
        data[section] = dict(_entry(part, section, key) for key in dirty)
        dirty.clear()
    return data


def check_version(data: dict[str, Any]) -> None:
    if data.get("v") != SNAPSHOT_VERSION:
        raise errors.CorruptSnapshotError(f"unsupported snapshot version {data.get('v')!r}")


def load(part: PartitionBase, data: dict[str, Any]) -> None:
    """Fill a fresh partition (made for ``data``'s index and count) with everything in
    ``data`` but its runs, which the caller rebuilds with the runner."""
    schema = part.schema
    head = data["head"]
    part.clock = head["clock"]
    part.started = head["started"]
    part.timer_seq = head["timer_seq"]
    for name, key, state in data["states"].values():
        try:
            loaded = schema.states_by_name[name].cls.model_validate(state)
        except (KeyError, ValidationError) as exc:
            raise errors.CorruptSnapshotError(
                f"partition {part.index}: state {name} at key {key[1]} cannot be loaded: "
                f"{exc}"
            ) from exc
        part.states[(name, (key[0], key[1]))] = loaded
    for key, entries in data["queues"].values():
        part.queues[(key[0], key[1])] = deque(
            m.from_wire(e, schema) for e in entries  # type: ignore[misc]
        )
    part.completed = dict(data["completed"])
    part.timers = [Timer(t[0], t[1], t[2], t[3], TimerKind(t[4])) for t in head["timers"]]
    heapq.heapify(part.timers)
    for iid, call, attempt, op, policy, fork, waiting in head["activities"]:
        part.activities[(iid, call)] = PendingActivity(
            schema.decode_op(op),  # type: ignore[arg-type]
            attempt,
            RetryPolicy(**policy) if policy is not None else None,
            fork,
            waiting,
        )
    for name, key, waiters in head["initializing"]:
        part.initializing[(name, (key[0], key[1]))] = [
            m.from_wire(w, schema) for w in waiters  # type: ignore[misc]
        ]
    part.early_events = {k: [tuple(e) for e in v] for k, v in head["early_events"].items()}
    part.early_count = sum(len(v) for v in part.early_events.values())
    part.settling = {tag: _settling(held) for tag, held in head.get("settling", {}).items()}


def _settling(held: dict[str, Any]) -> Settling:
    release, answer = held["release"], held["reply"]
    if answer is not None:
        reply, ok, value, source = answer
        answer = HeldAnswer(None if reply is None else m.Reply(*reply), ok, value, source)
    return Settling(held["wait"], None if release is None else (
        release[0], tuple((k[0], k[1]) for k in release[1])), answer)


def _key_text(key: Any) -> str:
    return json.dumps(key, separators=(",", ":"))


def apply_delta(snapshot: dict[str, Any], delta: dict[str, Any]) -> None:
    """Bring ``snapshot`` (a snapshot() result, changed in place) forward by ``delta``."""
    snapshot["head"] = delta["head"]
    for section in KEYED_SECTIONS:
        entries = snapshot[section]
        for key, value in delta[section].items():
            if value is None:
                entries.pop(key, None)
            else:
                entries[key] = value
