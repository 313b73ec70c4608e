"""What a commit costs the core on a run whose history spans many commits: one partition
runs ``n`` orchestrations of ``k`` sequential activities and, after every message, takes
its delta and encodes it as JSON, as a store does. ``python tests/core/commit_cost.py N K``
prints the CPU per message and the bytes per commit. It imports only the ``reactive``
package, so that it runs as it is against another version of that package (alternate it
with ``PYTHONPATH`` pointing at each; the figures of docs/benchmarks.md were taken so)."""

from __future__ import annotations

import json
import sys
import time

from reactive import Activity, ActivityContext, App, Orchestration, OrchestrationContext
from reactive.core import messages as m
from reactive.core.partition import Partition
from reactive.hosting import ActivityTask, execute_activity


class Step(Activity[int]):
    n: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.n


class Sequence(Orchestration[int]):
    k: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        total = 0
        for i in range(self.k):
            total += await ctx.perform(Step(n=i))
        return total


app = App("commit-cost")
app.register(Step)
app.register(Sequence)
schema = app.compile()


def _quiet(level: int, text: str) -> None:
    pass


def measure(n: int, k: int) -> tuple[float, float]:
    """(CPU ms per message, JSON bytes per commit); checks every result."""
    part = Partition(schema, 0, 1)
    pending: list[ActivityTask] = []
    commits = written = 0
    start = time.process_time()
    for i in range(n):
        pending += part.process(m.Start(0, f"s{i}", Sequence(k=k)), 0.0).activities
    while pending:
        task = pending.pop(0)
        pending += part.process(execute_activity(schema, task, _quiet), 0.0).activities
        written += len(json.dumps(part.take_delta(), separators=(",", ":")))
        commits += 1
    cpu = time.process_time() - start
    for i in range(n):
        status = part.instance_status(f"s{i}")
        if status is None or status.get("result") != k * (k - 1) // 2:
            raise SystemExit(f"s{i} ended as {status}")
    return cpu / commits * 1000, written / commits


if __name__ == "__main__":
    ms, size = measure(int(sys.argv[1]), int(sys.argv[2]))
    print(f"{ms:.4f} ms/message {size:.0f} bytes/commit")
