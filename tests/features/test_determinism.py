"""Determinism: ctx.now()/new_guid()/new_random() replay to the same values, and a replay
that makes a different call fails the instance with NonDeterminismError."""

from __future__ import annotations

import json
import sys
from typing import Any
from uuid import UUID

import pytest

from hosts.emulator import Emulator, Faults
from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    NonDeterminismError,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    Update,
    UpdateContext,
)
from reactive.core.partition import Partition, apply_delta
from tests.features._support import (
    fault_free_and_faulty,
    faults,
    instance_owner,
    snapshot_bytes,
)


class RecordKey(Affinity):
    record: str


class Record(State[RecordKey]):
    values: list[Any] = []


class Append(RecordKey, Update[Record, None], create=True):
    value: Any

    def execute(self, ctx: UpdateContext[Record]) -> None:
        ctx.state.values.append(self.value)


class Recorded(RecordKey, Read[Record, list[Any]]):
    def execute(self, ctx: ReadContext[Record]) -> list[Any]:
        return list(ctx.state.values)


class Nothing(Activity[int]):
    def execute(self, ctx: ActivityContext) -> int:
        return 0


def draw(ctx: OrchestrationContext) -> dict[str, Any]:
    rng = ctx.new_random()
    return {
        "now": ctx.now().isoformat(),
        "guid": str(ctx.new_guid()),
        "random": [rng.random() for _ in range(3)],
        "randint": ctx.new_random().randint(0, 10**9),
    }


class Draws(Orchestration[list[dict[str, Any]]]):
    """Draws values, stores them, then waits (timers, an activity) so that restores replay
    the draws; returns every draw as recomputed at the end."""

    record: str

    async def execute(self, ctx: OrchestrationContext) -> list[dict[str, Any]]:
        draws = []
        for step in range(3):
            values = draw(ctx)
            draws.append(values)
            await ctx.perform(Append(record=self.record, value=values))
            await ctx.sleep(60 * (step + 1))
            await ctx.perform(Nothing())
        return draws


app = App("determinism")
app.register(Draws, Append, Recorded, Nothing)


def _draws_scenario(em: Emulator) -> list[dict[str, Any]]:
    client = em.client()
    iid = client.start(Draws(record="r"), instance_id="draws")
    returned: list[dict[str, Any]] = client.wait(iid)
    stored = client.perform(Recorded(record="r"))
    assert returned == stored  # the values drawn at first == the values replay produced
    return returned


def test_guid_and_random_replay_identically_and_match_the_fault_free_run() -> None:
    def scenario(em: Emulator) -> Any:
        return [
            {"guid": d["guid"], "random": d["random"], "randint": d["randint"]}
            for d in _draws_scenario(em)
        ]

    draws = fault_free_and_faulty(app, scenario)
    assert len(draws) == 3
    guids = [d["guid"] for d in draws]
    assert len(set(guids)) == 3
    assert all(UUID(g).version == 4 for g in guids)
    randoms = [tuple(d["random"]) for d in draws]
    assert len(set(randoms)) == 3


def test_now_replays_identically_and_matches_the_fault_free_run() -> None:
    def scenario(em: Emulator) -> Any:
        return [d["now"] for d in _draws_scenario(em)]

    times = fault_free_and_faulty(app, scenario, same_on_every_host=False)
    assert times == sorted(times) and len(set(times)) == 3


def test_values_recomputed_on_replay_match_the_values_first_drawn_under_restores() -> None:
    for seed in range(4):
        em = Emulator(app, partitions=3, seed=seed, faults=faults(seed))
        _draws_scenario(em)
        assert em.restores > 0


def test_values_differ_between_instances() -> None:
    client = Emulator(app, partitions=2).client()
    first = client.perform(Draws(record="a"))
    second = client.perform(Draws(record="b"))
    assert [d["guid"] for d in first] != [d["guid"] for d in second]
    assert [d["random"] for d in first] != [d["random"] for d in second]


def test_now_survives_snapshot_and_restore_of_a_waiting_instance() -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    iid = client.start(Draws(record="snap"), instance_id="snap")
    # run until the first draw is stored and the instance sleeps
    assert em.run(until=lambda: any(p.states for p in em.parts))
    while em.step():
        pass
    home = instance_owner(em, iid)
    before = em.parts[home].runs[iid].calls
    em.parts[home] = Partition.restore(em.schema, snapshot_bytes(em.parts[home]))
    assert em.parts[home].runs[iid].calls == before
    assert em.parts[home].take_effects().sends == []
    result = client.wait(iid)
    assert result == client.perform(Recorded(record="snap"))


# -- non-determinism ----------------------------------------------------------------------------

BRANCH = "left"  # orchestration code branches on this module-level flag


class GoLeft(Activity[str]):
    def execute(self, ctx: ActivityContext) -> str:
        return "left"


class GoRight(Activity[str]):
    def execute(self, ctx: ActivityContext) -> str:
        return "right"


class Branchy(Orchestration[str]):
    wait: str  # "timer" or "event"

    async def execute(self, ctx: OrchestrationContext) -> str:
        module = sys.modules[__name__]
        if module.BRANCH == "left":
            went = await ctx.perform(GoLeft())
        else:
            went = await ctx.perform(GoRight())
        if self.wait == "timer":
            await ctx.sleep(3600)
        else:
            await ctx.wait_for_event("go")
        return went


class CallsBranchy(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            return await ctx.perform(Branchy(wait="event"))
        except NonDeterminismError as exc:
            return f"child failed: {exc}"


nd_app = App("nondeterminism")
nd_app.register(Branchy, GoLeft, GoRight, CallsBranchy)


def _run_until_waiting(em: Emulator, iid: str) -> int:
    """Deliver everything (no timer fires), so the instance waits on its timer or event."""
    while em.step():
        pass
    home = instance_owner(em, iid)
    assert iid in em.parts[home].runs
    return home


@pytest.mark.parametrize("wait", ["timer", "event"])
def test_changed_code_fails_the_restored_instance_with_non_determinism_error(
    wait: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    em = Emulator(nd_app, partitions=3)
    client = em.client()
    iid = client.start(Branchy(wait=wait), instance_id=f"branchy-{wait}")
    home = _run_until_waiting(em, iid)
    data = snapshot_bytes(em.parts[home])

    monkeypatch.setattr(sys.modules[__name__], "BRANCH", "right")
    restored = Partition.restore(em.schema, data)
    em.parts[home] = restored

    status = client.status(iid)
    assert status is not None
    assert status.status == "failed"
    error = status.error
    assert isinstance(error, NonDeterminismError)
    message = str(error)
    assert "Branchy" in message
    assert iid in message
    assert "call #1 " in message  # the position of the diverging call, counted from 1
    assert "GoRight" in message and "GoLeft" in message  # both calls
    with pytest.raises(NonDeterminismError):
        client.wait(iid)
    assert iid not in restored.runs


@pytest.mark.parametrize("wait", ["timer", "event"])
def test_unchanged_code_replays_faithfully_and_completes(wait: str) -> None:
    em = Emulator(nd_app, partitions=3)
    client = em.client()
    iid = client.start(Branchy(wait=wait), instance_id=f"faithful-{wait}")
    home = _run_until_waiting(em, iid)
    restored = Partition.restore(em.schema, snapshot_bytes(em.parts[home]))
    effects = restored.take_effects()
    assert effects.sends == [] and effects.activities == [] and effects.errors == []
    em.parts[home] = restored
    status = client.status(iid)
    assert status is not None and status.status == "running"
    if wait == "event":
        client.raise_event(iid, "go")
    assert client.wait(iid) == "left"


def test_non_determinism_in_a_child_reaches_the_awaiting_parent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    em = Emulator(nd_app, partitions=3)
    client = em.client()
    parent = client.start(CallsBranchy(), instance_id="parent")
    child = f"{parent}:0"
    while em.step():
        pass
    home = instance_owner(em, child)
    assert child in em.parts[home].runs
    data = snapshot_bytes(em.parts[home])
    monkeypatch.setattr(sys.modules[__name__], "BRANCH", "right")
    restored = Partition.restore(em.schema, data)
    em.parts[home] = restored
    for msg in restored.take_effects().sends:  # the failure goes to the parent's partition
        em.submit(msg)
    result = client.wait(parent)
    assert result.startswith("child failed: ")
    assert "GoRight" in result and "GoLeft" in result


# -- an orchestration that changes its own fields -------------------------------------------------


class Echo(Activity[int]):
    value: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.value


class CountsInItsFields(Orchestration[int]):
    """Uses its own field as a loop counter: replay must start from the input as received."""

    n: int = 0
    seen: list[int] = []

    async def execute(self, ctx: OrchestrationContext) -> int:
        total = 0
        while self.n < 3:
            total += await ctx.perform(Echo(value=self.n))
            self.seen.append(self.n)
            self.n += 1
        return total


mutating_app = App("mutating")
mutating_app.register(CountsInItsFields, Echo)


def test_changing_its_own_fields_does_not_break_replay() -> None:
    def scenario(em: Emulator) -> Any:
        return em.client().perform(CountsInItsFields())

    assert scenario(Emulator(mutating_app, partitions=2)) == 3
    for seed in range(3):
        em = Emulator(
            mutating_app, partitions=2, faults=Faults(restore_probability=1.0, seed=seed)
        )
        assert scenario(em) == 3
        assert em.restores > 0


def test_the_caller_s_object_and_the_recorded_input_stay_as_given() -> None:
    em = Emulator(mutating_app, partitions=1)
    client = em.client()
    op = CountsInItsFields(n=1)
    iid = client.start(op, instance_id="given")
    assert client.wait(iid) == 3  # 1 + 2
    assert (op.n, op.seen) == (1, [])


# -- a NonDeterminismError is final ---------------------------------------------------------------


@pytest.mark.parametrize("wait", ["timer", "event"])
def test_a_non_determinism_failure_is_final_and_reported(
    wait: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    em = Emulator(nd_app, partitions=3)
    client = em.client()
    iid = client.start(Branchy(wait=wait), instance_id=f"final-{wait}")
    home = _run_until_waiting(em, iid)
    stored = snapshot_bytes(em.parts[home])  # what the host's store holds

    monkeypatch.setattr(sys.modules[__name__], "BRANCH", "right")  # a bad deployment
    diverged = Partition.restore(em.schema, json.loads(json.dumps(stored)))
    effects = diverged.take_effects()
    assert any("NonDeterminismError" in e and iid in e for e in effects.errors)
    assert diverged.take_status_changes()[iid]["status"] == "failed"
    apply_delta(stored, json.loads(json.dumps(diverged.take_delta())))  # the host commits

    monkeypatch.setattr(sys.modules[__name__], "BRANCH", "left")  # rolled back
    em.parts[home] = Partition.restore(em.schema, stored)
    status = client.status(iid)
    assert status is not None and status.status == "failed"
    assert isinstance(status.error, NonDeterminismError)
    assert iid not in em.parts[home].runs
