"""Orchestrations every application has: delayed forks and client-side performs."""

from __future__ import annotations

from typing import Any

from reactive.core.context import OrchestrationContext
from reactive.model import Orchestration


class ScheduledFork(Orchestration[None]):
    """Sleeps on a durable timer, then forks ``op`` (what ``ctx.schedule`` starts)."""

    delay: float
    op: list[Any]

    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.sleep(self.delay)
        ctx.fork(ctx._run.partition.schema.decode_op(self.op))


class ClientPerform(Orchestration[Any]):
    """Performs one operation for a client and keeps its result as the instance result."""

    op: list[Any]

    async def execute(self, ctx: OrchestrationContext) -> Any:
        schema = ctx._run.partition.schema
        op = schema.decode_op(self.op)
        result = await ctx.perform(op)  # type: ignore[call-overload]
        return schema.info(op).result.dump_python(result, mode="json")


class ClientFork(Orchestration[None]):
    """Forks one operation for a client."""

    op: list[Any]

    async def execute(self, ctx: OrchestrationContext) -> None:
        ctx.fork(ctx._run.partition.schema.decode_op(self.op))


BUILTINS = (ScheduledFork, ClientPerform, ClientFork)
