"""Places A, B and C (the original ``Locks`` namespace): a balance per place, updates,
a multi-place increment event, lock-holding read-modify-writes, and orchestrations that
run their payload from a randomly chosen caller."""

from __future__ import annotations

from collections.abc import Sequence
from enum import IntEnum

from reactive import (
    Affinity,
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


class Place(IntEnum):
    A = 0
    B = 1
    C = 2


ALL_PLACES = (Place.A, Place.B, Place.C)


class PlaceKey(Affinity, round_robin=True):
    """Round-robin placement of the integer-valued places: place ``p`` is on ``p % n``."""

    place: Place


class IncrementEvent(Event):
    """Increments the balance of every place it names, atomically."""

    places: list[Place]

    def affinities(self) -> Sequence[Affinity]:
        return [PlaceKey(place=p) for p in self.places]

    def label(self) -> str:
        return "".join(p.name for p in self.places)


class PlaceState(State[PlaceKey]):
    balance: int = 0

    @subscribe(IncrementEvent)
    def on_increment(self, ctx: SubscriptionContext, event: IncrementEvent) -> None:
        self.balance += 1
        ctx.log.info(
            "Increment %s to %d in response to %s", Place(ctx.key).name, self.balance,
            event.label(),
        )


class GetBalance(PlaceKey, Read[PlaceState, int]):
    def execute(self, ctx: ReadContext[PlaceState]) -> int:
        return ctx.state.balance


class SetBalance(PlaceKey, Update[PlaceState, None], create=True):
    new_balance: int

    def execute(self, ctx: UpdateContext[PlaceState]) -> None:
        ctx.state.balance = self.new_balance


class IncrementBalance(PlaceKey, Update[PlaceState, None]):
    def execute(self, ctx: UpdateContext[PlaceState]) -> None:
        ctx.state.balance += 1


class BadReadModifyWriteIncrement(Orchestration[None]):
    """Reads B, then writes the value plus one, without a lock: concurrent runs can
    interleave between the read and the write and lose an increment."""

    async def execute(self, ctx: OrchestrationContext) -> None:
        read = await ctx.perform(GetBalance(place=Place.B))
        await ctx.perform(SetBalance(place=Place.B, new_balance=read + 1))


class GoodReadModifyWriteIncrement1(PlaceKey, Orchestration[None], lock=True):
    """The same read-modify-write, holding its place's lock."""

    async def execute(self, ctx: OrchestrationContext) -> None:
        read = await ctx.perform(GetBalance(place=self.place))
        await ctx.perform(SetBalance(place=self.place, new_balance=read + 1))


class GoodReadModifyWriteIncrement2(PlaceKey, Orchestration[None], lock=True):
    """The same read-modify-write of one place, holding the locks of all three."""

    def affinities(self) -> Sequence[Affinity]:
        return [PlaceKey(place=p) for p in ALL_PLACES]

    async def execute(self, ctx: OrchestrationContext) -> None:
        read = await ctx.perform(GetBalance(place=self.place))
        await ctx.perform(SetBalance(place=self.place, new_balance=read + 1))


# -- randomized callers ---------------------------------------------------------------------
#
# In the original an orchestration with a place affinity ran on that place's process, so
# picking a random place moved the caller. Here orchestration instances are placed by a
# hash of their instance id (parent id + call index), so a random place alone would not
# move anything: the runner also takes a random number of hops, each hop a child instance
# with a new id, which lands the final caller on a pseudo-random partition.


class ExecuteAt(PlaceKey, Orchestration[None]):
    """Performs ``request`` after ``hops`` nested hops."""

    request: GoodReadModifyWriteIncrement1
    hops: int = 0

    async def execute(self, ctx: OrchestrationContext) -> None:
        if self.hops > 0:
            await ctx.perform(self.model_copy(update={"hops": self.hops - 1}))
        else:
            await ctx.perform(self.request)


class RandomizeOrchestration(Orchestration[None]):
    request: GoodReadModifyWriteIncrement1

    async def execute(self, ctx: OrchestrationContext) -> None:
        rnd = ctx.new_random()
        place, hops = Place(rnd.randrange(3)), rnd.randrange(3)
        await ctx.perform(ExecuteAt(place=place, request=self.request, hops=hops))


class ExecuteEventAt(PlaceKey, Orchestration[None]):
    """Performs ``event`` after ``hops`` nested hops."""

    event: IncrementEvent
    hops: int = 0

    async def execute(self, ctx: OrchestrationContext) -> None:
        if self.hops > 0:
            await ctx.perform(self.model_copy(update={"hops": self.hops - 1}))
        else:
            await ctx.perform(self.event)


class RandomizeEvent(Orchestration[None]):
    event: IncrementEvent

    async def execute(self, ctx: OrchestrationContext) -> None:
        rnd = ctx.new_random()
        place, hops = Place(rnd.randrange(3)), rnd.randrange(3)
        await ctx.perform(ExecuteEventAt(place=place, event=self.event, hops=hops))


async def read_and_reset(ctx: OrchestrationContext) -> list[int]:
    """Each place's balance (A, B, C), then set back to 0 for the next phase."""
    balances = []
    for place in ALL_PLACES:
        balances.append(await ctx.perform(GetBalance(place=place)))
        await ctx.perform(SetBalance(place=place, new_balance=0))
    return balances


async def reset_places(ctx: OrchestrationContext) -> None:
    """Create (or zero) the three place states, so a test can run on its own."""
    await ctx.all(*(ctx.perform(SetBalance(place=p, new_balance=0)) for p in ALL_PLACES))
