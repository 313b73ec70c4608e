"""continue_as_new: eternal loops restart with new input and a fresh, small history."""

from __future__ import annotations

from typing import Any

import pytest

from hosts.emulator import Emulator
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
    TerminatedError,
    Update,
    UpdateContext,
)
from tests.features._support import fault_free_and_faulty, instance_owner


class Increment(Activity[int]):
    value: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.value + 1


class Counter(Orchestration[int]):
    """Counts to ``limit`` one generation at a time; each generation makes a few calls."""

    value: int = 0
    limit: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        if self.value >= self.limit:
            return self.value
        ctx.log.info("generation %d", self.value)
        await ctx.sleep(60)
        value = await ctx.perform(Increment(value=self.value))
        ctx.continue_as_new(Counter(value=value, limit=self.limit))


class Guarded(Orchestration[int]):
    """continue_as_new inside ``try/except Exception`` must still continue."""

    value: int = 0

    async def execute(self, ctx: OrchestrationContext) -> int:
        if self.value == 3:
            return self.value
        try:
            await ctx.sleep(1)
            ctx.continue_as_new(Guarded(value=self.value + 1))
        except Exception:
            return -1
        return -2


class EventLoop(Orchestration[list[str]]):
    """One event per generation; events raised early carry over to later generations."""

    seen: list[str] = []
    want: int

    async def execute(self, ctx: OrchestrationContext) -> list[str]:
        if len(self.seen) == self.want:
            return self.seen
        item = await ctx.wait_for_event("item")
        ctx.continue_as_new(EventLoop(seen=[*self.seen, item], want=self.want))


class Forever(Orchestration[None]):
    generation: int = 0

    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.sleep(10)
        ctx.continue_as_new(Forever(generation=self.generation + 1))


class LockKey(Affinity):
    lock: str


class Cell(State[LockKey]):
    notes: list[str] = []


class Note(LockKey, Update[Cell, None], create=True):
    text: str

    def execute(self, ctx: UpdateContext[Cell]) -> None:
        ctx.state.notes.append(self.text)


class Notes(LockKey, Read[Cell, list[str]]):
    def execute(self, ctx: ReadContext[Cell]) -> list[str]:
        return list(ctx.state.notes)


class LockedLoop(LockKey, Orchestration[int], lock=True):
    """Holds its key during each generation; continues as new with the lock re-acquired."""

    generation: int = 0

    async def execute(self, ctx: OrchestrationContext) -> int:
        if self.generation == 4:
            return self.generation
        await ctx.perform(Note(lock=self.lock, text=f"start {self.generation}"))
        await ctx.sleep(10)
        await ctx.perform(Note(lock=self.lock, text=f"end {self.generation}"))
        ctx.continue_as_new(LockedLoop(lock=self.lock, generation=self.generation + 1))


class Intruder(LockKey, Orchestration[None], lock=True):
    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.perform(Note(lock=self.lock, text="intruder"))


app = App("continue-as-new")
app.register(Counter, Increment, Guarded, EventLoop, Forever, LockedLoop, Intruder, Notes, Note)


def _run_tracking_history(em: Emulator, iid: str) -> tuple[int, int, set[int]]:
    """Wait for the instance while recording the largest call and response history its
    live Run ever had, and which generation inputs it ran with."""
    client = em.client()
    home = instance_owner(em, iid)
    longest_calls = longest_responses = 0
    values: set[int] = set()

    def done() -> bool:
        nonlocal longest_calls, longest_responses
        run = em.parts[home].runs.get(iid)
        if run is not None:
            longest_calls = max(longest_calls, len(run.calls))
            longest_responses = max(longest_responses, len(run.responses))
            values.add(getattr(run.op, "value", -1))
        status = client.status(iid)
        return status is not None and status.done

    assert em.run(until=done)
    return longest_calls, longest_responses, values


def test_counter_continues_as_new_and_keeps_a_small_history() -> None:
    generations = 50
    em = Emulator(app, partitions=3)
    client = em.client()
    iid = client.start(Counter(limit=generations), instance_id="counter")
    calls, responses, values = _run_tracking_history(em, iid)
    assert client.wait(iid) == generations
    assert calls <= 3, f"history grew to {calls} calls"
    assert responses <= 3, f"history grew to {responses} responses"
    assert len(values) >= generations // 2  # it really ran many generations in one instance
    lines = [line for line in em.app_lines() if line.startswith("generation ")]
    assert lines == [f"generation {i}" for i in range(generations)]


def test_counter_result_is_identical_under_faults() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(Counter(limit=15), instance_id="counter")
        result = client.wait(iid)
        lines = [line for line in em.app_lines() if line.startswith("generation ")]
        return result, lines

    result, lines = fault_free_and_faulty(app, scenario)
    assert result == 15
    assert lines == [f"generation {i}" for i in range(15)]


def test_status_stays_running_between_generations_and_ends_completed() -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    iid = client.start(Counter(limit=5), instance_id="status")
    seen: set[str] = set()

    def done() -> bool:
        status = client.status(iid)
        assert status is not None
        seen.add(status.status)
        return status.done

    em.run(until=done)
    assert "running" in seen
    assert seen <= {"pending", "running", "completed"}
    status = client.status(iid)
    assert status is not None and status.status == "completed" and status.result == 5


def test_continue_as_new_is_not_swallowed_by_except_exception() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        return client.wait(client.start(Guarded(), instance_id="guarded"))

    assert fault_free_and_faulty(app, scenario) == 3


def test_unconsumed_events_carry_over_to_the_next_generation() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(EventLoop(want=3), instance_id="events")
        while em.step():
            pass
        for item in ("a", "b", "c"):
            client.raise_event(iid, "item", item)
        return client.wait(iid)

    assert fault_free_and_faulty(app, scenario) == ["a", "b", "c"]


def test_an_eternal_loop_can_be_terminated() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(Forever(), instance_id="forever")
        start = em.now()
        em.run(until=lambda: em.now() > start + 500)  # about 50 generations
        status = client.status(iid)
        assert status is not None and status.status == "running"
        client.terminate(iid, "stop looping")
        with pytest.raises(TerminatedError, match="stop looping"):
            client.wait(iid)
        em.run()  # nothing is left: no timer of the loop survives
        return em.next_due()

    assert fault_free_and_faulty(app, scenario) is None


def test_a_locked_loop_holds_its_key_during_each_generation() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        loop = client.start(LockedLoop(lock="k"), instance_id="loop")
        while em.step():
            pass
        intruder = client.start(Intruder(lock="k"), instance_id="intruder")
        client.wait(intruder)
        result = client.wait(loop)
        return result, client.perform(Notes(lock="k"))

    result, notes = fault_free_and_faulty(app, scenario)
    assert result == 4
    without_intruder = [n for n in notes if n != "intruder"]
    assert without_intruder == [f"{w} {g}" for g in range(4) for w in ("start", "end")]
    position = notes.index("intruder")
    assert position % 2 == 0  # between generations, never inside one
