"""TestLocks: unlocked read-modify-writes may lose updates; locked ones never do."""

from __future__ import annotations

from reactive import Future, OrchestrationContext

from .common import Observations, TestOrchestration, check_equal
from .places import (
    ALL_PLACES,
    BadReadModifyWriteIncrement,
    GetBalance,
    GoodReadModifyWriteIncrement1,
    GoodReadModifyWriteIncrement2,
    IncrementBalance,
    Place,
    RandomizeOrchestration,
    SetBalance,
    read_and_reset,
    reset_places,
)


class TestLocks(TestOrchestration):
    async def run(self, ctx: OrchestrationContext) -> Observations:
        await reset_places(ctx)

        # unsafe: the two read-modify-writes may interleave. Whether they do depends on
        # the schedule, so this value is returned for the caller to judge, not checked here.
        await ctx.all(
            ctx.perform(BadReadModifyWriteIncrement()),
            ctx.perform(BadReadModifyWriteIncrement()),
        )
        unlocked = await ctx.perform(GetBalance(place=Place.B))
        await ctx.perform(SetBalance(place=Place.B, new_balance=0))

        # safe: one lock per increment
        single = []
        for place in ALL_PLACES:
            await ctx.all(
                ctx.perform(GoodReadModifyWriteIncrement1(place=place)),
                ctx.perform(GoodReadModifyWriteIncrement1(place=place)),
            )
            value = await ctx.perform(GetBalance(place=place))
            check_equal(2, value, f"two single-lock increments of {place.name}")
            single.append(value)
            await ctx.perform(SetBalance(place=place, new_balance=0))

        # safe: every increment locks all three places
        triple = []
        for place in ALL_PLACES:
            await ctx.all(
                ctx.perform(GoodReadModifyWriteIncrement2(place=place)),
                ctx.perform(GoodReadModifyWriteIncrement2(place=place)),
            )
            value = await ctx.perform(GetBalance(place=place))
            check_equal(2, value, f"two three-lock increments of {place.name}")
            triple.append(value)
            await ctx.perform(SetBalance(place=place, new_balance=0))

        # safe: locked increments racing with plain increment updates
        mixed: list[Future[None]] = [
            ctx.perform(GoodReadModifyWriteIncrement2(place=p)) for p in ALL_PLACES * 2
        ]
        mixed += [ctx.perform(IncrementBalance(place=p)) for p in ALL_PLACES]
        await ctx.all(*mixed)
        mixed_balances = await read_and_reset(ctx)
        check_equal([3, 3, 3], mixed_balances, "locked and plain increments")

        # safe: locked increments started from randomly placed callers
        await ctx.all(
            *(
                ctx.perform(RandomizeOrchestration(request=GoodReadModifyWriteIncrement1(place=p)))
                for p in ALL_PLACES * 4
            )
        )
        randomized = await read_and_reset(ctx)
        check_equal([4, 4, 4], randomized, "randomized locked increments")
        return {
            "unlocked": unlocked,
            "single_lock": single,
            "all_locks": triple,
            "mixed": mixed_balances,
            "randomized": randomized,
        }
