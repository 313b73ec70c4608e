"""A commit writes a key queue as an edit of the stored one (drop so many entries from
its head, add these at its tail), so that a long queue costs what changed, not its
length; stores written by main's version 3 (whole queues in every delta) still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reactive.core import messages as m
from reactive.core import snapshot as codec
from reactive.core.partition import Partition
from reactive.errors import CorruptSnapshotError
from reactive.hosting import execute_activity
from tests.core.queue_store import T0, AddToSlot, Hold, drive, schema, store_json

FIXTURES = Path(__file__).parent / "fixtures"
KEY1 = '["SlotKey","1"]'


def _json(data: Any) -> Any:
    return json.loads(json.dumps(data))


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


def _read(data: dict[str, Any]) -> str:
    """What a stored snapshot reads as: restored, then written whole again."""
    return _canonical(_json(Partition.restore(schema, _json(data)).snapshot()))


def _snapshots_today() -> list[dict[str, Any]]:
    """The whole snapshot at each checkpoint of the drive, as today's code writes it."""
    taken: list[dict[str, Any]] = []
    drive(lambda part, step: taken.append(_json(part.snapshot())))
    return taken


def _bring_forward(store: dict[str, Any]) -> list[dict[str, Any]]:
    """The stored snapshot after each of the store's deltas."""
    snapshot, steps = _json(store["base"]), []
    for delta in store["deltas"]:
        codec.apply_delta(snapshot, _json(delta))
        steps.append(_json(snapshot))
    return steps


def test_each_delta_brings_the_stored_snapshot_to_the_live_one() -> None:
    expected = _snapshots_today()[1:]
    steps = _bring_forward(store_json())
    assert len(steps) == len(expected) == 4
    for step, (brought, live) in enumerate(zip(steps, expected, strict=True), 1):
        assert _read(brought) == _canonical(live), f"after delta {step}"


def test_a_store_written_by_main_version_3_loads_as_if_written_today() -> None:
    old = json.loads((FIXTURES / "queue_store_v3.json").read_text(encoding="utf-8"))
    assert [old["base"]["v"], *(d["v"] for d in old["deltas"])] == [3] * 5
    # main wrote each changed queue whole
    assert all(not isinstance(v, dict) for d in old["deltas"] for v in d["queues"].values())
    expected = _snapshots_today()[1:]
    for step, (brought, live) in enumerate(
        zip(_bring_forward(old), expected, strict=True), 1
    ):
        assert _read(brought) == _canonical(live), f"after delta {step}"


def test_a_partition_restored_from_a_version_3_store_carries_on() -> None:
    old = json.loads((FIXTURES / "queue_store_v3.json").read_text(encoding="utf-8"))
    stored = _bring_forward({"base": old["base"], "deltas": old["deltas"][:2]})[-1]
    part = Partition.restore(schema, stored)
    assert [type(e.op).__name__ if isinstance(e, m.LocalOp) else "Acquire"
            for e in part.queues[("SlotKey", "1")]] == ["Acquire"] + ["AddToSlot"] * 4 + [
        "Acquire", "AddToSlot"]
    (task,) = part.pending_activities()  # h1 thinks while holding slots 1 and 2
    effects = part.process(execute_activity(schema, task, lambda level, text: None), T0 + 5)
    (second,) = effects.activities  # h2 now holds slots 1 and 3
    part.process(execute_activity(schema, second, lambda level, text: None), T0 + 7)
    totals = {key[1][1]: state.total for key, state in part.states.items()}  # type: ignore[attr-defined]
    # 1 + 10..13 + 30 + h1's 3 + h2's 4; 1 + 20 + h1's 3; h2's 4
    assert totals == {"1": 1 + 46 + 30 + 3 + 4, "2": 1 + 20 + 3, "3": 4}
    assert part.instance_status("h2") == {"name": "Hold", "status": "completed", "result": 4}


def test_one_more_waiter_on_a_long_queue_costs_one_entry_in_the_delta() -> None:
    part = Partition(schema, 0, 1)
    holder = part.process(m.Start(0, "h", Hold(first=1, second=2)), T0)
    assert holder.activities  # the lock is held while its activity runs
    for amount in range(50):
        part.process(m.LocalOp(0, f"w{amount}", AddToSlot(slot=1, amount=amount),
                               ("SlotKey", "1")), T0)
    stored = _json(part.snapshot())
    part.process(m.LocalOp(0, "late", AddToSlot(slot=1, amount=99), ("SlotKey", "1")), T0)
    delta = _json(part.take_delta())
    edit = delta["queues"][KEY1]
    assert edit["drop"] == 0 and [e["op_id"] for e in edit["add"]] == ["late"]
    codec.apply_delta(stored, delta)
    assert len(stored["queues"][KEY1][1]) == 52
    assert _read(stored) == _canonical(_json(part.snapshot()))


def test_a_queue_emptied_and_refilled_between_commits_is_written_whole() -> None:
    part = Partition(schema, 0, 1)
    first = part.process(m.Start(0, "h1", Hold(first=1, second=2)), T0)
    part.process(m.LocalOp(0, "a", AddToSlot(slot=1, amount=1), ("SlotKey", "1")), T0)
    stored = _json(part.snapshot())
    # h1 ends (its queue drains: "a" runs), then h2 takes slot 1 and "b" waits behind it
    part.process(execute_activity(schema, first.activities[0], lambda level, text: None), T0)
    part.process(m.Start(0, "h2", Hold(first=1, second=3)), T0)
    part.process(m.LocalOp(0, "b", AddToSlot(slot=1, amount=2), ("SlotKey", "1")), T0)
    delta = _json(part.take_delta())
    _, entries = delta["queues"][KEY1]  # nothing stored is left: the whole queue
    assert [e["t"] for e in entries] == ["Acquire", "LocalOp"]
    codec.apply_delta(stored, delta)
    assert _read(stored) == _canonical(_json(part.snapshot()))


def test_an_edit_of_a_queue_the_snapshot_lacks_is_a_one_line_error() -> None:
    store = store_json()
    edits = [d for d in store["deltas"]
             if isinstance(d["queues"].get(KEY1), dict)]
    assert edits  # the drive makes at least one
    snapshot = _json(store["base"])
    snapshot["queues"].pop(KEY1, None)
    with pytest.raises(CorruptSnapshotError) as caught:
        codec.apply_delta(snapshot, edits[0])
    assert KEY1 in str(caught.value) and "\n" not in str(caught.value)
