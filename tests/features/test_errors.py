"""Errors that help: they point at the application code that failed, say how many
attempts were made, and describe what went wrong in full."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from hosts.emulator import Emulator
from reactive import (
    Activity,
    ActivityContext,
    App,
    ApplicationError,
    DefinitionError,
    NonDeterminismError,
    Orchestration,
    OrchestrationContext,
    ReactiveError,
    RetryPolicy,
)
from reactive.core.partition import Partition
from tests.features._support import instance_owner, snapshot_bytes

HERE = "tests/features/test_errors.py"


class Boom(Activity[int]):
    def execute(self, ctx: ActivityContext) -> int:
        return {"present": 1}["missing"]


BOOM_LINE = Boom.execute.__code__.co_firstlineno + 1


class Unlisted(Exception):
    pass


class AlwaysFails(Activity[int]):
    registered: bool

    def execute(self, ctx: ActivityContext) -> int:
        if self.registered:
            raise ConnectionError(f"attempt {ctx.attempt} failed")
        raise Unlisted(f"attempt {ctx.attempt} failed")


class CallsBoom(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(Boom())


CALLS_BOOM_LINE = CallsBoom.execute.__code__.co_firstlineno + 1


class Retries(Orchestration[int]):
    registered: bool

    async def execute(self, ctx: OrchestrationContext) -> int:
        policy = RetryPolicy(max_attempts=3, first_delay=1)
        return await ctx.perform(AlwaysFails(registered=self.registered), retry=policy)


class ForksRetries(Orchestration[None]):
    async def execute(self, ctx: OrchestrationContext) -> None:
        ctx.fork(Retries(registered=False))
        await ctx.finish()


class WrongType(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return "not a number"  # type: ignore[return-value]


class NotAsync(Orchestration[int]):
    def execute(self, ctx: OrchestrationContext) -> int:  # type: ignore[override]
        return 1


VALUE = 1  # the orchestration below reads this module-level value


class Echo(Activity[int]):
    value: int

    def execute(self, ctx: ActivityContext) -> int:
        return self.value


class EchoesThenWaits(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        await ctx.perform(Echo(value=sys.modules[__name__].VALUE))
        return int(await ctx.wait_for_event("go"))


app = App("errors")
app.register(
    Boom, AlwaysFails, CallsBoom, Retries, ForksRetries, WrongType, NotAsync, Echo,
    EchoesThenWaits,
)


def _failed_record(em: Emulator, iid: str) -> dict[str, Any]:
    record = em.partition(instance_owner(em, iid)).instance_status(iid)
    assert record is not None and record["status"] == "failed"
    error: dict[str, Any] = record["error"]
    return error


def test_a_failure_points_at_the_application_line_that_raised_it() -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    iid = client.start(CallsBoom())
    with pytest.raises(KeyError) as caught:
        client.wait(iid)
    notes = getattr(caught.value, "__notes__", [])
    assert f"raised at {HERE}:{BOOM_LINE} in execute" in notes
    error = _failed_record(em, iid)
    # the failed status keeps where it was first raised and the application's traceback
    assert error["where"] == f"{HERE}:{BOOM_LINE} in execute"
    assert 'return {"present": 1}["missing"]' in error["traceback"]
    assert "re-raised:" in error["traceback"]
    assert f"line {CALLS_BOOM_LINE}, in execute" in error["traceback"]
    assert "reactive/core" not in error["traceback"]


def test_exhausted_retries_say_after_how_many_attempts() -> None:
    client = Emulator(app, partitions=2).client()
    with pytest.raises(ConnectionError) as registered:
        client.perform(Retries(registered=True))
    assert str(registered.value) == "attempt 3 failed"
    assert "failed after 3 attempts" in getattr(registered.value, "__notes__", [])
    with pytest.raises(ApplicationError) as unlisted:
        client.perform(Retries(registered=False))
    assert str(unlisted.value) == "Unlisted: attempt 3 failed (after 3 attempts)"


def test_an_unhandled_failure_names_its_place() -> None:
    em = Emulator(app, partitions=2)
    em.client().perform(ForksRetries())
    (line,) = em.unhandled
    assert "attempt 3 failed (after 3 attempts)" in line
    assert f"(at {HERE}:" in line


def test_a_result_of_the_wrong_type_is_described_in_full() -> None:
    client = Emulator(app, partitions=1).client()
    with pytest.raises(ReactiveError) as caught:
        client.perform(WrongType())
    message = str(caught.value)
    assert "WrongType returned str 'not a number'" in message
    assert "declared result type int" in message
    assert "Expected `int`" in message
    assert not message.rstrip().endswith(":")


def test_a_plain_def_execute_names_the_class_that_must_be_async() -> None:
    client = Emulator(app, partitions=1).client()
    with pytest.raises(DefinitionError, match=r"NotAsync\.execute must be declared 'async def'"):
        client.perform(NotAsync())


def test_non_determinism_counts_calls_from_one_and_shows_the_inputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    iid = client.start(EchoesThenWaits(), instance_id="echoes")
    while em.step():
        pass
    home = instance_owner(em, iid)
    data = snapshot_bytes(em.parts[home])
    monkeypatch.setattr(sys.modules[__name__], "VALUE", 2)
    em.parts[home] = Partition.restore(em.schema, data)
    with pytest.raises(NonDeterminismError) as caught:
        client.wait(iid)
    assert str(caught.value) == (
        "orchestration EchoesThenWaits(echoes) made call #1 perform Echo(value=2), but its "
        "history records perform Echo with other inputs there: orchestration code must be "
        "deterministic"
    )
