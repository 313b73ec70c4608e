"""Counters (the original Counter service) and the counter tests: TestForks,
TestRandomActivityCount and the plain update/event counter checks."""

from __future__ import annotations

import uuid

from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    Event,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    SubscriptionContext,
    Update,
    UpdateContext,
    subscribe,
)

from .common import Observations, TestOrchestration, check_equal


class CounterKey(Affinity, round_robin=True):
    """Counters are spread round-robin: counter ``n`` lives on partition ``n % partitions``."""

    counter_id: int


class CounterIncrementEvent(CounterKey, Event):
    """Bumps the event-sourced counter :class:`Counter1` at ``counter_id``."""


class Counter1(State[CounterKey]):
    """An event-sourced counter: created by the first event that reaches its key."""

    count: int = 0

    @subscribe(CounterIncrementEvent)
    def on_increment(self, ctx: SubscriptionContext, event: CounterIncrementEvent) -> None:
        self.count += 1


class ReadCounter1(CounterKey, Read[Counter1, int]):
    def execute(self, ctx: ReadContext[Counter1]) -> int:
        return ctx.state.count


class Counter2(State[CounterKey]):
    """An update-based counter."""

    count: int = 0


class IncrementUpdate(CounterKey, Update[Counter2, int], create=True):
    """Adds one and returns the new count; the first increment creates the counter."""

    def execute(self, ctx: UpdateContext[Counter2]) -> int:
        ctx.state.count += 1
        return ctx.state.count


class ReadCounter2(CounterKey, Read[Counter2, int]):
    def execute(self, ctx: ReadContext[Counter2]) -> int:
        return ctx.state.count


class IncrementThenRead(CounterKey, Update[Counter2, None], create=True):
    """Creates a fresh counter, increments it through a nested update and checks the
    count before (0) and after (1): it fails if the counter was touched before."""

    def execute(self, ctx: UpdateContext[Counter2]) -> None:
        ctx.log.debug("IncrementThenRead(%d) Start", self.counter_id)
        check_equal(0, ctx.state.count, f"counter {self.counter_id} before the increment")
        ctx.perform_update(IncrementUpdate(counter_id=self.counter_id))
        check_equal(1, ctx.state.count, f"counter {self.counter_id} after the increment")
        ctx.log.debug("IncrementThenRead(%d) End", self.counter_id)


async def read_counters(ctx: OrchestrationContext, ids: list[int]) -> list[int]:
    """The :class:`Counter2` values of ``ids``, read in parallel."""
    return await ctx.all(*(ctx.perform(ReadCounter2(counter_id=i)) for i in ids))


class TestForks(TestOrchestration):
    """Forks IncrementThenRead on 303 fresh counters with interleaved ``finish()`` calls;
    after each awaited ``finish()`` the counters forked before it must read 1."""

    async def run(self, ctx: OrchestrationContext) -> Observations:
        await ctx.finish()  # nothing forked yet

        ctx.fork(IncrementThenRead(counter_id=0))
        await ctx.finish()
        ctx.fork(IncrementThenRead(counter_id=1))
        ctx.fork(IncrementThenRead(counter_id=2))
        await ctx.finish()
        first = await read_counters(ctx, [0, 1, 2])
        check_equal([1, 1, 1], first, "counters 0..2 after finish()")

        batches = [list(range(100, 200)), list(range(200, 300)), list(range(300, 400))]
        for i in batches[0]:
            ctx.fork(IncrementThenRead(counter_id=i))
        f1 = ctx.finish()
        for i in batches[1]:
            ctx.fork(IncrementThenRead(counter_id=i))
        f2 = ctx.finish()
        for i in batches[2]:
            ctx.fork(IncrementThenRead(counter_id=i))

        await f1
        after_f1 = await read_counters(ctx, batches[0])
        check_equal([1] * 100, after_f1, "counters 100..199 once f1 resolved")
        await ctx.all(f1, f2)
        after_f2 = await read_counters(ctx, batches[1])
        check_equal([1] * 100, after_f2, "counters 200..299 once f2 resolved")
        await ctx.finish()
        after_all = await read_counters(ctx, batches[2])
        check_equal([1] * 100, after_all, "counters 300..399 after the last finish()")
        return {
            "first": first,
            "batch_sums": [sum(after_f1), sum(after_f2), sum(after_all)],
        }


GUID_NAMESPACE = uuid.UUID("6f1b0a52-3c4e-4d55-9a53-2b1f0e4c7d10")


class DeriveGuid(Activity[str]):
    """An activity standing for the original's determinized NewGuid(): a name-based UUID
    derived from ``seed`` (pure, so reruns after a restore give the same value)."""

    seed: str

    def execute(self, ctx: ActivityContext) -> str:
        return str(uuid.uuid5(GUID_NAMESPACE, self.seed))


class TestRandomActivityCount(TestOrchestration):
    """Random counter offset, then 2-4 parallel guid activities (how many depends on the
    random generator, so a replay must reproduce the same draws), forks and parallel
    IncrementThenRead updates on ten fresh counters."""

    async def run(self, ctx: OrchestrationContext) -> Observations:
        rnd = ctx.new_random()
        # the original drew any non-negative int; staying above 1000 keeps clear of the
        # counters TestForks uses (0..399), which it expects to be fresh
        offset = rnd.randrange(1000, 2**31)

        await ctx.perform(IncrementThenRead(counter_id=offset + 0))
        await ctx.perform(IncrementThenRead(counter_id=offset + 1))

        count = 2 + rnd.randrange(3)
        seeds = [str(ctx.new_guid()) for _ in range(count)]
        guids: list[str] = await ctx.all(*(ctx.perform(DeriveGuid(seed=s)) for s in seeds))
        check_equal(count, len(set(guids)), "distinct guids")

        ctx.fork(IncrementThenRead(counter_id=offset + 2))
        ctx.fork(IncrementThenRead(counter_id=offset + 3))
        await ctx.all(
            ctx.perform(IncrementThenRead(counter_id=offset + 4)),
            ctx.perform(IncrementThenRead(counter_id=offset + 5)),
        )
        await ctx.all(
            *(ctx.perform(IncrementThenRead(counter_id=offset + i)) for i in (6, 7, 8, 9))
        )
        await ctx.finish()
        counts = await read_counters(ctx, [offset + i for i in range(10)])
        check_equal([1] * 10, counts, "the ten counters")
        ctx.log.info("TestRandomActivityCount offset %d with %d activities", offset, count)
        return {"offset": offset, "activities": count, "guids": guids, "counts": counts}


class TestCounters(TestOrchestration):
    """Update counter: k increments return 1..k, the first creating it; a forked update is
    visible after ``finish()``; event counter: k events give count k."""

    counter_id: int = 7_000
    k: int = 5

    async def run(self, ctx: OrchestrationContext) -> Observations:
        returned = [
            await ctx.perform(IncrementUpdate(counter_id=self.counter_id)) for _ in range(self.k)
        ]
        check_equal(list(range(1, self.k + 1)), returned, "increment results")
        ctx.fork(IncrementUpdate(counter_id=self.counter_id))
        await ctx.finish()
        after_fork = await ctx.perform(ReadCounter2(counter_id=self.counter_id))
        check_equal(self.k + 1, after_fork, "count after a forked increment")
        for _ in range(self.k):
            ctx.fork(CounterIncrementEvent(counter_id=self.counter_id))
        await ctx.finish()
        events = await ctx.perform(ReadCounter1(counter_id=self.counter_id))
        check_equal(self.k, events, "event-sourced count")
        return {"returned": returned, "after_fork": after_fork, "event_count": events}


class TestRandomActivityCountParallel(TestOrchestration):
    """Three TestRandomActivityCount instances at once, as the original suite ran them."""

    async def run(self, ctx: OrchestrationContext) -> Observations:
        runs = await ctx.all(*(ctx.perform(TestRandomActivityCount()) for _ in range(3)))
        return {"runs": runs}
