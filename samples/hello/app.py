"""Hello World: a startup orchestration performs the ``Hello`` orchestration N times."""

from __future__ import annotations

from pydantic import BaseModel

from reactive import App, Orchestration, OrchestrationContext

app = App("hello")


class HelloConfig(BaseModel):
    """How many times the startup orchestration says hello."""

    repetitions: int = 5


@app.register
class Hello(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        ctx.log.info("Hello World was called")
        return "Hello World"


@app.register
class HelloStartup(Orchestration[list[str]], startup=True):
    """Started once when the application first starts; says hello N times in sequence."""

    async def execute(self, ctx: OrchestrationContext) -> list[str]:
        config = ctx.config(HelloConfig) or HelloConfig()
        return [await ctx.perform(Hello()) for _ in range(config.repetitions)]
