"""A commit writes a run the store already holds as an edit: its fields but the input,
and only the history rows added since the last commit, so that a commit costs what the
step added rather than the length of the run; stores written by main's version 4 (whole
runs in every delta) still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reactive import App, Orchestration, OrchestrationContext
from reactive.core import messages as m
from reactive.core import snapshot as codec
from reactive.core.partition import Partition
from reactive.errors import CorruptSnapshotError
from reactive.hosting import execute_activity
from tests.core.queue_store import T0, Hold, Think, drive, schema, store_json
from tests.core.test_queue_deltas import _bring_forward

FIXTURES = Path(__file__).parent / "fixtures"


def _json(data: Any) -> Any:
    return json.loads(json.dumps(data))


def _canonical(data: dict[str, Any]) -> str:
    return json.dumps(data, sort_keys=True)


def _read(data: dict[str, Any], on: Any = schema) -> str:
    """What a stored snapshot reads as: restored, then written whole again."""
    return _canonical(_json(Partition.restore(on, _json(data)).snapshot()))


def _quiet(level: int, text: str) -> None:
    pass


def test_each_delta_of_a_drive_carries_runs_as_edits_and_brings_the_store_forward() -> None:
    store = store_json()
    edits = [run for d in store["deltas"] for run in d["runs"].values()
             if run is not None and "calls_from" in run]
    assert edits and all("op" not in run for run in edits)
    taken: list[dict[str, Any]] = []
    drive(lambda part, step: taken.append(_json(part.snapshot())))
    for step, (brought, live) in enumerate(
        zip(_bring_forward(store), taken[1:], strict=True), 1
    ):
        assert _read(brought) == _canonical(live), f"after delta {step}"


def test_a_store_written_by_main_version_4_loads_as_if_written_today() -> None:
    old = json.loads((FIXTURES / "queue_store_v4.json").read_text(encoding="utf-8"))
    assert [old["base"]["v"], *(d["v"] for d in old["deltas"])] == [4] * 5
    # main wrote each changed run whole
    assert all("calls_from" not in run for d in old["deltas"] for run in d["runs"].values()
               if run is not None)
    taken: list[dict[str, Any]] = []
    drive(lambda part, step: taken.append(_json(part.snapshot())))
    for step, (brought, live) in enumerate(
        zip(_bring_forward(old), taken[1:], strict=True), 1
    ):
        assert _read(brought) == _canonical(live), f"after delta {step}"


def test_a_partition_restored_mid_run_writes_its_next_delta_as_an_edit_of_the_store() -> None:
    part = Partition(schema, 0, 1)
    first = part.process(m.Start(0, "h", Hold(first=1, second=2)), T0)
    stored = _json(part.snapshot())
    again = Partition.restore(schema, _json(stored))
    (task,) = again.pending_activities()
    assert task == first.activities[0]
    again.process(execute_activity(schema, task, _quiet), T0 + 1)
    delta = _json(again.take_delta())
    codec.apply_delta(stored, delta)
    assert _read(stored) == _canonical(_json(again.snapshot()))


class Looping(Orchestration[int]):
    """Thinks, then continues as new until ``left`` is 0: each generation a new history."""

    left: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        await ctx.perform(Think(n=self.left))
        if self.left:
            ctx.continue_as_new(Looping(left=self.left - 1))
        return 0


looping_app = App("run-deltas")
class TwoThinks(Orchestration[int]):
    left: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(Think(n=1)) + await ctx.perform(Think(n=2))


looping_app.register(Think)
looping_app.register(Looping)
looping_app.register(TwoThinks)
looping = looping_app.compile()


def test_a_stored_run_is_written_as_its_new_rows_without_its_input() -> None:
    part = Partition(looping, 0, 1)
    first = part.process(m.Start(0, "t", TwoThinks(left=0)), T0)
    stored = _json(part.snapshot())
    whole = stored["runs"]["t"]
    assert "op" in whole and len(whole["calls"]) == 1 and not whole["responses"]
    part.process(execute_activity(looping, first.activities[0], _quiet), T0 + 1)
    delta = _json(part.take_delta())
    live = _json(part.snapshot())["runs"]["t"]
    edit = delta["runs"]["t"]
    assert "op" not in edit and (edit["calls_from"], edit["responses_from"]) == (1, 0)
    assert len(live["calls"]) == 2 and edit["calls"] == live["calls"][1:]
    assert len(live["responses"]) == 1 and edit["responses"] == live["responses"]
    codec.apply_delta(stored, delta)
    assert _read(stored, looping) == _canonical(_json(part.snapshot()))


def test_continue_as_new_writes_the_new_history_and_input_whole() -> None:
    part = Partition(looping, 0, 1)
    effects = part.process(m.Start(0, "l", Looping(left=2)), T0)
    stored = _json(part.snapshot())
    for step in range(3):
        (task,) = effects.activities
        effects = part.process(execute_activity(looping, task, _quiet), T0 + step)
        delta = _json(part.take_delta())
        run = delta["runs"]["l"]
        if run is not None:  # a new generation: whole, with its new input
            assert "calls_from" not in run
            assert run["op"][1] == {"left": 1 - step}
        codec.apply_delta(stored, delta)
        assert _read(stored, looping) == _canonical(_json(part.snapshot()))
    assert part.instance_status("l") == {"name": "Looping", "status": "completed", "result": 0}


def test_an_edit_of_a_run_the_snapshot_holds_otherwise_is_a_one_line_error() -> None:
    store = store_json()
    at = next(i for i, d in enumerate(store["deltas"])
              if any(r is not None and "calls_from" in r for r in d["runs"].values()))
    snapshot = _bring_forward({"base": store["base"], "deltas": store["deltas"][:at]})[-1] \
        if at else _json(store["base"])
    key = next(k for k, r in store["deltas"][at]["runs"].items()
               if r is not None and "calls_from" in r)
    snapshot["runs"][key]["calls"].append(["perform Extra#00000000"])
    with pytest.raises(CorruptSnapshotError) as caught:
        codec.apply_delta(snapshot, store["deltas"][at])
    assert key in str(caught.value) and "\n" not in str(caught.value)
