"""TestEvents (single- and multi-place events, randomized callers, mixed with locked
increments) and TestEventsWithInit (an event performed under locks creates states whose
initializers run first)."""

from __future__ import annotations

from collections.abc import Sequence

from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    Event,
    Future,
    InitContext,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    SubscriptionContext,
    subscribe,
)

from .common import Observations, TestOrchestration, check_equal
from .places import (
    ALL_PLACES,
    GetBalance,
    GoodReadModifyWriteIncrement1,
    IncrementEvent,
    Place,
    PlaceKey,
    RandomizeEvent,
    RandomizeOrchestration,
    SetBalance,
    read_and_reset,
    reset_places,
)
from .states import GlobalCounterKey

A, B, C = ALL_PLACES

MIXED_EVENTS: list[list[Place]] = [
    [A], [B], [C], [A, B], [B, C], [C, A], [A, B, C], [B, C, A], [C, B, A],
    [B, A], [C, B], [A, C], [A], [B], [C],
]
"""Fifteen events in which every place appears nine times."""


class TestEvents(TestOrchestration):
    async def run(self, ctx: OrchestrationContext) -> Observations:
        await reset_places(ctx)

        single = []
        for place in ALL_PLACES:
            await ctx.all(
                ctx.perform(IncrementEvent(places=[place])),
                ctx.perform(IncrementEvent(places=[place])),
            )
            value = await ctx.perform(GetBalance(place=place))
            check_equal(2, value, f"two single-place events at {place.name}")
            single.append(value)
            await ctx.perform(SetBalance(place=place, new_balance=0))

        await ctx.all(*(ctx.perform(IncrementEvent(places=ps)) for ps in ([A, B], [B, C], [C, A])))
        pairs = await read_and_reset(ctx)
        check_equal([2, 2, 2], pairs, "two-place events")

        await ctx.all(*(ctx.perform(IncrementEvent(places=ps)) for ps in MIXED_EVENTS))
        mixed = await read_and_reset(ctx)
        check_equal([9, 9, 9], mixed, "many conflicting events")

        await ctx.all(
            *(ctx.perform(RandomizeEvent(event=IncrementEvent(places=ps))) for ps in MIXED_EVENTS)
        )
        randomized = await read_and_reset(ctx)
        check_equal([9, 9, 9], randomized, "randomized events")

        both: list[Future[None]] = [
            ctx.perform(RandomizeEvent(event=IncrementEvent(places=ps))) for ps in MIXED_EVENTS
        ]
        both += [
            ctx.perform(RandomizeOrchestration(request=GoodReadModifyWriteIncrement1(place=p)))
            for p in ALL_PLACES * 4
        ]
        await ctx.all(*both)
        with_locks = await read_and_reset(ctx)
        check_equal([13, 13, 13], with_locks, "randomized events and locked increments")
        return {
            "single": single,
            "pairs": pairs,
            "mixed": mixed,
            "randomized": randomized,
            "with_locks": with_locks,
        }


# -- events with initializers ---------------------------------------------------------------


class AccountNumberKey(Affinity):
    account: int


class MultiEventThree(GlobalCounterKey, Event):
    """Names places, the global counter and accounts; only the two account states
    subscribe, so only the account keys are affected."""

    places: list[Place]
    account_ids: list[int]

    def affinities(self) -> Sequence[Affinity]:
        return [PlaceKey(place=p) for p in self.places] + [
            AccountNumberKey(account=a) for a in self.account_ids
        ]


class InitializationActivity(Activity[int]):
    def execute(self, ctx: ActivityContext) -> int:
        return 100


class AccountState1(State[AccountNumberKey]):
    """Starts at 100, set by an initializer that awaits an activity."""

    balance: int = 0

    async def initialize(self, ctx: InitContext, key: int) -> None:
        self.balance = await ctx.perform(InitializationActivity())

    @subscribe(MultiEventThree)
    def on_event(self, ctx: SubscriptionContext, event: MultiEventThree) -> None:
        self.balance += 1


class AccountState2(State[AccountNumberKey]):
    """Starts at 100, its field default."""

    balance: int = 100

    @subscribe(MultiEventThree)
    def on_event(self, ctx: SubscriptionContext, event: MultiEventThree) -> None:
        self.balance += 1


class ReadBalance1(AccountNumberKey, Read[AccountState1, int]):
    def execute(self, ctx: ReadContext[AccountState1]) -> int:
        return ctx.state.balance


class ReadBalance2(AccountNumberKey, Read[AccountState2, int]):
    def execute(self, ctx: ReadContext[AccountState2]) -> int:
        return ctx.state.balance


class LockedMultiEventOrchestration(GlobalCounterKey, TestOrchestration, lock=True):
    """Holds the places, the global counter and the accounts; performs the event, then
    reads both account states and sets/reads the places."""

    places: list[Place]
    account_ids: list[int]

    def affinities(self) -> Sequence[Affinity]:
        return [PlaceKey(place=p) for p in self.places] + [
            AccountNumberKey(account=a) for a in self.account_ids
        ]

    async def run(self, ctx: OrchestrationContext) -> Observations:
        await ctx.perform(MultiEventThree(places=self.places, account_ids=self.account_ids))
        accounts = []
        for a in self.account_ids:
            first = await ctx.perform(ReadBalance1(account=a))
            second = await ctx.perform(ReadBalance2(account=a))
            check_equal(101, first, f"AccountState1 {a}")
            check_equal(101, second, f"AccountState2 {a}")
            accounts.append([first, second])
        for p in self.places:
            await ctx.perform(SetBalance(place=p, new_balance=1000))
        places = [await ctx.perform(GetBalance(place=p)) for p in self.places]
        check_equal([1000] * len(self.places), places, "places set under the lock")
        for p in self.places:
            await ctx.perform(SetBalance(place=p, new_balance=0))
        return {"accounts": accounts, "places": places}


class TestEventsWithInit(TestOrchestration):
    async def run(self, ctx: OrchestrationContext) -> Observations:
        first = await ctx.perform(
            LockedMultiEventOrchestration(account_ids=[0, 1, 2], places=[B, C])
        )
        second = await ctx.perform(
            LockedMultiEventOrchestration(account_ids=list(range(3, 11)), places=[B])
        )
        return {"first": first, "second": second}


class LockedEventThenReadSecond(Orchestration[list[list[int]]], lock=True):
    """Like LockedMultiEventOrchestration, but reads AccountState2 before AccountState1:
    the lock holder's later reads must observe its event whichever state they read."""

    account_ids: list[int]

    def affinities(self) -> Sequence[Affinity]:
        return [AccountNumberKey(account=a) for a in self.account_ids]

    async def execute(self, ctx: OrchestrationContext) -> list[list[int]]:
        await ctx.perform(MultiEventThree(places=[], account_ids=self.account_ids))
        balances = []
        for a in self.account_ids:
            second = await ctx.perform(ReadBalance2(account=a))
            first = await ctx.perform(ReadBalance1(account=a))
            balances.append([first, second])
        return balances
