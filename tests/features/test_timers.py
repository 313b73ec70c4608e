"""Durable timers: ctx.sleep / sleep_until / schedule on the emulator's virtual clock."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hosts.emulator import Emulator
from reactive import (
    Affinity,
    App,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    Update,
    UpdateContext,
)
from tests.features._support import fault_free_and_faulty


class Sleeper(Orchestration[list[float]]):
    seconds: float

    async def execute(self, ctx: OrchestrationContext) -> list[float]:
        before = ctx.now().timestamp()
        await ctx.sleep(self.seconds)
        after = ctx.now().timestamp()
        return [before, after]


class SleepsUntil(Orchestration[list[float]]):
    offset: float

    async def execute(self, ctx: OrchestrationContext) -> list[float]:
        before = ctx.now()
        target = before + timedelta(seconds=self.offset)
        await ctx.sleep_until(target)
        return [target.timestamp(), ctx.now().timestamp()]


class NaiveSleep(Orchestration[None]):
    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.sleep_until(datetime(2030, 1, 1))  # deliberately naive


class NegativeSleep(Orchestration[None]):
    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.sleep(-1)


class Sequence(Orchestration[list[int]]):
    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        order: list[int] = []
        timers = {30: ctx.sleep(30), 10: ctx.sleep(10), 20: ctx.sleep(20)}
        pending = dict(timers)
        while pending:
            winner = await ctx.any(*pending.values())
            seconds = next(k for k, v in pending.items() if v is winner)
            order.append(seconds)
            del pending[seconds]
        return order


class ClockKey(Affinity):
    clock: str


class Stamps(State[ClockKey]):
    stamps: list[float] = []


class Stamp(ClockKey, Update[Stamps, None], create=True):
    at: float

    def execute(self, ctx: UpdateContext[Stamps]) -> None:
        ctx.state.stamps.append(self.at)


class ReadStamps(ClockKey, Read[Stamps, list[float]]):
    def execute(self, ctx: ReadContext[Stamps]) -> list[float]:
        return list(ctx.state.stamps)


class StampNow(Orchestration[None]):
    clock: str

    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.perform(Stamp(clock=self.clock, at=ctx.now().timestamp()))


class Scheduler(Orchestration[float]):
    clock: str
    delays: list[float]

    async def execute(self, ctx: OrchestrationContext) -> float:
        for delay in self.delays:
            ctx.schedule(delay, StampNow(clock=self.clock))
        return ctx.now().timestamp()


class Ticker(Orchestration[int]):
    ticks: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        for _ in range(self.ticks):
            await ctx.sleep(86_400)
        return self.ticks


app = App("timers")
app.register(
    Sleeper, SleepsUntil, NaiveSleep, NegativeSleep, Sequence, StampNow, Scheduler, ReadStamps,
    Stamp, Ticker,
)


def test_an_hour_of_virtual_sleep_takes_no_wall_time() -> None:
    client = Emulator(app, partitions=2).client()
    started = time.monotonic()
    before, after = client.perform(Sleeper(seconds=3600))
    assert time.monotonic() - started < 5
    assert after - before >= 3600
    assert after - before < 3600 + 5


def test_a_year_of_daily_timers_finishes_quickly() -> None:
    client = Emulator(app, partitions=2).client()
    started = time.monotonic()
    assert client.perform(Ticker(ticks=365)) == 365
    assert time.monotonic() - started < 30


def test_sleep_results_survive_faults() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        before, after = client.wait(client.start(Sleeper(seconds=600), instance_id="s"))
        return after - before >= 600

    assert fault_free_and_faulty(app, scenario) is True


def test_sleep_until_waits_for_the_target_time() -> None:
    client = Emulator(app, partitions=2).client()
    target, woke = client.perform(SleepsUntil(offset=7200))
    assert woke >= target


def test_sleep_until_in_the_past_resolves_at_once() -> None:
    client = Emulator(app, partitions=2).client()
    target, woke = client.perform(SleepsUntil(offset=-7200))
    assert woke >= target
    assert woke - target < 7200 + 5


def test_sleep_until_rejects_naive_datetimes() -> None:
    client = Emulator(app, partitions=2).client()
    with pytest.raises(ValueError, match="timezone"):
        client.perform(NaiveSleep())


def test_negative_sleep_is_rejected() -> None:
    client = Emulator(app, partitions=2).client()
    with pytest.raises(ValueError):
        client.perform(NegativeSleep())


def test_timers_fire_in_due_order() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        return client.wait(client.start(Sequence(), instance_id="seq"))

    assert fault_free_and_faulty(app, scenario) == [10, 20, 30]


def test_schedule_forks_after_the_delay() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        scheduled_at = client.wait(
            client.start(Scheduler(clock="c", delays=[300, 60, 3600]), instance_id="sched")
        )
        em.run()
        stamps = client.perform(ReadStamps(clock="c"))
        return [round(s - scheduled_at) for s in sorted(stamps)]

    assert fault_free_and_faulty(app, scenario) == [60, 300, 3600]


def test_real_clock_waits_for_timers() -> None:
    client = Emulator(app, partitions=1, clock="real").client()
    started = time.monotonic()
    before, after = client.perform(Sleeper(seconds=0.3))
    assert time.monotonic() - started >= 0.29
    assert after - before >= 0.3
    assert datetime.fromtimestamp(after, UTC).year >= 2024
