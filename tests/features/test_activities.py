"""Activities: retry policies with durable backoff, time limits, async activities."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel

from hosts.emulator import Emulator
from reactive import (
    Activity,
    ActivityContext,
    ActivityTimeoutError,
    App,
    Orchestration,
    OrchestrationContext,
    OrchestrationMisuseError,
    ReactiveError,
    RetryPolicy,
)
from tests.features._support import fault_free_and_faulty


class Flaky(Activity[int]):
    """Fails until attempt ``succeed_on``; returns the attempt that succeeded."""

    succeed_on: int

    def execute(self, ctx: ActivityContext) -> int:
        if ctx.attempt < self.succeed_on:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return ctx.attempt


class FlakyByDefault(Activity[int]):
    """Declares its own retry policy as a class attribute."""

    retry: ClassVar[RetryPolicy | None] = RetryPolicy(max_attempts=3, first_delay=10)

    def execute(self, ctx: ActivityContext) -> int:
        if ctx.attempt < 3:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        return ctx.attempt


class RetryFlaky(Orchestration[list[float]]):
    succeed_on: int
    attempts: int

    async def execute(self, ctx: OrchestrationContext) -> list[float]:
        before = ctx.now().timestamp()
        policy = RetryPolicy(max_attempts=self.attempts, first_delay=5, backoff=3)
        attempt = await ctx.perform(Flaky(succeed_on=self.succeed_on), retry=policy)
        return [attempt, ctx.now().timestamp() - before]


class NoRetry(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            await ctx.perform(Flaky(succeed_on=2))
        except ConnectionError as exc:
            return str(exc)
        return "succeeded"


class DefaultRetry(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(FlakyByDefault())


class Snail(Activity[str]):
    seconds: float
    time_limit: ClassVar[float | None] = 0.2

    def execute(self, ctx: ActivityContext) -> str:
        time.sleep(self.seconds)
        return "finished"


class AsyncSnail(Activity[str]):
    seconds: float
    time_limit: ClassVar[float | None] = 0.2

    async def execute(self, ctx: ActivityContext) -> str:
        await asyncio.sleep(self.seconds)
        return "finished"


class Limited(Orchestration[str]):
    seconds: float
    use_async: bool = False

    async def execute(self, ctx: OrchestrationContext) -> str:
        op: Activity[str] = (
            AsyncSnail(seconds=self.seconds) if self.use_async else Snail(seconds=self.seconds)
        )
        try:
            return await ctx.perform(op)
        except ActivityTimeoutError as exc:
            return f"timeout: {exc}"


class Point(BaseModel):
    x: int
    y: int


class AsyncAdd(Activity[Point]):
    a: Point
    b: Point

    async def execute(self, ctx: ActivityContext) -> Point:
        await asyncio.sleep(0)
        ctx.log.info("adding in an async activity")
        return Point(x=self.a.x + self.b.x, y=self.a.y + self.b.y)


class AddPoints(Orchestration[list[int]]):
    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        futures = [
            ctx.perform(AsyncAdd(a=Point(x=i, y=1), b=Point(x=10, y=i))) for i in range(4)
        ]
        points: list[Point] = await ctx.all(*futures)
        assert all(isinstance(p, Point) for p in points)
        return [p.x * 100 + p.y for p in points]


class BadResult(Activity[int]):
    def execute(self, ctx: ActivityContext) -> int:
        return object()  # type: ignore[return-value]


class CallsBadResult(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            await ctx.perform(BadResult())
        except Exception as exc:
            return type(exc).__name__
        return "no error"


class SlowFirst(Activity[int]):
    """Exceeds its time limit on the first attempt only."""

    time_limit: ClassVar[float | None] = 0.2

    def execute(self, ctx: ActivityContext) -> int:
        if ctx.attempt == 1:
            time.sleep(1.0)
        return ctx.attempt


class RetriesTimeout(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(SlowFirst(), retry=RetryPolicy(max_attempts=2, first_delay=1))


class CappedBackoff(Orchestration[list[float]]):
    async def execute(self, ctx: OrchestrationContext) -> list[float]:
        before = ctx.now().timestamp()
        policy = RetryPolicy(max_attempts=4, first_delay=100, backoff=10, max_delay=150)
        attempt = await ctx.perform(Flaky(succeed_on=4), retry=policy)
        return [attempt, ctx.now().timestamp() - before]


app = App("activities")
app.register(
    Flaky, FlakyByDefault, RetryFlaky, NoRetry, DefaultRetry, Snail, AsyncSnail, Limited,
    AsyncAdd, AddPoints, BadResult, CallsBadResult, SlowFirst, RetriesTimeout, CappedBackoff,
)


def test_retry_fails_twice_then_succeeds_with_durable_backoff() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        return client.wait(client.start(RetryFlaky(succeed_on=3, attempts=5), instance_id="r"))

    attempt, waited = fault_free_and_faulty(app, scenario, same_on_every_host=False)
    assert attempt == 3
    assert waited >= 5 + 15  # first_delay, then first_delay * backoff


def test_exhausted_retries_raise_the_last_error() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(RetryFlaky(succeed_on=10, attempts=3), instance_id="r")
        with pytest.raises(ConnectionError) as info:
            client.wait(iid)
        return str(info.value)

    assert fault_free_and_faulty(app, scenario) == "attempt 3 failed"


def test_without_a_policy_the_first_failure_is_final() -> None:
    client = Emulator(app, partitions=2).client()
    assert client.perform(NoRetry()) == "attempt 1 failed"


def test_class_level_retry_policy_applies() -> None:
    client = Emulator(app, partitions=2).client()
    assert client.perform(DefaultRetry()) == 3


def test_each_attempt_runs_once_without_faults() -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    assert client.perform(RetryFlaky(succeed_on=3, attempts=5))[0] == 3
    assert em.activity_runs == 3


@pytest.mark.parametrize("use_async", [False, True])
def test_time_limit_raises_activity_timeout_error(use_async: bool) -> None:
    client = Emulator(app, partitions=2).client()
    started = time.monotonic()
    result = client.perform(Limited(seconds=2.0, use_async=use_async))
    assert result.startswith("timeout: ")
    assert time.monotonic() - started < 1.5


def test_time_limit_error_reaches_the_client_as_timeout_error() -> None:
    class Unguarded(Orchestration[str]):
        async def execute(self, ctx: OrchestrationContext) -> str:
            return await ctx.perform(Snail(seconds=2.0))

    local = App("timeout-client")
    local.register(Unguarded, Snail)
    client = Emulator(local, partitions=1).client()
    with pytest.raises(ActivityTimeoutError) as info:
        client.perform(Unguarded())
    assert isinstance(info.value, TimeoutError)


@pytest.mark.parametrize("use_async", [False, True])
def test_activity_within_its_time_limit_succeeds(use_async: bool) -> None:
    client = Emulator(app, partitions=2).client()
    assert client.perform(Limited(seconds=0.01, use_async=use_async)) == "finished"


def test_async_activities_return_typed_results() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        return client.wait(client.start(AddPoints(), instance_id="points"))

    assert fault_free_and_faulty(app, scenario) == [1001, 1102, 1203, 1304]


def test_activity_logs_reach_the_host() -> None:
    em = Emulator(app, partitions=2)
    em.client().perform(AddPoints())
    assert em.app_lines().count("adding in an async activity") == 4


def test_unserializable_result_fails_the_call() -> None:
    client = Emulator(app, partitions=2).client()
    assert client.perform(CallsBadResult()) == "ReactiveError"


def test_a_timed_out_attempt_is_retried() -> None:
    client = Emulator(app, partitions=2).client()
    assert client.perform(RetriesTimeout()) == 2


def test_backoff_delays_are_capped_by_max_delay() -> None:
    client = Emulator(app, partitions=2).client()
    attempt, waited = client.perform(CappedBackoff())
    assert attempt == 4
    assert 100 + 150 + 150 <= waited < 100 + 150 + 150 + 5


# -- user code cannot take the host down or wedge it ----------------------------------------------


class Quits(Activity[int]):
    how: str  # "exit" or "interrupt"

    def execute(self, ctx: ActivityContext) -> int:
        if self.how == "exit":
            sys.exit(3)
        raise KeyboardInterrupt


class CatchesQuits(Orchestration[str]):
    how: str

    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            await ctx.perform(Quits(how=self.how))
        except ReactiveError as exc:
            return str(exc)
        return "no error"


RELEASE = threading.Event()  # set at the end of the test that strands threads


class Overruns(Activity[str]):
    time_limit: ClassVar[float | None] = 0.02

    def execute(self, ctx: ActivityContext) -> str:
        RELEASE.wait(10)
        return "late"


class Healthy(Activity[str]):
    time_limit: ClassVar[float | None] = 1.0

    def execute(self, ctx: ActivityContext) -> str:
        return "healthy"


class OverrunsThenHealthy(Orchestration[list[str]]):
    overruns: int

    async def execute(self, ctx: OrchestrationContext) -> list[str]:
        outcomes = []
        for _ in range(self.overruns):
            try:
                outcomes.append(await ctx.perform(Overruns()))
            except ActivityTimeoutError:
                outcomes.append("timeout")
        outcomes.append(await ctx.perform(Healthy()))
        return outcomes


class FailsRemotely(Activity[int]):
    def execute(self, ctx: ActivityContext) -> int:
        raise RuntimeError("no running event loop in the payment service")


class LetsActivityErrorThrough(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(FailsRemotely())


guarded = App("guarded-activities")
guarded.register(
    Quits, CatchesQuits, Overruns, Healthy, OverrunsThenHealthy, AsyncAdd, AddPoints,
    AsyncSnail, Limited, Snail, FailsRemotely, LetsActivityErrorThrough,
)


@pytest.mark.parametrize(("how", "raised"), [("exit", "SystemExit(3)"),
                                             ("interrupt", "KeyboardInterrupt")])
def test_exiting_or_interrupting_fails_the_activity_not_the_host(how: str, raised: str) -> None:
    em = Emulator(guarded, partitions=2)
    message = em.client().perform(CatchesQuits(how=how))
    assert f"activity Quits raised {raised}" in message
    assert em.client().perform(AddPoints()) == [1001, 1102, 1203, 1304]  # the host lives on


def test_overrunning_activities_do_not_starve_later_ones() -> None:
    try:
        client = Emulator(guarded, partitions=1).client()
        outcomes = client.perform(OverrunsThenHealthy(overruns=12))
        assert outcomes == ["timeout"] * 12 + ["healthy"]
    finally:
        RELEASE.set()


@pytest.mark.parametrize("use_async", [False, True])
def test_activities_run_when_the_host_runs_inside_an_event_loop(use_async: bool) -> None:
    async def host_function() -> tuple[list[int], str, str]:
        client = Emulator(guarded, partitions=2).client()
        return (
            client.perform(AddPoints()),
            client.perform(Limited(seconds=0.01, use_async=use_async)),
            client.perform(Limited(seconds=2.0, use_async=use_async)),
        )

    points, quick, slow = asyncio.run(host_function())
    assert points == [1001, 1102, 1203, 1304]
    assert quick == "finished"
    assert slow.startswith("timeout: ")


def test_an_activity_error_mentioning_event_loops_is_not_blamed_on_the_orchestration() -> None:
    client = Emulator(guarded, partitions=2).client()
    with pytest.raises(RuntimeError, match="payment service") as caught:
        client.perform(LetsActivityErrorThrough())
    assert not isinstance(caught.value, OrchestrationMisuseError)
