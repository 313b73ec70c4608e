"""The snapshot codec: records are read by field name, so snapshots written before a field
was added still load, snapshots from main's version 2 load, and a snapshot from a newer
version fails with a one-line error naming that version."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import pytest

from reactive.core import messages as m
from reactive.core import snapshot as codec
from reactive.core.partition import Partition
from reactive.core.partition_base import HeldAnswer, PendingActivity, Settling
from reactive.errors import CorruptSnapshotError
from tests.core.snapshot_app import T0, drive, schema, snapshot_json

FIXTURES = Path(__file__).parent / "fixtures"


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


def _restored(data: dict[str, Any]) -> Partition:
    return Partition.restore(schema, json.loads(json.dumps(data)))


def test_a_version_2_snapshot_written_by_main_loads_as_if_written_today() -> None:
    old = json.loads((FIXTURES / "snapshot_v2.json").read_text(encoding="utf-8"))
    assert old["v"] == 2  # written by main's code, before the layouts
    restored = _restored(old)
    assert _canonical(json.loads(json.dumps(restored.snapshot()))) == _canonical(
        snapshot_json()
    )


def test_a_restored_old_snapshot_carries_on_with_its_timers_and_activities() -> None:
    old = json.loads((FIXTURES / "snapshot_v2.json").read_text(encoding="utf-8"))
    part = _restored(old)
    pending = part.pending_activities()
    assert [(t.instance_id, t.attempt, type(t.op).__name__) for t in pending] == [
        ("pending", 1, "Double")
    ]
    retry = part.process(m.Tick(0), T0 + 10_000)  # every timer is due
    assert [(t.instance_id, t.attempt) for t in retry.activities] == [("retrying", 2)]
    assert part.instance_status("sleeper") == {
        "name": "SleepThenAdd", "status": "completed", "result": 5,
    }
    assert part.instance_status("done") == {"name": "Doubling", "status": "completed",
                                             "result": 8}


@dataclass(slots=True)
class _PendingActivityWithPriority(PendingActivity):
    """The record as a later version might have it: one more field, with a default."""

    priority: int = 0


def test_a_snapshot_written_before_a_field_was_added_loads_with_its_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = json.loads(json.dumps(drive().snapshot()))
    layout = (*codec.LAYOUTS["activity"], "priority")
    monkeypatch.setattr(codec, "PendingActivity", _PendingActivityWithPriority)
    monkeypatch.setattr(codec, "_ACTIVITY", layout)
    monkeypatch.setitem(codec.LAYOUTS, "activity", layout)

    part = Partition.restore(schema, before)
    loaded = part.activities[("retrying", 0)]
    assert isinstance(loaded, _PendingActivityWithPriority)
    assert (loaded.priority, loaded.attempt, loaded.waiting_retry) == (0, 2, True)
    assert loaded.policy is not None and loaded.policy.max_attempts == 3


def test_the_activity_row_follows_its_layout_and_names_every_field() -> None:
    part = drive()
    pending = part.activities[("retrying", 0)]
    row = codec._activity_row(schema, "retrying", 0, pending)
    by_name = dict(zip(codec.LAYOUTS["activity"], row, strict=True))
    names = {f.name for f in fields(PendingActivity)}
    assert set(by_name) == names | {"instance_id", "call"}
    for name in names - {"op", "policy"}:
        assert by_name[name] == getattr(pending, name), name
    assert by_name["op"] == schema.encode_op(pending.op)
    assert by_name["policy"] == asdict(pending.policy)  # type: ignore[arg-type]


def test_fields_are_read_by_name_not_by_position() -> None:
    data = json.loads(json.dumps(drive().snapshot()))
    head = data["head"]
    layout = head["layouts"]["activity"]
    order = sorted(range(len(layout)), key=lambda i: layout[i])
    head["layouts"]["activity"] = [layout[i] for i in order]
    head["activities"] = [[row[i] for i in order] for row in head["activities"]]
    assert _canonical(Partition.restore(schema, data).snapshot()) == _canonical(
        drive().snapshot()
    )


def test_a_field_the_code_no_longer_has_is_a_one_line_error() -> None:
    data = json.loads(json.dumps(drive().snapshot()))
    data["head"]["layouts"]["timer"] = [*data["head"]["layouts"]["timer"], "jitter"]
    data["head"]["timers"] = [[*row, 0.5] for row in data["head"]["timers"]]
    with pytest.raises(CorruptSnapshotError, match="timer") as caught:
        Partition.restore(schema, data)
    assert "\n" not in str(caught.value)


def test_a_snapshot_from_a_future_version_is_refused_naming_the_version() -> None:
    data = json.loads(json.dumps(drive().snapshot()))
    data["v"] = codec.SNAPSHOT_VERSION + 1
    with pytest.raises(CorruptSnapshotError) as caught:
        Partition.restore(schema, data)
    message = str(caught.value)
    assert f"version {codec.SNAPSHOT_VERSION + 1}" in message and "\n" not in message


def test_a_delta_on_an_old_snapshot_brings_it_to_the_current_version() -> None:
    old = json.loads((FIXTURES / "snapshot_v2.json").read_text(encoding="utf-8"))
    part = _restored(old)
    part.process(m.Tick(0), T0 + 10_000)
    codec.apply_delta(old, json.loads(json.dumps(part.take_delta())))
    assert old["v"] == codec.SNAPSHOT_VERSION
    # runs the delta did not touch keep their old rows (a call row may lack its value):
    # the same partition once read, so compare what it reads as
    brought = Partition.restore(schema, old).snapshot()
    assert _canonical(json.loads(json.dumps(brought))) == _canonical(
        json.loads(json.dumps(part.snapshot()))
    )


def test_a_held_release_and_answer_survive_the_codec_in_both_versions() -> None:
    held = Settling(
        [3], ("x#0", (("TallyKey", "t"),)), HeldAnswer(m.Reply(0, "p", 1, False), True, 5, "s")
    )
    part = drive()
    part.settling["x"] = held
    assert Partition.restore(schema, json.loads(json.dumps(part.snapshot()))).settling == {
        "x": held
    }
    old = json.loads((FIXTURES / "snapshot_v2.json").read_text(encoding="utf-8"))
    old["head"]["settling"] = {"x": {  # as main wrote it
        "wait": [3], "release": ["x#0", [["TallyKey", "t"]]],
        "reply": [[0, "p", 1, False], True, 5, "s"],
    }}
    assert Partition.restore(schema, old).settling == {"x": held}


def test_a_commit_repeats_no_layouts_once_the_store_has_them() -> None:
    """The layouts travel in full snapshots, and in a delta only while the stored head
    lacks them: a delta is written on every commit and must stay small."""
    part = drive()
    stored = json.loads(json.dumps(part.snapshot()))
    part.process(m.Tick(0), T0 + 10_000)
    delta = json.loads(json.dumps(part.take_delta()))
    assert "layouts" not in delta["head"]
    codec.apply_delta(stored, delta)
    assert stored["head"]["layouts"]  # carried forward: the head still names its rows
    assert _canonical(json.loads(json.dumps(_restored(stored).snapshot()))) == _canonical(
        json.loads(json.dumps(part.snapshot()))
    )
    # a partition read from a store that lacks them (main's version 2) names them once
    old = json.loads((FIXTURES / "snapshot_v2.json").read_text(encoding="utf-8"))
    again = _restored(old)
    again.process(m.Tick(0), T0 + 10_000)
    first, second = again.take_delta(), again.take_delta()
    assert "layouts" in first["head"] and "layouts" not in second["head"]
