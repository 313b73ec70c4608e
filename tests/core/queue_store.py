"""A fixed drive of one partition whose key queues fill and drain while its snapshots and
deltas are taken, as a store would hold them. ``python tests/core/queue_store.py FILE``
writes ``{"base": snapshot, "deltas": [...]}`` (how ``fixtures/queue_store_v3.json`` and
``queue_store_v4.json`` were made, with main's code of snapshot versions 3 and 4). It
imports only the ``reactive`` package, so that it runs as it is against another version
of that package."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    Orchestration,
    OrchestrationContext,
    State,
    Update,
    UpdateContext,
)
from reactive.core import messages as m
from reactive.core.partition import Effects, Partition
from reactive.hosting import execute_activity

T0 = 2_000_000.0


class SlotKey(Affinity):
    slot: int


class Slot(State[SlotKey]):
    total: int = 0


class AddToSlot(SlotKey, Update[Slot, int], create=True):
    amount: int

    def execute(self, ctx: UpdateContext[Slot]) -> int:
        ctx.state.total += self.amount
        return ctx.state.total


class Think(Activity[int]):
    n: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.n


class Hold(Orchestration[int], lock=True):
    """Holds two slots while its activity runs, then adds to both."""

    first: int
    second: int

    def affinities(self) -> Sequence[Affinity]:
        return [SlotKey(slot=self.first), SlotKey(slot=self.second)]

    async def execute(self, ctx: OrchestrationContext) -> int:
        n = await ctx.perform(Think(n=self.first + self.second))
        await ctx.perform(AddToSlot(slot=self.first, amount=n))
        return await ctx.perform(AddToSlot(slot=self.second, amount=n))


app = App("queue-store")
app.register(AddToSlot, Think, Hold)
schema = app.compile()


def _quiet(level: int, text: str) -> None:
    pass


def _update(part: Partition, slot: int, amount: int, when: float) -> Effects:
    op_id = f"u{slot}-{amount}"
    return part.process(m.LocalOp(0, op_id, AddToSlot(slot=slot, amount=amount),
                                  ("SlotKey", str(slot))), when)


def drive(checkpoint: Callable[[Partition, int], None]) -> Partition:
    """One partition driven by fixed inputs at fixed times; ``checkpoint(part, step)``
    after each step (step 0: the base)."""
    part = Partition(schema, 0, 1)
    part.first_start(T0)
    _update(part, 1, 1, T0)
    _update(part, 2, 1, T0)
    checkpoint(part, 0)
    first = part.process(m.Start(0, "h1", Hold(first=1, second=2)), T0 + 1)
    for amount in range(10, 14):
        _update(part, 1, amount, T0 + 2)  # queued behind h1's lock
    part.process(m.Start(0, "h2", Hold(first=1, second=3)), T0 + 3)  # queued too
    _update(part, 2, 20, T0 + 3)
    checkpoint(part, 1)
    _update(part, 1, 30, T0 + 4)  # one more behind the same queue
    checkpoint(part, 2)
    # h1 finishes: its updates run, the queued ones drain, h2 takes the lock
    second = part.process(execute_activity(schema, first.activities[0], _quiet), T0 + 5)
    _update(part, 1, 40, T0 + 6)
    checkpoint(part, 3)
    part.process(execute_activity(schema, second.activities[0], _quiet), T0 + 7)
    checkpoint(part, 4)
    return part


def store_json() -> dict[str, Any]:
    """The base snapshot and the deltas of each later step, through JSON."""
    taken: list[Any] = []

    def checkpoint(part: Partition, step: int) -> None:
        # through JSON at once, as a store writes it: the data shares lists with the live
        # partition (a run's history), which go on changing
        taken.append(json.loads(json.dumps(part.snapshot() if step == 0 else part.take_delta())))

    drive(checkpoint)
    return {"base": taken[0], "deltas": taken[1:]}


if __name__ == "__main__":
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(store_json(), out, indent=1, sort_keys=True)
        out.write("\n")
