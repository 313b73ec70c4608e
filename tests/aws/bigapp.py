"""A small app for payloads over the SQS message limit."""

from __future__ import annotations

from reactive import App, Orchestration, OrchestrationContext

app = App("big")


@app.register
class Measure(Orchestration[int]):
    """The length of a (big) text input."""

    text: str

    async def execute(self, ctx: OrchestrationContext) -> int:
        return len(self.text)


@app.register
class Produce(Orchestration[str]):
    """A text of ``size`` characters (a big result)."""

    size: int

    async def execute(self, ctx: OrchestrationContext) -> str:
        return "r" * self.size


@app.register
class RoundTrip(Orchestration[int]):
    """A big result travels to another instance (likely on another partition) as its
    input, and its length comes back."""

    size: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        text = await ctx.perform(Produce(size=self.size))
        return await ctx.perform(Measure(text=text))
