"""Counters keyed by an integer id, placed round-robin (counter ``k`` lives on partition
``k % partitions``). ``UpdateCounter`` is changed by an update, ``EventCounter`` by an event."""

from __future__ import annotations

from reactive import (
    Affinity,
    App,
    Event,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    SubscriptionContext,
    Update,
    UpdateContext,
    subscribe,
)

app = App("counter")


class CounterKey(Affinity, round_robin=True):
    counter: int


class Incremented(CounterKey, Event):
    """Adds one to the ``EventCounter`` with this id (creating it if needed)."""


@app.register
class UpdateCounter(State[CounterKey]):
    count: int = 0


@app.register
class Increment(CounterKey, Update[UpdateCounter, int], create=True):
    """Adds one to the counter, creating it on first use; returns the new count."""

    def execute(self, ctx: UpdateContext[UpdateCounter]) -> int:
        ctx.state.count += 1
        return ctx.state.count


@app.register
class Count(CounterKey, Read[UpdateCounter, int]):
    def execute(self, ctx: ReadContext[UpdateCounter]) -> int:
        return ctx.state.count


@app.register
class EventCounter(State[CounterKey]):
    count: int = 0

    @subscribe(Incremented)
    def on_incremented(self, ctx: SubscriptionContext, event: Incremented) -> None:
        self.count += 1


@app.register
class EventCount(CounterKey, Read[EventCounter, int]):
    def execute(self, ctx: ReadContext[EventCounter]) -> int:
        return ctx.state.count


@app.register
class IncrementMany(Orchestration[list[int]]):
    """Increments one counter ``times`` times, one after the other or all at once."""

    counter: int
    times: int
    parallel: bool = False

    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        if self.parallel:
            futures = [ctx.perform(Increment(counter=self.counter)) for _ in range(self.times)]
            return await ctx.all(*futures)
        return [await ctx.perform(Increment(counter=self.counter)) for _ in range(self.times)]
