"""The sans-IO partition: a deterministic state machine driven by messages, without a host."""

from __future__ import annotations

import json
from collections import deque
from typing import Any

import pytest

from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    UnknownOperationError,
    Update,
    UpdateContext,
)
from reactive.core import messages as m
from reactive.core.partition import Effects, Partition
from reactive.errors import CorruptSnapshotError
from reactive.hosting import execute_activity

T0 = 1_000_000.0


class CellKey(Affinity):
    cell: str


class Cell(State[CellKey]):
    value: int = 0


class AddTo(CellKey, Update[Cell, int], create=True):
    amount: int

    def execute(self, ctx: UpdateContext[Cell]) -> int:
        ctx.state.value += self.amount
        return ctx.state.value


class ValueOf(CellKey, Read[Cell, int]):
    def execute(self, ctx: ReadContext[Cell]) -> int:
        return ctx.state.value


class Square(Activity[int]):
    n: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.n * self.n


class Job(Orchestration[int]):
    cell: str
    n: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        squared = await ctx.perform(Square(n=self.n))
        await ctx.sleep(60)
        return await ctx.perform(AddTo(cell=self.cell, amount=squared))


class Move(Orchestration[list[int]], lock=True):
    a: str
    b: str

    def affinities(self) -> list[Affinity]:
        return [CellKey(cell=self.a), CellKey(cell=self.b)]

    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        first = await ctx.perform(AddTo(cell=self.a, amount=-1))
        second = await ctx.perform(AddTo(cell=self.b, amount=1))
        return [first, second]


class Boot(Orchestration[None], startup=True):
    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.perform(AddTo(cell="boot", amount=1))


app = App("partition")
app.register(AddTo, ValueOf, Square, Job, Move, Boot)
schema = app.compile()


def wire(effects: Effects) -> dict[str, Any]:
    """Effects in comparable form."""
    return {
        "sends": [m.to_wire(msg, schema) for msg in effects.sends],
        "activities": [
            [t.partition, t.instance_id, t.call, t.attempt, schema.encode_op(t.op)]
            for t in effects.activities
        ],
        "logs": effects.logs,
        "errors": effects.errors,
    }


def as_json(part: Partition) -> str:
    return json.dumps(part.snapshot(), sort_keys=True)


def result_of(effects: Effects, task_index: int = 0) -> m.ActivityResult:
    task = effects.activities[task_index]
    return execute_activity(schema, task, lambda level, text: None)


# -- one partition ----------------------------------------------------------------------------


def test_an_orchestration_runs_step_by_step_on_its_inputs() -> None:
    part = Partition(schema, 0, 1)
    part.first_start(T0)
    effects = part.process(m.Start(0, "job", Job(cell="c", n=3)), T0)
    assert effects.sends == []
    assert len(effects.activities) == 1  # the host must run Square; nothing else happens
    assert part.instance_status("job") == {"status": "running", "name": "Job"}

    effects = part.process(result_of(effects), T0 + 1)
    assert effects.activities == [] and effects.sends == []
    due = part.next_due()
    assert due == pytest.approx(T0 + 61)

    assert part.process(m.Tick(0), T0 + 30).sends == []  # not due yet
    assert part.instance_status("job") == {"status": "running", "name": "Job"}

    part.process(m.Tick(0), T0 + 61)  # the update is local: processed in the same call
    status = part.instance_status("job")
    assert status is not None
    assert status["status"] == "completed" and status["result"] == 9
    assert part.next_due() is None


def test_starting_an_instance_twice_is_a_no_op() -> None:
    part = Partition(schema, 0, 1)
    first = part.process(m.Start(0, "same", Job(cell="c", n=2)), T0)
    again = part.process(m.Start(0, "same", Job(cell="c", n=5)), T0)
    assert len(first.activities) == 1
    assert wire(again) == wire(Effects())


def test_duplicate_activity_results_are_ignored() -> None:
    part = Partition(schema, 0, 1)
    effects = part.process(m.Start(0, "job", Job(cell="c", n=4)), T0)
    result = result_of(effects)
    part.process(result, T0)
    before = as_json(part)
    duplicate = part.process(result, T0)
    assert wire(duplicate) == wire(Effects())
    assert as_json(part) == before


def test_same_inputs_give_the_same_effects_and_snapshots() -> None:
    def drive() -> tuple[list[dict[str, Any]], str]:
        part = Partition(schema, 0, 1)
        log = [wire(part.first_start(T0))]
        effects = part.process(m.Start(0, "j1", Job(cell="c", n=2)), T0 + 1)
        log.append(wire(effects))
        effects2 = part.process(m.Start(0, "j2", Job(cell="c", n=3)), T0 + 2)
        log.append(wire(effects2))
        log.append(wire(part.process(result_of(effects2), T0 + 3)))
        log.append(wire(part.process(result_of(effects), T0 + 4)))
        log.append(wire(part.process(m.Tick(0), T0 + 100)))
        return log, as_json(part)

    assert drive() == drive()


def test_snapshot_restore_round_trip_continues_identically() -> None:
    original = Partition(schema, 0, 1)
    effects = original.process(m.Start(0, "job", Job(cell="c", n=5)), T0)
    original.process(result_of(effects), T0 + 1)  # now sleeping

    data = json.loads(json.dumps(original.snapshot()))
    restored = Partition.restore(schema, data)
    assert wire(restored.take_effects()) == wire(Effects())  # a faithful replay is silent
    assert as_json(restored) == as_json(original)
    assert restored.next_due() == original.next_due()

    a = original.process(m.Tick(0), T0 + 100)
    b = restored.process(m.Tick(0), T0 + 100)
    assert wire(a) == wire(b)
    assert as_json(restored) == as_json(original)
    status = restored.instance_status("job")
    assert status is not None and status["result"] == 25


def test_a_restored_partition_lists_its_pending_activities() -> None:
    part = Partition(schema, 0, 1)
    effects = part.process(m.Start(0, "job", Job(cell="c", n=6)), T0)
    restored = Partition.restore(schema, json.loads(json.dumps(part.snapshot())))
    pending = restored.pending_activities()
    assert len(pending) == 1
    assert pending[0].op == effects.activities[0].op
    assert (pending[0].instance_id, pending[0].call, pending[0].attempt) == ("job", 0, 1)
    # the rerun's result is accepted once
    restored.process(execute_activity(schema, pending[0], lambda level, text: None), T0)
    assert restored.pending_activities() == []
    assert restored.next_due() is not None


def test_restore_rejects_unknown_snapshot_versions() -> None:
    data = Partition(schema, 0, 1).snapshot()
    data["v"] = 999
    with pytest.raises(CorruptSnapshotError):
        Partition.restore(schema, data)


def test_startup_orchestrations_start_once_on_partition_zero() -> None:
    zero, one = Partition(schema, 0, 2), Partition(schema, 1, 2)
    assert wire(one.first_start(T0)) == wire(Effects())
    first = zero.first_start(T0)
    assert first.sends or zero.runs  # Boot was started (here or at its owner)
    restored = Partition.restore(schema, json.loads(json.dumps(zero.snapshot())))
    assert wire(restored.first_start(T0)) == wire(Effects())


# -- several partitions, routed by hand --------------------------------------------------------


class Router:
    """Delivers sends in FIFO order and runs activities inline: a minimal host."""

    def __init__(self, count: int) -> None:
        self.parts = [Partition(schema, i, count) for i in range(count)]
        self.queue: deque[m.Message] = deque()
        self.now = T0

    def apply(self, effects: Effects) -> None:
        self.queue.extend(effects.sends)
        for task in effects.activities:
            self.queue.append(execute_activity(schema, task, lambda level, text: None))

    def submit(self, msg: m.Message) -> None:
        self.queue.append(msg)
        self.drain()

    def drain(self) -> None:
        while True:
            while self.queue:
                msg = self.queue.popleft()
                msg = m.from_wire(json.loads(json.dumps(m.to_wire(msg, schema))), schema)
                self.now += 0.001
                self.apply(self.parts[msg.dest].process(msg, self.now))
            dues = [(d, p.index) for p in self.parts if (d := p.next_due()) is not None]
            if not dues:
                return
            due, index = min(dues)
            self.now = max(self.now, due)
            self.apply(self.parts[index].process(m.Tick(index), self.now))

    def cell(self, key: str) -> int | None:
        """The value of the Cell at ``key``, read where it lives."""
        skey = ("Cell", ("CellKey", json.dumps(key)))
        owner = schema.owner(skey[1], len(self.parts))
        assert all(skey not in p.states for p in self.parts if p.index != owner)
        state = self.parts[owner].states.get(skey)
        return state.value if isinstance(state, Cell) else None

    def status(self, iid: str) -> dict[str, Any] | None:
        found = self.parts[schema.instance_owner(iid, len(self.parts))].instance_status(iid)
        return None if found is None else dict(found)


def test_partitions_cooperate_through_messages_only() -> None:
    router = Router(3)
    for i, n in enumerate(range(1, 6)):
        iid = f"job{i}"
        router.submit(m.Start(schema.instance_owner(iid, 3), iid, Job(cell="shared", n=n)))
    for i in range(5):
        status = router.status(f"job{i}")
        assert status is not None and status["status"] == "completed"
    results = sorted(router.status(f"job{i}")["result"] for i in range(5))  # type: ignore[index]
    assert results[-1] == sum(n * n for n in range(1, 6))
    assert router.cell("shared") == 55


def test_locked_orchestrations_across_partitions_complete() -> None:
    router = Router(4)
    keys = ["x", "y", "z"]
    for i in range(12):
        a, b = keys[i % 3], keys[(i + 1) % 3]
        if i % 2:
            a, b = b, a
        router.submit(m.Start(schema.instance_owner(f"mv{i}", 4), f"mv{i}", Move(a=a, b=b)))
    assert all(router.status(f"mv{i}")["status"] == "completed" for i in range(12))  # type: ignore[index]
    total = sum(router.cell(k) or 0 for k in keys)
    assert total == 0
    assert all(not p.queues for p in router.parts)  # every lock was released


# -- wire form ----------------------------------------------------------------------------------


def test_messages_round_trip_through_json() -> None:
    samples: list[m.Message] = [
        m.Start(1, "iid", Job(cell="c", n=1), m.Reply(0, "parent", 3, False),
                (("CellKey", '"c"'),)),
        m.Response(0, "iid", 2, True, {"x": [1, 2]}),
        m.LocalOp(2, "op", AddTo(cell="c", amount=1), ("CellKey", '"c"'), m.Reply(1, "i", 0, True),
                  True),
        m.Acquire(0, "lock", (("CellKey", '"a"'), ("CellKey", '"b"')), 1, None, None),
        m.Tick(3),
        m.RaiseEvent(1, "iid", "approved", {"by": "ann"}),
        m.Terminate(1, "iid", "why"),
    ]
    for msg in samples:
        data = json.loads(json.dumps(m.to_wire(msg, schema)))
        assert m.from_wire(data, schema) == msg


def test_garbage_on_the_wire_raises_unknown_operation_error() -> None:
    with pytest.raises(UnknownOperationError):
        m.from_wire({"t": "Nonsense"}, schema)
    with pytest.raises(UnknownOperationError):
        m.from_wire({"t": "Start", "dest": 0, "instance_id": "x", "op": ["NoSuchOp", {}]}, schema)
    with pytest.raises(UnknownOperationError):
        m.from_wire({"t": "Tick", "dest": 0, "bogus": 1}, schema)
