"""An application whose startup goes wrong in every way the CLI reports: a failing
orchestration, a failing fork nobody awaits, and an instance left waiting for an event."""

from __future__ import annotations

from reactive import Activity, ActivityContext, App, Orchestration, OrchestrationContext

app = App("troubled")


class QuotaExceeded(Exception):
    pass


class Charge(Activity[int]):
    amount: int

    def execute(self, ctx: ActivityContext) -> int:
        if self.amount > 100:
            raise QuotaExceeded(f"{self.amount} is over the quota of 100")
        return self.amount


class Billing(Orchestration[int], startup=True):
    async def execute(self, ctx: OrchestrationContext) -> int:
        ctx.log.warning("charging too much")
        return await ctx.perform(Charge(amount=500))


class Background(Orchestration[None], startup=True):
    async def execute(self, ctx: OrchestrationContext) -> None:
        ctx.fork(Charge(amount=1000))


class Approval(Orchestration[str], startup=True):
    async def execute(self, ctx: OrchestrationContext) -> str:
        value = await ctx.wait_for_event("approved")
        return str(value)


class Busy(Orchestration[int]):
    """Many small steps, for progress reports."""

    steps: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        total = 0
        for i in range(self.steps):
            total += await ctx.perform(Charge(amount=i % 100))
        return total


app.register(Billing, Background, Approval, Busy, Charge)
