"""The in-process AWS test host (hosts/aws/testing.py): ``run()`` returns only once every
invocation it started has finished, and never invokes a partition twice at once."""

from __future__ import annotations

import threading
import time

from hosts.aws.testing import aws_test_host
from reactive import Activity, ActivityContext, App, Orchestration, OrchestrationContext

SLOW_PARTITION = 0
SLOW_SECONDS = 0.3  # a productive invocation of the slow partition finishes this late


class Square(Activity[int]):
    value: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.value * self.value


class SumOfSquares(Orchestration[int]):
    n: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        total = 0
        for step in range(self.n):  # one round of invocations per step, on every partition
            squares = await ctx.all(*[ctx.perform(Square(value=v)) for v in range(step, step + 8)])
            total += sum(squares)
        return total


def test_run_waits_for_every_invocation_of_its_round(moto_endpoint: str) -> None:
    app = App("testing-host")
    app.register(SumOfSquares)
    app.register(Square)
    in_flight: dict[int, int] = {}
    overlaps: list[int] = []
    lock = threading.Lock()
    with aws_test_host(app, moto_endpoint, partitions=4, seed=1) as host:
        invoke = host.invoke

        def slow_invoke(index: int) -> bool:
            with lock:
                if in_flight.get(index):
                    overlaps.append(index)
                in_flight[index] = in_flight.get(index, 0) + 1
            try:
                productive = invoke(index)
                if productive and index == SLOW_PARTITION:
                    time.sleep(SLOW_SECONDS)
                return productive
            finally:
                with lock:
                    in_flight[index] -= 1

        host.invoke = slow_invoke  # type: ignore[method-assign]
        client = host.client()
        iid = client.start(SumOfSquares(n=6))
        assert host.run()
        with lock:
            assert sum(in_flight.values()) == 0  # nothing still running when run() returns
        assert overlaps == []
        assert client.wait(iid) == sum(v * v for s in range(6) for v in range(s, s + 8))
