"""Orchestrations: perform, fork and schedule every kind of operation; combinators;
finish(); errors travelling to the awaiting caller with their type; misuse."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hosts.emulator import Emulator
from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    ApplicationError,
    Event,
    Orchestration,
    OrchestrationContext,
    OrchestrationMisuseError,
    ReactiveError,
    Read,
    ReadContext,
    State,
    StateNotFoundError,
    SubscriptionContext,
    Update,
    UpdateContext,
    subscribe,
)
from tests.features._support import fault_free_and_faulty

# -- the application --------------------------------------------------------------------------


class InsufficientFunds(Exception):
    """Registered with the app: travels with its type."""


class Unlisted(Exception):
    """Not registered: arrives as ApplicationError."""


class BoxKey(Affinity):
    box: str


class Noted(BoxKey, Event):
    text: str


class Box(State[BoxKey]):
    items: list[str] = []
    total: int = 0
    noted: list[str] = []

    @subscribe(Noted)
    def on_noted(self, ctx: SubscriptionContext, event: Noted) -> None:
        self.noted.append(event.text)


class Put(BoxKey, Update[Box, int], create=True):
    item: str

    def execute(self, ctx: UpdateContext[Box]) -> int:
        ctx.state.items.append(self.item)
        return len(ctx.state.items)


class Add(BoxKey, Update[Box, int], create=True):
    amount: int

    def execute(self, ctx: UpdateContext[Box]) -> int:
        ctx.state.total += self.amount
        return ctx.state.total


class Items(BoxKey, Read[Box, list[str]]):
    def execute(self, ctx: ReadContext[Box]) -> list[str]:
        return list(ctx.state.items)


class Contents(BoxKey, Read[Box, dict[str, object]]):
    def execute(self, ctx: ReadContext[Box]) -> dict[str, object]:
        return {"items": list(ctx.state.items), "total": ctx.state.total, "noted": ctx.state.noted}


class Double(Activity[int]):
    n: int

    def execute(self, ctx: ActivityContext) -> int:
        return 2 * self.n


class Raise(Activity[int]):
    kind: str

    def execute(self, ctx: ActivityContext) -> int:
        if self.kind == "value":
            raise ValueError("bad value")
        if self.kind == "registered":
            raise InsufficientFunds("only 3 left")
        if self.kind == "unlisted":
            raise Unlisted("nobody knows me")
        if self.kind == "key":
            raise KeyError("missing")
        return 0


class FailingUpdate(BoxKey, Update[Box, int], create=True):
    def execute(self, ctx: UpdateContext[Box]) -> int:
        ctx.state.items.append("before-failure")
        raise InsufficientFunds("update says no")


class Child(Orchestration[int]):
    n: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(Double(n=self.n)) + 1


class FailingChild(Orchestration[int]):
    kind: str

    async def execute(self, ctx: OrchestrationContext) -> int:
        await ctx.sleep(1)
        return await ctx.perform(Raise(kind=self.kind))


class Grandparent(Orchestration[list[int]]):
    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        first = await ctx.perform(Child(n=1))
        nested = await ctx.perform(Parent(n=first))
        return [first, nested]


class Parent(Orchestration[int]):
    n: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(Child(n=self.n)) * 10


class PerformEverything(Orchestration[dict[str, object]]):
    box: str

    async def execute(self, ctx: OrchestrationContext) -> dict[str, object]:
        child = await ctx.perform(Child(n=5))
        doubled = await ctx.perform(Double(n=21))
        count = await ctx.perform(Put(box=self.box, item="apple"))
        await ctx.perform(Noted(box=self.box, text="hello"))
        items = await ctx.perform(Items(box=self.box))
        contents = await ctx.perform(Contents(box=self.box))
        return {
            "child": child,
            "doubled": doubled,
            "count": count,
            "items": items,
            "noted": contents["noted"],
        }


class LaterChild(Orchestration[None]):
    box: str

    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.sleep(30)
        await ctx.perform(Put(box=self.box, item="orchestration"))


class Slow(Activity[int]):
    n: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.n


class ForkEverything(Orchestration[dict[str, object]]):
    box: str

    async def execute(self, ctx: OrchestrationContext) -> dict[str, object]:
        ctx.fork(LaterChild(box=self.box))
        ctx.fork(Put(box=self.box, item="update"))
        ctx.fork(Noted(box=self.box, text="event"))
        ctx.fork(Slow(n=1))
        await ctx.finish()
        return await ctx.perform(Contents(box=self.box))


class ScheduleEverything(Orchestration[str]):
    box: str

    async def execute(self, ctx: OrchestrationContext) -> str:
        ctx.schedule(100, Put(box=self.box, item="update"))
        ctx.schedule(50, Noted(box=self.box, text="event"))
        ctx.schedule(10, LaterChild(box=self.box))
        ctx.schedule(5, Slow(n=3))
        await ctx.finish()
        return ctx.now().isoformat()


class AllOk(Orchestration[list[int]]):
    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        futures = [ctx.perform(Child(n=i)) for i in range(5)]
        return await ctx.all(*futures)


class AllFails(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        slow_failure = ctx.perform(FailingChild(kind="registered"))  # fails after a timer
        ok = ctx.perform(Double(n=1))
        fast_failure = ctx.perform(Raise(kind="value"))  # fails at once
        try:
            await ctx.all(ok, slow_failure, fast_failure)
        except InsufficientFunds as exc:
            return f"first in argument order: {exc}"
        except ValueError as exc:
            return f"first in time: {exc}"
        return "no failure"


class WideFanOut(Orchestration[int]):
    width: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        results = await ctx.all(*[ctx.perform(Double(n=i)) for i in range(self.width)])
        return sum(results)


class AnyTimer(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        long = ctx.sleep(100)
        short = ctx.sleep(1)
        winner = await ctx.any(long, short)
        return "short" if winner is short else "long"


class AnyValue(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        slow = ctx.perform(LaterValue(n=1, delay=50))
        fast = ctx.perform(LaterValue(n=2, delay=5))
        winner = await ctx.any(slow, fast)
        value: int = await winner
        return value


class LaterValue(Orchestration[int]):
    n: int
    delay: float

    async def execute(self, ctx: OrchestrationContext) -> int:
        await ctx.sleep(self.delay)
        return self.n


class CatchFrom(Orchestration[str]):
    source: str
    kind: str

    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            if self.source == "activity":
                await ctx.perform(Raise(kind=self.kind))
            elif self.source == "orchestration":
                await ctx.perform(FailingChild(kind=self.kind))
            else:
                await ctx.perform(FailingUpdate(box="failing"))
        except InsufficientFunds as exc:
            return f"InsufficientFunds: {exc}"
        except ApplicationError as exc:
            return f"ApplicationError[{exc.remote_type}]: {exc.remote_message}"
        except KeyError as exc:
            return f"KeyError: {exc.args[0]}"
        except ValueError as exc:
            return f"ValueError: {exc}"
        return "no error"


class Uncaught(Orchestration[int]):
    kind: str

    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(FailingChild(kind=self.kind))


class RaisesDirectly(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        await ctx.sleep(1)
        raise InsufficientFunds("raised in the orchestration body")


class MissingState(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            await ctx.perform(Items(box="never-created"))
        except StateNotFoundError:
            return "not found"
        return "found"


class AsyncioSleeper(Orchestration[int]):
    seconds: float

    async def execute(self, ctx: OrchestrationContext) -> int:
        await asyncio.sleep(self.seconds)
        return 1


class AwaitsForeignFuture(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        loop = asyncio.new_event_loop()
        try:
            await loop.create_future()
        finally:
            loop.close()
        return 1


class LaterAwait(Orchestration[list[int]]):
    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        first = ctx.perform(Double(n=1))
        second = ctx.perform(Double(n=2))
        await ctx.sleep(10)
        return [await second, await first]


class BoomOrchestration(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        await ctx.sleep(5)
        raise KeyError("boom orchestration")


class ForksFailures(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        ctx.fork(Raise(kind="value"))
        ctx.fork(BoomOrchestration())
        ctx.fork(FailingUpdate(box="forked-failure"))
        ctx.fork(Put(box="forked-ok", item="ok"))
        await ctx.finish()
        return "finished"


class WrongResult(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return "not an int"  # type: ignore[return-value]


class WrongActivityResult(Activity[int]):
    def execute(self, ctx: ActivityContext) -> int:
        return "not an int"  # type: ignore[return-value]


class AwaitsWrongResults(Orchestration[list[str]]):
    async def execute(self, ctx: OrchestrationContext) -> list[str]:
        seen = []
        for op in (WrongResult(), WrongActivityResult()):
            try:
                await ctx.perform(op)
            except ReactiveError as exc:
                name = type(op).__name__
                seen.append(f"ReactiveError naming {name}: {name in str(exc)}")
            except Exception as exc:
                seen.append(f"{type(exc).__name__}")
        return seen


app = App("orchestrations")
app.register(
    InsufficientFunds,
    Box,
    Put,
    Add,
    Items,
    Contents,
    Double,
    Raise,
    FailingUpdate,
    Child,
    FailingChild,
    Grandparent,
    Parent,
    PerformEverything,
    LaterChild,
    Slow,
    ForkEverything,
    ScheduleEverything,
    AllOk,
    AllFails,
    WideFanOut,
    AnyTimer,
    AnyValue,
    LaterValue,
    CatchFrom,
    Uncaught,
    RaisesDirectly,
    MissingState,
    AsyncioSleeper,
    AwaitsForeignFuture,
    LaterAwait,
    ForksFailures,
    BoomOrchestration,
    WrongResult,
    WrongActivityResult,
    AwaitsWrongResults,
)


# -- perform, fork, schedule ------------------------------------------------------------------


def test_perform_every_kind_of_operation() -> None:
    def scenario(em: Emulator) -> Any:
        return em.client().perform(PerformEverything(box="b1"))

    result = fault_free_and_faulty(app, scenario)
    assert result == {
        "child": 11,
        "doubled": 42,
        "count": 1,
        "items": ["apple"],
        "noted": ["hello"],
    }


def test_sub_orchestration_results_nest() -> None:
    def scenario(em: Emulator) -> Any:
        return em.client().perform(Grandparent())

    assert fault_free_and_faulty(app, scenario) == [3, 70]


def test_fork_every_kind_then_finish_waits_for_all_of_them() -> None:
    def scenario(em: Emulator) -> Any:
        return em.client().perform(ForkEverything(box="f1"))

    result = fault_free_and_faulty(app, scenario)
    assert isinstance(result, dict)
    assert sorted(result["items"]) == ["orchestration", "update"]
    assert result["noted"] == ["event"]


def test_schedule_runs_each_operation_after_its_delay() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        started = em.now()
        finished_at = client.perform(ScheduleEverything(box="s1"))
        return client.perform(Contents(box="s1")), finished_at, started

    contents, finished_at, started = fault_free_and_faulty(app, scenario, same_on_every_host=False)
    assert isinstance(contents, dict)
    assert sorted(contents["items"]) == ["orchestration", "update"]
    assert contents["noted"] == ["event"]
    from datetime import datetime

    assert isinstance(finished_at, str) and isinstance(started, float)
    assert datetime.fromisoformat(finished_at).timestamp() >= started + 100


def test_scheduled_operations_have_not_run_before_their_delay() -> None:
    class Schedules(Orchestration[None]):
        async def execute(self, ctx: OrchestrationContext) -> None:
            ctx.schedule(3600, Put(box="delayed", item="late"))

    local = App("schedule-not-early")
    local.register(Schedules, Put, Items)
    em = Emulator(local, partitions=2)
    client = em.client()
    iid = client.start(Schedules())
    while em.step():  # deliver every message, firing only timers that are due
        pass
    # everything but the scheduled update has run; it waits on a durable timer
    status = client.status(iid)
    assert status is not None and status.status == "completed"
    assert em.next_due() is not None
    assert em.next_due() >= em.now() + 3000  # type: ignore[operator]
    assert all(("Box", ("BoxKey", '"delayed"')) not in p.states for p in em.parts)
    em.run()
    assert client.perform(Items(box="delayed")) == ["late"]


def test_futures_can_be_awaited_later_and_in_any_order() -> None:
    def scenario(em: Emulator) -> Any:
        return em.client().perform(LaterAwait())

    assert fault_free_and_faulty(app, scenario) == [4, 2]


# -- all / any --------------------------------------------------------------------------------


def test_all_returns_every_result_in_argument_order() -> None:
    def scenario(em: Emulator) -> Any:
        return em.client().perform(AllOk())

    assert fault_free_and_faulty(app, scenario) == [1, 3, 5, 7, 9]


def test_all_raises_the_first_failure_in_argument_order() -> None:
    def scenario(em: Emulator) -> Any:
        return em.client().perform(AllFails())

    assert fault_free_and_faulty(app, scenario) == "first in argument order: only 3 left"


def test_all_gathers_a_fan_out_of_20_000_activities() -> None:
    client = Emulator(app, partitions=4).client()
    assert client.perform(WideFanOut(width=20_000)) == sum(2 * i for i in range(20_000))


def test_any_resolves_with_the_first_future() -> None:
    client = Emulator(app, partitions=2).client()
    assert client.perform(AnyTimer()) == "short"
    assert client.perform(AnyValue()) == 2


# -- errors reach the awaiting caller with their type -------------------------------------------


@pytest.mark.parametrize(
    ("source", "kind", "expected"),
    [
        ("activity", "value", "ValueError: bad value"),
        ("activity", "key", "KeyError: missing"),
        ("activity", "registered", "InsufficientFunds: only 3 left"),
        ("activity", "unlisted", "ApplicationError[Unlisted]: nobody knows me"),
        ("orchestration", "value", "ValueError: bad value"),
        ("orchestration", "registered", "InsufficientFunds: only 3 left"),
        ("orchestration", "unlisted", "ApplicationError[Unlisted]: nobody knows me"),
        ("update", "registered", "InsufficientFunds: update says no"),
    ],
)
def test_errors_reach_the_awaiting_orchestration_with_their_type(
    source: str, kind: str, expected: str
) -> None:
    def scenario(em: Emulator) -> Any:
        return em.client().perform(CatchFrom(source=source, kind=kind))

    assert fault_free_and_faulty(app, scenario, fault_seeds=(1, 2)) == expected


def test_an_update_that_raises_keeps_its_change() -> None:
    client = Emulator(app, partitions=2).client()
    result = client.perform(CatchFrom(source="update", kind=""))
    assert result == "InsufficientFunds: update says no"
    assert client.perform(Items(box="failing")) == ["before-failure"]


def test_errors_reach_the_client_with_their_type() -> None:
    client = Emulator(app, partitions=3).client()
    with pytest.raises(ValueError, match="bad value"):
        client.perform(Uncaught(kind="value"))
    with pytest.raises(InsufficientFunds, match="only 3 left"):
        client.perform(Uncaught(kind="registered"))
    with pytest.raises(InsufficientFunds, match="raised in the orchestration body"):
        client.perform(RaisesDirectly())
    with pytest.raises(ApplicationError) as info:
        client.perform(Uncaught(kind="unlisted"))
    assert info.value.remote_type == "Unlisted"
    assert "nobody knows me" in str(info.value)
    with pytest.raises(InsufficientFunds, match="update says no"):
        client.perform(FailingUpdate(box="client"))


def test_failed_status_carries_the_typed_error() -> None:
    client = Emulator(app, partitions=2).client()
    iid = client.start(Uncaught(kind="registered"), instance_id="fails")
    with pytest.raises(InsufficientFunds):
        client.wait(iid)
    status = client.status(iid)
    assert status is not None
    assert status.status == "failed"
    assert isinstance(status.error, InsufficientFunds)
    assert str(status.error) == "only 3 left"


def test_reading_a_missing_state_raises_state_not_found() -> None:
    assert Emulator(app, partitions=2).client().perform(MissingState()) == "not found"


# -- misuse ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [0.0, 0.01])
def test_awaiting_asyncio_sleep_fails_with_misuse_error(seconds: float) -> None:
    client = Emulator(app, partitions=2).client()
    iid = client.start(AsyncioSleeper(seconds=seconds))
    with pytest.raises(OrchestrationMisuseError, match="AsyncioSleeper"):
        client.wait(iid)
    status = client.status(iid)
    assert status is not None and status.status == "failed"
    assert isinstance(status.error, OrchestrationMisuseError)


def test_awaiting_a_foreign_future_fails_with_misuse_error() -> None:
    client = Emulator(app, partitions=2).client()
    with pytest.raises(OrchestrationMisuseError):
        client.perform(AwaitsForeignFuture())


# -- fork failures and result types ---------------------------------------------------------------


def test_fork_failures_go_to_the_unhandled_hook_and_finish_still_resolves() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        result = client.wait(client.start(ForksFailures(), instance_id="forks"))
        em.run()
        return result, sorted(em.unhandled), client.perform(Items(box="forked-ok"))

    result, unhandled, items = fault_free_and_faulty(app, scenario)
    assert result == "finished"
    assert items == ["ok"]
    assert len(unhandled) == 3
    assert any("Raise" in u and "bad value" in u for u in unhandled)
    assert any("BoomOrchestration" in u and "boom orchestration" in u for u in unhandled)
    assert any("FailingUpdate" in u and "update says no" in u for u in unhandled)


def test_a_result_of_the_wrong_type_fails_the_operation_that_returned_it() -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    iid = client.start(WrongResult(), instance_id="wrong")
    em.run()
    status = client.status(iid)  # must not raise
    assert status is not None and status.status == "failed"
    assert isinstance(status.error, ReactiveError)
    assert "WrongResult" in str(status.error)
    assert client.perform(AwaitsWrongResults()) == [
        "ReactiveError naming WrongResult: True",
        "ReactiveError naming WrongActivityResult: True",
    ]
