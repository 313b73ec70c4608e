"""Orchestrations every application has: delayed forks and client-side performs.

They are part of the core: the runner starts them with the schema (to decode the operation
they carry) instead of reaching into their context's internals."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reactive.model import Orchestration

if TYPE_CHECKING:
    from reactive.context import OrchestrationContext
    from reactive.schema import Schema


class Builtin(Orchestration[Any]):
    """A runtime orchestration: the runner calls :meth:`run` rather than ``execute``."""

    op: list[Any]

    async def run(self, ctx: OrchestrationContext, schema: Schema) -> Any:
        raise NotImplementedError

    async def execute(self, ctx: OrchestrationContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__} is started by the runtime only")


class ScheduledFork(Builtin):
    """Sleeps on a durable timer, then forks ``op`` (what ``ctx.schedule`` starts)."""

    delay: float

    async def run(self, ctx: OrchestrationContext, schema: Schema) -> None:
        await ctx.sleep(self.delay)
        ctx.fork(schema.decode_op(self.op))


class ClientPerform(Builtin):
    """Performs one operation for a client and keeps its result as the instance result."""

    async def run(self, ctx: OrchestrationContext, schema: Schema) -> Any:
        op = schema.decode_op(self.op)
        result = await ctx.perform(op)  # type: ignore[call-overload]
        return schema.info(op).result.dump_python(result, mode="json")


class ClientFork(Builtin):
    """Forks one operation for a client."""

    async def run(self, ctx: OrchestrationContext, schema: Schema) -> None:
        ctx.fork(schema.decode_op(self.op))


BUILTINS = (ScheduledFork, ClientPerform, ClientFork)
