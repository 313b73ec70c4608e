"""An application and a fixed drive of one partition that leaves every kind of record a
snapshot head holds: a pending activity, one waiting for its retry timer, a sleep timer,
a state, a completed instance. ``python -m tests.core.snapshot_app FILE`` writes the
snapshot (how ``fixtures/snapshot_v2.json`` was made, with the code of the version)."""

from __future__ import annotations

import json
import sys
from typing import Any

from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    Orchestration,
    OrchestrationContext,
    RetryPolicy,
    State,
    Update,
    UpdateContext,
)
from reactive.core import messages as m
from reactive.core.partition import Partition
from reactive.hosting import execute_activity

T0 = 1_000_000.0


class TallyKey(Affinity):
    tally: str


class Tally(State[TallyKey]):
    total: int = 0


class AddToTally(TallyKey, Update[Tally, int], create=True):
    amount: int

    def execute(self, ctx: UpdateContext[Tally]) -> int:
        ctx.state.total += self.amount
        return ctx.state.total


class Double(Activity[int]):
    n: int

    def execute(self, ctx: ActivityContext) -> int:
        return 2 * self.n


class Flaky(Activity[int]):
    def execute(self, ctx: ActivityContext) -> int:
        raise RuntimeError("not yet")


class SleepThenAdd(Orchestration[int]):
    amount: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        await ctx.sleep(3600)
        return await ctx.perform(AddToTally(tally="t", amount=self.amount))


class Retrying(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(Flaky(), retry=RetryPolicy(max_attempts=3, first_delay=600))


class Doubling(Orchestration[int]):
    n: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(Double(n=self.n))


app = App("snapshot-codec")
app.register(AddToTally, Double, Flaky, SleepThenAdd, Retrying, Doubling)
schema = app.compile()


def drive() -> Partition:
    """One partition, driven by fixed inputs at fixed times."""
    part = Partition(schema, 0, 1)
    part.first_start(T0)
    done = part.process(m.Start(0, "done", Doubling(n=4)), T0)
    part.process(execute_activity(schema, done.activities[0], _quiet), T0 + 1)
    part.process(m.Start(0, "sleeper", SleepThenAdd(amount=5)), T0 + 2)
    flaky = part.process(m.Start(0, "retrying", Retrying()), T0 + 3)
    part.process(execute_activity(schema, flaky.activities[0], _quiet), T0 + 4)
    part.process(m.Start(0, "pending", Doubling(n=7)), T0 + 5)  # its activity never ran
    return part


def _quiet(level: int, text: str) -> None:
    pass


def snapshot_json() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(drive().snapshot()))
    return result


if __name__ == "__main__":
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        json.dump(snapshot_json(), out, indent=1, sort_keys=True)
        out.write("\n")
