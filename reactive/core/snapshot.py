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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, fields
from itertools import islice
from typing import Any, TypeVar

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
from reactive.schema import PKey, Schema

T = TypeVar("T")

SNAPSHOT_VERSION = 5
"""Version 5 deltas may carry a run as an edit of the stored one (see :func:`take_delta`);
version 4 deltas may carry a queue as an edit of the stored one (see :func:`take_delta`);
version 3 names the fields of its positional records in the head (``layouts``); version
2 (no layouts) is read with the layouts it implied. Each is read by this code."""

# the records a head holds as rows, each with the names of its fields in row order: a row
# is read by name, so that a field added (with a default) since the snapshot was written
# takes its default, and one the code no longer has is an error, not a silent misreading
_ACTIVITY = ("instance_id", "call", "op", "attempt", "policy", "fork", "waiting_retry")
LAYOUTS: dict[str, tuple[str, ...]] = {
    "timer": Timer._fields,
    "activity": _ACTIVITY,
    "settling": tuple(f.name for f in fields(Settling)),
    "answer": tuple(f.name for f in fields(HeldAnswer)),
}
_V2_LAYOUTS: dict[str, tuple[str, ...]] = {
    "timer": ("due", "seq", "instance_id", "call", "kind"),
    "activity": ("instance_id", "call", "attempt", "op", "policy", "fork", "waiting_retry"),
}


def _head(part: PartitionBase, layouts: bool) -> dict[str, Any]:
    wire = part.schema
    head = {
        "index": part.index,
        "count": part.count,
        "clock": part.clock,
        "started": part.started,
        "timer_seq": part.timer_seq,
        "timers": part.timers,
        "activities": [
            _activity_row(wire, iid, call, p) for (iid, call), p in part.activities.items()
        ],
        "initializing": [
            [name, key, [m.to_wire(w, wire) for w in waiters]]
            for (name, key), waiters in part.initializing.items()
        ],
        "early_events": part.early_events,
        "settling": {tag: _settling_row(held) for tag, held in part.settling.items()},
    }
    # the layouts go in a full snapshot, and in a delta only while the store's head lacks
    # this code's (apply_delta carries them forward): a delta is written on every commit
    if layouts or not part.layouts_stored:
        head["layouts"] = LAYOUTS
        part.layouts_stored = True
    return head


def _activity_row(wire: Schema, iid: str, call: int, pending: PendingActivity) -> list[Any]:
    """An activity as a row in the order ``LAYOUTS["activity"]`` names (spelled out: the
    head is written on every commit; tests/core/test_snapshot_codec.py checks the order)."""
    policy = pending.policy
    return [
        iid, call, wire.encode_op(pending.op), pending.attempt,
        None if policy is None else asdict(policy), pending.fork, pending.waiting_retry,
    ]


def _settling_row(held: Settling) -> list[Any]:
    answer = held.answer
    return [
        (None if answer is None else [getattr(answer, f) for f in LAYOUTS["answer"]])
        if name == "answer" else getattr(held, name)
        for name in LAYOUTS["settling"]
    ]


def _entry(
    part: PartitionBase, section: str, key: Any, delta: bool = False
) -> tuple[str, Any]:
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
        if run is None:
            return key, None
        return key, run.to_delta() if delta else run.to_snapshot()
    return key, part.completed.get(key)


def _keys(part: PartitionBase, section: str) -> list[Any]:
    sections: dict[str, dict[Any, Any]] = {
        "states": part.states, "queues": part.queues, "runs": part.runs,
        "completed": part.completed,
    }
    return list(sections[section])


def snapshot(part: PartitionBase) -> dict[str, Any]:
    """The partition's whole state as JSON-ready data (also clears the change marks)."""
    data: dict[str, Any] = {"v": SNAPSHOT_VERSION, "head": _head(part, layouts=True)}
    for section in KEYED_SECTIONS:
        entries = dict(_entry(part, section, key) for key in _keys(part, section))
        data[section] = {k: v for k, v in entries.items() if v is not None}
    part.clear_marks()
    return data


def take_delta(part: PartitionBase) -> dict[str, Any]:
    """What changed since the last snapshot() or take_delta(): apply it to that one with
    :func:`apply_delta` to get today's snapshot().

    A queue that kept some of its stored entries is written as an edit, ``{"drop": n,
    "add": [entries]}``: the stored queue loses its first n entries and gains these at its
    tail (a busy key's queue is long and changes by one or two entries per commit).

    A run the store holds is written as an edit too: its fields but the input ``op``, with
    only the history rows added since, and ``calls_from``/``responses_from``, the number
    of stored rows they follow (see ``Run.to_delta``)."""
    data: dict[str, Any] = {"v": SNAPSHOT_VERSION, "head": _head(part, layouts=False)}
    for section in KEYED_SECTIONS:
        dirty = part._dirty[section]
        if section == "queues":
            data[section] = {_key_text(key): _queue_change(part, key) for key in dirty}
        else:
            data[section] = dict(_entry(part, section, key, delta=True) for key in dirty)
    part.clear_marks()
    return data


def _queue_change(part: PartitionBase, key: PKey) -> Any:
    """A changed queue for a delta: None if it is gone, an edit of the stored queue if it
    kept some of the stored entries, else the whole entry."""
    queue = part.queues.get(key)
    if not queue:
        return None
    stored, appended = part._queue_edits.get(key) or (0, len(queue))
    kept = len(queue) - min(len(queue), appended)  # stored entries still queued
    if kept == 0:
        return [key, [m.to_wire(e, part.schema) for e in queue]]
    return {
        "drop": stored - kept,
        "add": [m.to_wire(e, part.schema) for e in islice(queue, kept, None)],
    }


def check_version(data: dict[str, Any]) -> None:
    version = data.get("v")
    if version not in (2, 3, 4, SNAPSHOT_VERSION):
        raise errors.CorruptSnapshotError(
            f"snapshot version {version!r} cannot be read: this code reads versions 2 to "
            f"{SNAPSHOT_VERSION} (a snapshot from newer code needs that code)"
        )


def _reader(
    layouts: Mapping[str, Sequence[str]], name: str
) -> Callable[[list[Any]], dict[str, Any]]:
    """Turns a row of record ``name`` into its fields by name, using the layout the
    snapshot was written with."""
    names = tuple(layouts[name])

    def read(row: list[Any]) -> dict[str, Any]:
        if len(row) != len(names):
            raise errors.CorruptSnapshotError(
                f"a {name} row has {len(row)} fields, its layout names {len(names)}"
            )
        return dict(zip(names, row, strict=True))

    return read


def _make(cls: Callable[..., T], name: str, values: dict[str, Any]) -> T:
    try:
        return cls(**values)
    except TypeError as exc:  # a field this code no longer has, or a new one with no default
        raise errors.CorruptSnapshotError(
            f"a {name} record in the snapshot does not fit this code: {exc}"
        ) from None


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
    layouts = head.get("layouts") or _V2_LAYOUTS
    part.layouts_stored = {k: tuple(v) for k, v in layouts.items()} == LAYOUTS
    timer = _reader(layouts, "timer")
    part.timers = []
    for row in head["timers"]:
        values = timer(row)
        values["kind"] = TimerKind(values["kind"])
        part.timers.append(_make(Timer, "timer", values))
    heapq.heapify(part.timers)
    activity = _reader(layouts, "activity")
    for row in head["activities"]:
        values = activity(row)
        where = (values.pop("instance_id"), values.pop("call"))
        values["op"] = schema.decode_op(values["op"])
        policy = values.get("policy")
        values["policy"] = None if policy is None else _make(RetryPolicy, "retry", policy)
        part.activities[where] = _make(PendingActivity, "activity", values)
    for name, key, waiters in head["initializing"]:
        part.initializing[(name, (key[0], key[1]))] = [
            m.from_wire(w, schema) for w in waiters  # type: ignore[misc]
        ]
    part.early_events = {k: [tuple(e) for e in v] for k, v in head["early_events"].items()}
    part.early_count = sum(len(v) for v in part.early_events.values())
    part.settling = {
        tag: _settling(layouts, held) for tag, held in head.get("settling", {}).items()
    }


def _settling(layouts: Mapping[str, Sequence[str]], held: Any) -> Settling:
    if isinstance(held, dict):  # version 2: {"wait", "release", "reply"}
        values = {"wait": held["wait"], "release": held["release"], "answer": held["reply"]}
    else:
        values = _reader(layouts, "settling")(held)
    release = values["release"]
    if release is not None:
        values["release"] = (release[0], tuple((k[0], k[1]) for k in release[1]))
    answer = values["answer"]
    if answer is not None:
        answer = dict(zip(LAYOUTS["answer"], answer, strict=True)) if isinstance(
            held, dict) else _reader(layouts, "answer")(answer)
        reply = answer["reply"]
        answer["reply"] = None if reply is None else m.Reply(*reply)
        values["answer"] = _make(HeldAnswer, "answer", answer)
    return _make(Settling, "settling", values)


# json.dumps with options builds a new encoder per call; a key is written per entry
_compact = json.JSONEncoder(separators=(",", ":")).encode


def _key_text(key: Any) -> str:
    return _compact(key)


def apply_delta(snapshot: dict[str, Any], delta: dict[str, Any]) -> None:
    """Bring ``snapshot`` (a snapshot() result, changed in place) forward by ``delta``."""
    snapshot["v"] = delta["v"]  # the head is the delta's, with the layouts it was written in
    layouts = snapshot["head"].get("layouts")
    snapshot["head"] = delta["head"]
    if "layouts" not in delta["head"] and layouts is not None:
        snapshot["head"]["layouts"] = layouts
    for section in KEYED_SECTIONS:
        entries = snapshot[section]
        for key, value in delta[section].items():
            if value is None:
                entries.pop(key, None)
            elif isinstance(value, dict) and section == "queues":
                entries[key] = _edited_queue(entries.get(key), key, value)
            elif section == "runs" and "calls_from" in value:
                entries[key] = _edited_run(entries.get(key), key, value)
            else:
                entries[key] = value


def _edited_queue(stored: Any, key: str, edit: dict[str, Any]) -> list[Any]:
    """A stored queue entry ``[key, entries]`` after a delta's edit of it."""
    try:
        drop, add = edit["drop"], edit["add"]
        queued = stored[1]
        if not 0 <= drop < len(queued):  # an edit keeps at least one stored entry
            raise ValueError(f"drops {drop} of {len(queued)} entries")
        return [stored[0], [*queued[drop:], *add]]
    except (KeyError, TypeError, IndexError, ValueError) as exc:
        raise errors.CorruptSnapshotError(
            f"a delta edits queue {key}, which the snapshot it follows does not hold as "
            f"that edit needs ({type(exc).__name__}: {exc})"
        ) from None


def _edited_run(stored: Any, key: str, edit: dict[str, Any]) -> dict[str, Any]:
    """A stored run entry after a delta's edit of it: the edit's fields, the stored input,
    and the stored history rows followed by the edit's."""
    try:
        calls_from, responses_from = edit["calls_from"], edit["responses_from"]
        calls, responses = stored["calls"], stored["responses"]
        if (len(calls), len(responses)) != (calls_from, responses_from):
            raise ValueError(
                f"it follows {calls_from} calls and {responses_from} responses, the stored "
                f"run has {len(calls)} and {len(responses)}"
            )
        run = {k: v for k, v in edit.items() if k not in ("calls_from", "responses_from")}
        run["calls"] = [*calls, *edit["calls"]]
        run["responses"] = [*responses, *edit["responses"]]
        if "op" in stored:
            run["op"] = stored["op"]
        return run
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.CorruptSnapshotError(
            f"a delta edits run {key}, which the snapshot it follows does not hold as "
            f"that edit needs ({type(exc).__name__}: {exc})"
        ) from None
