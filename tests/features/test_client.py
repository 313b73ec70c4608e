"""The client API on the emulator: start/wait/status/terminate/raise_event/perform/fork."""

from __future__ import annotations

from typing import Any

import pytest

from hosts.emulator import Emulator
from reactive import (
    Affinity,
    App,
    Event,
    Orchestration,
    OrchestrationContext,
    ReactiveError,
    Read,
    ReadContext,
    State,
    SubscriptionContext,
    TerminatedError,
    Update,
    UpdateContext,
    subscribe,
)
from tests.features._support import fault_free_and_faulty


class TallyKey(Affinity):
    tally: str


class Tallied(TallyKey, Event):
    amount: int


class Tally(State[TallyKey]):
    count: int = 0
    log: list[str] = []

    @subscribe(Tallied)
    def on_tallied(self, ctx: SubscriptionContext, event: Tallied) -> None:
        self.count += event.amount
        self.log.append(f"event {event.amount}")


class AddTally(TallyKey, Update[Tally, int], create=True):
    amount: int = 1
    note: str = ""

    def execute(self, ctx: UpdateContext[Tally]) -> int:
        ctx.state.count += self.amount
        if self.note:
            ctx.state.log.append(self.note)
        return ctx.state.count


class RejectTally(TallyKey, Update[Tally, int]):
    def execute(self, ctx: UpdateContext[Tally]) -> int:
        raise ValueError(f"tally {ctx.key} rejects updates")


class GetTally(TallyKey, Read[Tally, int]):
    def execute(self, ctx: ReadContext[Tally]) -> int:
        return ctx.state.count


class GetLog(TallyKey, Read[Tally, list[str]]):
    def execute(self, ctx: ReadContext[Tally]) -> list[str]:
        return list(ctx.state.log)


class CountOnce(Orchestration[str]):
    """Bumps a tally (so that running twice would show) and returns its label."""

    tally: str
    label: str

    async def execute(self, ctx: OrchestrationContext) -> str:
        await ctx.sleep(10)
        await ctx.perform(AddTally(tally=self.tally))
        return self.label


class WaitsForever(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        value: str = await ctx.wait_for_event("never")
        return value


class Fails(Orchestration[None]):
    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.sleep(1)
        raise KeyError("nope")


class Holder(Orchestration[str], lock=True):
    """Holds the tally's lock while it waits for an event."""

    tally: str

    def affinities(self) -> list[Affinity]:
        return [TallyKey(tally=self.tally)]

    async def execute(self, ctx: OrchestrationContext) -> str:
        await ctx.perform(AddTally(tally=self.tally, note="holder"))
        await ctx.wait_for_event("release")
        return "holder done"


class NextInLine(TallyKey, Orchestration[str], lock=True):
    async def execute(self, ctx: OrchestrationContext) -> str:
        await ctx.perform(AddTally(tally=self.tally, note="next"))
        return "next done"


class Bumper(Orchestration[int]):
    tally: str
    times: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        total = 0
        for _ in range(self.times):
            total = await ctx.perform(AddTally(tally=self.tally))
        return total


class WaitingChild(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        value: str = await ctx.wait_for_event("never")
        return value


class ParentOfWaiter(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            return await ctx.perform(WaitingChild())
        except TerminatedError as exc:
            return f"child terminated: {exc}"


app = App("client")
app.register(
    Tally, AddTally, RejectTally, GetTally, GetLog, CountOnce, WaitsForever, Fails, Holder,
    NextInLine, Bumper, ParentOfWaiter, WaitingChild,
)


# -- start ----------------------------------------------------------------------------------------


def test_start_with_the_same_instance_id_twice_is_idempotent() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        first = client.start(CountOnce(tally="idem", label="first"), instance_id="once")
        second = client.start(CountOnce(tally="idem", label="second"), instance_id="once")
        assert first == second == "once"
        result = client.wait("once")
        third = client.start(CountOnce(tally="idem", label="third"), instance_id="once")
        assert third == "once"
        em.run()
        return result, client.wait("once"), client.perform(GetTally(tally="idem"))

    assert fault_free_and_faulty(app, scenario) == ("first", "first", 1)


def test_start_without_an_instance_id_generates_distinct_ids() -> None:
    client = Emulator(app, partitions=2).client()
    ids = {client.start(CountOnce(tally="gen", label=str(i))) for i in range(5)}
    assert len(ids) == 5
    assert sorted(client.wait(i) for i in ids) == ["0", "1", "2", "3", "4"]
    assert client.perform(GetTally(tally="gen")) == 5


@pytest.mark.parametrize(
    "instance_id", ["7", "job~1", "a~2~3", "x~", "a#1", "p:0", "é ü", "with/slash", "init/x"]
)
def test_any_instance_id_works(instance_id: str) -> None:
    client = Emulator(app, partitions=3).client()
    iid = client.start(Bumper(tally=f"ids-{instance_id}", times=2), instance_id=instance_id)
    assert iid == instance_id
    assert client.wait(iid) == 2
    status = client.status(iid)
    assert status is not None and status.status == "completed"


# -- status ---------------------------------------------------------------------------------------


def test_status_of_an_unknown_instance_is_none() -> None:
    client = Emulator(app, partitions=2).client()
    assert client.status("nobody") is None
    with pytest.raises(ReactiveError):
        client.wait("nobody")


def test_status_goes_pending_running_completed() -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    iid = client.start(CountOnce(tally="st", label="done"), instance_id="st")
    status = client.status(iid)
    assert status is not None and status.status == "pending" and not status.done
    while em.step():
        pass
    status = client.status(iid)
    assert status is not None and status.status == "running" and not status.done
    assert status.name == "CountOnce"
    assert client.wait(iid) == "done"
    status = client.status(iid)
    assert status is not None
    assert (status.status, status.result, status.error, status.done) == (
        "completed", "done", None, True,
    )


def test_status_failed_carries_the_error() -> None:
    client = Emulator(app, partitions=2).client()
    iid = client.start(Fails(), instance_id="fails")
    with pytest.raises(KeyError):
        client.wait(iid)
    status = client.status(iid)
    assert status is not None and status.status == "failed" and status.done
    assert isinstance(status.error, KeyError)
    assert status.result is None


# -- terminate ------------------------------------------------------------------------------------


def test_terminate_a_waiting_orchestration() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(WaitsForever(), instance_id="forever")
        while em.step():
            pass
        client.terminate(iid, "no longer needed")
        with pytest.raises(TerminatedError, match="no longer needed"):
            client.wait(iid)
        status = client.status(iid)
        assert status is not None
        assert status.status == "terminated" and status.done
        assert isinstance(status.error, TerminatedError)
        client.raise_event(iid, "never", "too late")
        em.run()
        after = client.status(iid)
        assert after is not None
        return after.status

    assert fault_free_and_faulty(app, scenario) == "terminated"


def test_terminate_releases_the_locks_it_holds() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        holder = client.start(Holder(tally="locked"), instance_id="holder")
        while em.step():
            pass
        status = client.status(holder)
        assert status is not None and status.status == "running"
        nxt = client.start(NextInLine(tally="locked"), instance_id="next")
        em.run()
        waiting = client.status(nxt)
        assert waiting is not None and waiting.status == "running"  # blocked on the lock
        client.terminate(holder, "stuck")
        result = client.wait(nxt)
        return result, client.perform(GetLog(tally="locked"))

    assert fault_free_and_faulty(app, scenario) == ("next done", ["holder", "next"])


def test_terminate_an_orchestration_waiting_for_a_lock() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.start(Holder(tally="queue"), instance_id="holder")
        while em.step():
            pass
        client.start(NextInLine(tally="queue"), instance_id="queued")
        while em.step():
            pass
        client.terminate("queued", "changed my mind")
        while em.step():
            pass
        client.raise_event("holder", "release")
        assert client.wait("holder") == "holder done"
        with pytest.raises(TerminatedError):
            client.wait("queued")
        later = client.start(NextInLine(tally="queue"), instance_id="later")
        return client.wait(later), client.perform(GetLog(tally="queue"))

    assert fault_free_and_faulty(app, scenario) == ("next done", ["holder", "next"])


def test_terminating_a_child_raises_terminated_error_in_the_awaiting_parent() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        parent = client.start(ParentOfWaiter(), instance_id="parent")
        while em.step():
            pass
        children = [
            iid for p in em.parts for iid, run in p.runs.items() if type(run.op) is WaitingChild
        ]
        assert len(children) == 1
        client.terminate(children[0], "enough")
        return client.wait(parent)

    result = fault_free_and_faulty(app, scenario)
    assert isinstance(result, str)
    assert result.startswith("child terminated: ") and "enough" in result


def test_a_waiting_orchestration_cannot_make_progress_without_its_event() -> None:
    client = Emulator(app, partitions=2).client()
    iid = client.start(WaitsForever())
    with pytest.raises(ReactiveError, match="progress"):
        client.wait(iid)


def test_terminate_a_completed_instance_changes_nothing() -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    iid = client.start(CountOnce(tally="tc", label="kept"), instance_id="tc")
    assert client.wait(iid) == "kept"
    client.terminate(iid)
    em.run()
    status = client.status(iid)
    assert status is not None and status.status == "completed" and status.result == "kept"


# -- perform / fork -------------------------------------------------------------------------------


def test_client_perform_of_update_read_event_orchestration() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        results = [
            client.perform(AddTally(tally="p", amount=5)),
            client.perform(Tallied(tally="p", amount=2)),
            client.perform(GetTally(tally="p")),
            client.perform(Bumper(tally="p", times=3)),
            client.perform(GetLog(tally="p")),
        ]
        return results

    assert fault_free_and_faulty(app, scenario) == [5, None, 7, 10, ["event 2"]]


def test_client_perform_raises_the_operations_error() -> None:
    client = Emulator(app, partitions=2).client()
    client.perform(AddTally(tally="rej"))
    with pytest.raises(ValueError, match="rejects updates"):
        client.perform(RejectTally(tally="rej"))


def test_client_fork_of_update_event_orchestration() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.fork(AddTally(tally="f", amount=1))
        client.fork(Tallied(tally="f", amount=10))
        client.fork(Bumper(tally="f", times=2))
        em.run()
        return client.perform(GetTally(tally="f")), sorted(client.perform(GetLog(tally="f")))

    assert fault_free_and_faulty(app, scenario) == (13, ["event 10"])


def test_client_fork_errors_go_to_the_unhandled_hook() -> None:
    seen: list[str] = []
    em = Emulator(app, partitions=2, on_unhandled=seen.append)
    client = em.client()
    client.perform(AddTally(tally="fe"))
    client.fork(RejectTally(tally="fe"))
    em.run()
    assert any("rejects updates" in line for line in seen)
    assert seen == em.unhandled


# -- retention of finished instances ------------------------------------------------------------


class Quick(Orchestration[int]):
    n: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        return self.n


def test_finished_instances_beyond_keep_completed_are_forgotten_not_pending() -> None:
    small = App("retention", keep_completed=2)
    small.register(Quick)
    em = Emulator(small, partitions=1)
    client = em.client()
    ids = [client.start(Quick(n=i), instance_id=f"q{i}") for i in range(4)]
    em.run()
    for iid, n in zip(ids[2:], (2, 3), strict=True):
        status = client.status(iid)
        assert status is not None and status.status == "completed" and status.result == n
    forgotten = client.status("q0")
    # its outcome is gone, but it did run: it must not be reported as not yet started
    assert forgotten is None or forgotten.status not in ("pending", "running")
