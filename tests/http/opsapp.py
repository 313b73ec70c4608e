"""The application the HTTP tests drive: greetings, an approval that waits for an event,
a failing orchestration, and a keyed counter with an update and a read."""

from __future__ import annotations

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

app = App("ops")


class CounterKey(Affinity):
    counter: str


@app.register
class Counter(State[CounterKey]):
    count: int = 0


@app.register
class Add(CounterKey, Update[Counter, int], create=True):
    amount: int = 1

    def execute(self, ctx: UpdateContext[Counter]) -> int:
        if self.amount < 0:
            raise ValueError("amount must not be negative")
        ctx.state.count += self.amount
        return ctx.state.count


@app.register
class Get(CounterKey, Read[Counter, int]):
    def execute(self, ctx: ReadContext[Counter]) -> int:
        return ctx.state.count


@app.register
class Greet(Orchestration[str]):
    name: str
    times: int = 1

    async def execute(self, ctx: OrchestrationContext) -> str:
        return " ".join([f"hello {self.name}"] * self.times)


@app.register
class Other(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return 7


@app.register
class Approval(Orchestration[str]):
    request: str

    async def execute(self, ctx: OrchestrationContext) -> str:
        decision = await ctx.wait_for_event("decision")
        return f"{self.request}: {decision}"


@app.register
class Broken(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        raise RuntimeError("broken on purpose")


@app.register
class Votes(Orchestration[list[str]]):
    """Collects ``count`` values of the event ``vote``."""

    count: int = 2

    async def execute(self, ctx: OrchestrationContext) -> list[str]:
        return [await ctx.wait_for_event("vote") for _ in range(self.count)]


@app.register
class Nap(Orchestration[str]):
    """Greets, then sleeps on a durable timer."""

    seconds: float = 3600

    async def execute(self, ctx: OrchestrationContext) -> str:
        greeting = await ctx.perform(Greet(name="nap"))
        await ctx.sleep(self.seconds)
        return greeting
