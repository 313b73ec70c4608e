"""Lock discipline (acceptance scenario 19) and orchestration misuse (scenario 20).

Each probe below breaks one rule; the test orchestrations perform the probes and record
which error type reached them, so that the outcome is an observation like any other."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Literal, get_args

from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    Orchestration,
    OrchestrationContext,
    ReadOrchestration,
)

from .common import Observations, TestOrchestration, check_equal
from .places import (
    ALL_PLACES,
    BadReadModifyWriteIncrement,
    GetBalance,
    GoodReadModifyWriteIncrement1,
    GoodReadModifyWriteIncrement2,
    IncrementEvent,
    Place,
    PlaceKey,
    PlaceState,
    SetBalance,
    read_and_reset,
    reset_places,
)


class MoveTwo(Orchestration[None], lock=True):
    """Holds A and B, then performs an unlocked orchestration: a discipline error."""

    def affinities(self) -> Sequence[Affinity]:
        return [PlaceKey(place=Place.A), PlaceKey(place=Place.B)]

    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.perform(GetBalance(place=Place.B))
        await ctx.all(
            ctx.perform(BadReadModifyWriteIncrement()),
            ctx.perform(GoodReadModifyWriteIncrement1(place=Place.B)),
        )


Violation = Literal[
    "read_outside", "update_outside", "event_outside", "finish", "locked_orchestration_outside",
    "exists_outside",
]
VIOLATIONS: tuple[Violation, ...] = get_args(Violation)


class LockedProbe(PlaceKey, Orchestration[str], lock=True):
    """Holds its place's lock and then breaks the rule named by ``violation``."""

    violation: Violation

    async def execute(self, ctx: OrchestrationContext) -> str:
        other = Place((self.place + 1) % 3)
        if self.violation == "read_outside":
            await ctx.perform(GetBalance(place=other))
        elif self.violation == "update_outside":
            await ctx.perform(SetBalance(place=other, new_balance=5))
        elif self.violation == "event_outside":
            await ctx.perform(IncrementEvent(places=[self.place, other]))
        elif self.violation == "finish":
            await ctx.finish()
        elif self.violation == "exists_outside":
            await ctx.state_exists(PlaceState, PlaceKey(place=other))
        else:
            await ctx.perform(GoodReadModifyWriteIncrement1(place=other))
        return "no error"


class ExistsProbe(PlaceKey, Orchestration[bool]):
    """Checks whether its place's state exists, without holding the lock: refused."""

    async def execute(self, ctx: OrchestrationContext) -> bool:
        return await ctx.state_exists(PlaceState, PlaceKey(place=self.place))


class LockedExistsProbe(PlaceKey, Orchestration[bool], lock=True):
    """The same check while holding the lock: allowed (and true after reset_places)."""

    async def execute(self, ctx: OrchestrationContext) -> bool:
        exists = await ctx.state_exists(PlaceState, PlaceKey(place=self.place))
        check_equal(True, exists, f"{self.place.name} exists")
        return exists


class NestedLocked(Orchestration[int], lock=True):
    """Holds all three places and performs a lock=True orchestration on one of them: it
    runs inside the caller's locks (allowed), and its effect is visible afterwards."""

    def affinities(self) -> Sequence[Affinity]:
        return [PlaceKey(place=p) for p in ALL_PLACES]

    async def execute(self, ctx: OrchestrationContext) -> int:
        await ctx.perform(GoodReadModifyWriteIncrement1(place=Place.C))
        return await ctx.perform(GetBalance(place=Place.C))


class LockedActivity(PlaceKey, Activity[int], lock=True):
    def execute(self, ctx: ActivityContext) -> int:
        return int(self.place)


class CallLockedActivity(Orchestration[int]):
    """Calls a lock=True activity without holding its key: a discipline error."""

    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(LockedActivity(place=Place.A))


class CallLockedActivityLocked(PlaceKey, Orchestration[int], lock=True):
    """Calls the lock=True activity while holding its key: allowed."""

    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(LockedActivity(place=self.place))


class ReadOnlyProbe(ReadOrchestration[int]):
    """A read orchestration may read, but not update."""

    update: bool

    async def execute(self, ctx: OrchestrationContext) -> int:
        value = await ctx.perform(GetBalance(place=Place.A))
        if self.update:
            await ctx.perform(SetBalance(place=Place.A, new_balance=value + 1))
        return value


async def outcome(ctx: OrchestrationContext, op: Orchestration[object]) -> str:
    """"ok" or the name of the error type that reached the caller."""
    try:
        await ctx.perform(op)
    except Exception as exc:
        return type(exc).__name__
    return "ok"


class TestDiscipline(TestOrchestration):
    async def run(self, ctx: OrchestrationContext) -> Observations:
        await reset_places(ctx)
        results: dict[str, str] = {"move_two": await outcome(ctx, MoveTwo())}
        for violation in VIOLATIONS:
            results[violation] = await outcome(ctx, LockedProbe(place=Place.A, violation=violation))
        results["exists_unlocked"] = await outcome(ctx, ExistsProbe(place=Place.B))
        results["exists_locked"] = await outcome(ctx, LockedExistsProbe(place=Place.B))
        results["locked_activity_unlocked"] = await outcome(ctx, CallLockedActivity())
        results["locked_activity_locked"] = await outcome(
            ctx, CallLockedActivityLocked(place=Place.B)
        )
        results["read_only_read"] = await outcome(ctx, ReadOnlyProbe(update=False))
        results["read_only_update"] = await outcome(ctx, ReadOnlyProbe(update=True))
        nested = await ctx.perform(NestedLocked())
        check_equal(1, nested, "increment nested in the caller's locks")

        # the failed probes released their locks: locked increments of every place still run
        await ctx.all(*(ctx.perform(GoodReadModifyWriteIncrement2(place=p)) for p in ALL_PLACES))
        after = await read_and_reset(ctx)
        check_equal([1, 1, 2], after, "increments after the failed probes")
        return {"outcomes": results, "nested": nested, "after": after}


class PrematureReturn(Orchestration[str]):
    """Returns while a performed update is still pending."""

    async def execute(self, ctx: OrchestrationContext) -> str:
        ctx.perform(SetBalance(place=Place.A, new_balance=1))
        return "returned"


class AwaitForeign(Orchestration[str]):
    """Awaits an asyncio coroutine, which orchestration code may not do."""

    async def execute(self, ctx: OrchestrationContext) -> str:
        await asyncio.sleep(0)
        return "returned"


class TestMisuse(TestOrchestration):
    async def run(self, ctx: OrchestrationContext) -> Observations:
        await reset_places(ctx)
        return {
            "premature_return": await outcome(ctx, PrematureReturn()),
            "await_foreign": await outcome(ctx, AwaitForeign()),
        }
