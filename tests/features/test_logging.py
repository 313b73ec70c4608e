"""The replay-safe orchestration logger: every line exactly once, in order, under faults."""

from __future__ import annotations

from hosts.emulator import Emulator
from reactive import (
    Activity,
    ActivityContext,
    App,
    Orchestration,
    OrchestrationContext,
)
from tests.features._support import faults


class Step(Activity[int]):
    n: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.n


class Chatty(Orchestration[int]):
    name: str
    steps: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        ctx.log.info("%s: start", self.name)
        total = 0
        for i in range(self.steps):
            ctx.log.info("%s: before step %d", self.name, i)
            await ctx.sleep(5)
            total += await ctx.perform(Step(n=i))
            ctx.log.warning("%s: after step %d (replaying=%s)", self.name, i, False)
        ctx.log.info("%s: done with %d", self.name, total)
        return total


class ChattyParent(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        ctx.log.info("parent: start")
        results = await ctx.all(
            ctx.perform(Chatty(name="c1", steps=3)), ctx.perform(Chatty(name="c2", steps=3))
        )
        ctx.log.info("parent: done")
        return sum(results)


class ReplayAware(Orchestration[list[bool]]):
    async def execute(self, ctx: OrchestrationContext) -> list[bool]:
        seen = [ctx.is_replaying]
        await ctx.sleep(1)
        seen.append(ctx.is_replaying)
        return seen


app = App("logging")
app.register(Chatty, ChattyParent, Step, ReplayAware)


def expected_lines(name: str, steps: int) -> list[str]:
    lines = [f"{name}: start"]
    for i in range(steps):
        lines += [f"{name}: before step {i}", f"{name}: after step {i} (replaying=False)"]
    return [*lines, f"{name}: done with {sum(range(steps))}"]


def test_each_line_is_logged_once_in_order_without_faults() -> None:
    em = Emulator(app, partitions=3)
    client = em.client()
    assert client.wait(client.start(Chatty(name="solo", steps=6), instance_id="solo")) == 15
    assert em.app_lines() == expected_lines("solo", 6)


def test_each_line_is_logged_exactly_once_under_restore_faults() -> None:
    for seed in range(1, 6):
        em = Emulator(app, partitions=3, seed=seed, faults=faults(seed))
        client = em.client()
        assert client.wait(client.start(Chatty(name="x", steps=6), instance_id="x")) == 15
        assert em.restores > 0
        assert em.app_lines() == expected_lines("x", 6), f"seed {seed}"


def test_lines_of_concurrent_instances_are_each_logged_once_under_faults() -> None:
    for seed in range(1, 4):
        em = Emulator(app, partitions=4, seed=seed, faults=faults(seed))
        client = em.client()
        assert client.wait(client.start(ChattyParent(), instance_id="p")) == 6
        lines = em.app_lines()
        assert sorted(lines) == sorted(
            ["parent: start", "parent: done", *expected_lines("c1", 3), *expected_lines("c2", 3)]
        ), f"seed {seed}"
        for child in ("c1", "c2"):
            assert [line for line in lines if line.startswith(child)] == expected_lines(child, 3)
        assert lines[0] == "parent: start" and lines[-1] == "parent: done"


def test_log_levels_reach_the_host() -> None:
    em = Emulator(app, partitions=1)
    em.client().perform(Chatty(name="lv", steps=1))
    levels = {text: level for _, level, text in em.logs}
    assert levels["lv: start"] == 20  # INFO
    assert levels["lv: after step 0 (replaying=False)"] == 30  # WARNING


def test_is_replaying_is_false_on_the_first_run() -> None:
    client = Emulator(app, partitions=2).client()
    assert client.perform(ReplayAware()) == [False, False]
