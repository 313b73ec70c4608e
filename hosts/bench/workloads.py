"""The benchmark application: small operations whose results are easy to verify."""

from __future__ import annotations

from collections.abc import Sequence

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
    Update,
    UpdateContext,
)

CITIES = ("Tokyo", "Seattle", "London", "Lima", "Oslo")


class SayHello(Activity[str]):
    name: str

    def execute(self, ctx: ActivityContext) -> str:
        return f"Hello {self.name}"


class HelloSequence(Orchestration[list[str]]):
    """Performs ``length`` activities one after another."""

    length: int = 3

    async def execute(self, ctx: OrchestrationContext) -> list[str]:
        return [await ctx.perform(SayHello(name=city)) for city in CITIES[: self.length]]


def expected_sequence(length: int) -> list[str]:
    return [f"Hello {city}" for city in CITIES[:length]]


class Square(Activity[int]):
    n: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.n * self.n


class FanOut(Orchestration[int]):
    """Performs ``width`` activities in parallel and sums their results."""

    width: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        results = await ctx.all(*[ctx.perform(Square(n=i)) for i in range(self.width)])
        return sum(results)


def expected_fan_out(width: int) -> int:
    return sum(i * i for i in range(width))


class CounterKey(Affinity):
    counter: int


class Counter(State[CounterKey]):
    value: int = 0


class Increment(CounterKey, Update[Counter, int], create=True):
    def execute(self, ctx: UpdateContext[Counter]) -> int:
        ctx.state.value += 1
        return ctx.state.value


class CounterValue(CounterKey, Read[Counter, int]):
    def execute(self, ctx: ReadContext[Counter]) -> int:
        return ctx.state.value


class AccountKey(Affinity):
    account: int


class Account(State[AccountKey]):
    balance: int = 0


class Open(AccountKey, Update[Account, int], create=True):
    amount: int

    def execute(self, ctx: UpdateContext[Account]) -> int:
        ctx.state.balance = self.amount
        return ctx.state.balance


class Adjust(AccountKey, Update[Account, int]):
    delta: int

    def execute(self, ctx: UpdateContext[Account]) -> int:
        ctx.state.balance += self.delta
        return ctx.state.balance


class Balance(AccountKey, Read[Account, int]):
    def execute(self, ctx: ReadContext[Account]) -> int:
        return ctx.state.balance


class Transfer(Orchestration[bool], lock=True):
    """Moves money between two accounts inside a critical section over both."""

    source: int
    target: int
    amount: int

    def affinities(self) -> Sequence[Affinity]:
        return [AccountKey(account=self.source), AccountKey(account=self.target)]

    async def execute(self, ctx: OrchestrationContext) -> bool:
        if await ctx.perform(Balance(account=self.source)) < self.amount:
            return False
        await ctx.perform(Adjust(account=self.source, delta=-self.amount))
        await ctx.perform(Adjust(account=self.target, delta=self.amount))
        return True


class WaitAfterSequence(Orchestration[int]):
    """For the replay benchmark: ``length`` activities, then waits for an event."""

    length: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        for i in range(self.length):
            await ctx.perform(Square(n=i))
        return int(await ctx.wait_for_event("go"))


app = App("bench")
app.register(
    SayHello, HelloSequence, Square, FanOut, Counter, Increment, CounterValue,
    Account, Open, Adjust, Balance, Transfer, WaitAfterSequence,
)
