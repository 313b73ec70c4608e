"""External events: ctx.wait_for_event + client.raise_event, and the timeout pattern."""

from __future__ import annotations

import json
from typing import Any

from hosts.emulator import Emulator
from reactive import App, Orchestration, OrchestrationContext
from tests.features._support import fault_free_and_faulty


class Approval(Orchestration[Any]):
    async def execute(self, ctx: OrchestrationContext) -> Any:
        return await ctx.wait_for_event("approved")


class SleepThenWait(Orchestration[list[Any]]):
    async def execute(self, ctx: OrchestrationContext) -> list[Any]:
        await ctx.sleep(60)
        first = await ctx.wait_for_event("item")
        second = await ctx.wait_for_event("item")
        other = await ctx.wait_for_event("other")
        return [first, second, other]


class WithTimeout(Orchestration[str]):
    seconds: float

    async def execute(self, ctx: OrchestrationContext) -> str:
        timer = ctx.sleep(self.seconds)
        event = ctx.wait_for_event("answer")
        winner = await ctx.any(timer, event)
        if winner is timer:
            return "timed out"
        value = await event
        return f"answered {value}"


class Collector(Orchestration[list[int]]):
    count: int

    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        values = []
        for _ in range(self.count):
            values.append(await ctx.wait_for_event("n"))
        return values


app = App("external-events")
app.register(Approval, SleepThenWait, WithTimeout, Collector)


def _waiting(em: Emulator) -> None:
    """Deliver every message without firing future timers."""
    while em.step():
        pass


def test_event_raised_after_the_wait() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(Approval(), instance_id="approval")
        _waiting(em)
        status = client.status(iid)
        assert status is not None and status.status == "running"
        client.raise_event(iid, "approved", {"by": "ann"})
        return client.wait(iid)

    assert fault_free_and_faulty(app, scenario) == {"by": "ann"}


def test_event_raised_before_the_instance_starts() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.raise_event("early", "approved", "first")
        em.run()
        iid = client.start(Approval(), instance_id="early")
        return client.wait(iid)

    assert fault_free_and_faulty(app, scenario) == "first"


def test_events_raised_before_the_wait_are_buffered_in_order() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(SleepThenWait(), instance_id="buffered")
        _waiting(em)  # now it sleeps; it is not waiting for events yet
        client.raise_event(iid, "other", "o")
        _waiting(em)
        client.raise_event(iid, "item", 1)
        _waiting(em)
        client.raise_event(iid, "item", 2)
        return client.wait(iid)

    assert fault_free_and_faulty(app, scenario) == [1, 2, "o"]


def test_events_of_the_same_name_are_consumed_in_arrival_order() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(Collector(count=5), instance_id="collector")
        for i in range(5):
            _waiting(em)
            client.raise_event(iid, "n", i)
        return client.wait(iid)

    assert fault_free_and_faulty(app, scenario) == [0, 1, 2, 3, 4]


def test_timeout_pattern_times_out_without_the_event() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        return client.wait(client.start(WithTimeout(seconds=30), instance_id="t"))

    assert fault_free_and_faulty(app, scenario) == "timed out"


def test_timeout_pattern_takes_the_event_when_it_comes_first() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(WithTimeout(seconds=30), instance_id="t")
        _waiting(em)
        client.raise_event(iid, "answer", 42)
        return client.wait(iid)

    assert fault_free_and_faulty(app, scenario) == "answered 42"


def test_an_event_after_the_timeout_does_not_change_the_result() -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    iid = client.start(WithTimeout(seconds=30), instance_id="late")
    assert client.wait(iid) == "timed out"
    client.raise_event(iid, "answer", 1)
    em.run()
    status = client.status(iid)
    assert status is not None and status.status == "completed" and status.result == "timed out"


def test_events_for_other_names_do_not_wake_the_waiter() -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    iid = client.start(Approval(), instance_id="picky")
    client.raise_event(iid, "rejected", "no")
    em.run()
    status = client.status(iid)
    assert status is not None and status.status == "running"
    client.raise_event(iid, "approved", "yes")
    assert client.wait(iid) == "yes"


def test_events_for_instances_that_never_start_are_bounded() -> None:
    bounded = App("bounded-early-events", keep_early_events=50)
    bounded.register(Approval)
    em = Emulator(bounded, partitions=2)
    client = em.client()
    sizes = []
    for batch in range(5):
        for i in range(batch * 200, (batch + 1) * 200):
            client.raise_event(f"nobody-{i}", "approved", "x" * 50)
        em.run()
        sizes.append(sum(len(json.dumps(p.snapshot())) for p in em.parts))
    assert sizes[-1] < 1.1 * sizes[0]  # snapshots stop growing
    early = [sum(len(v) for v in p.early_events.values()) for p in em.parts]
    assert all(count <= 50 for count in early) and sum(early) >= 50
    assert len(em.unhandled) == 1000 - sum(early)
    assert "dropped external event 'approved' raised to instance 'nobody-0'" in em.unhandled[0]
    assert "keep_early_events" in em.unhandled[0]
    # the most recent ones are still delivered when their instance starts
    assert client.wait(client.start(Approval(), instance_id="nobody-999")) == "x" * 50


def test_bounded_early_events_survive_restores_unchanged() -> None:
    bounded = App("bounded-early-events-faults", keep_early_events=5)
    bounded.register(Collector)

    def scenario(em: Emulator) -> Any:
        client = em.client()
        for i in range(8):
            client.raise_event("later", "n", i)
        em.run()
        return client.wait(client.start(Collector(count=5), instance_id="later")), len(
            em.unhandled
        )

    assert fault_free_and_faulty(bounded, scenario) == ([3, 4, 5, 6, 7], 3)


class Stages(Orchestration[str]):
    """Shows where it is through its custom status."""

    async def execute(self, ctx: OrchestrationContext) -> str:
        ctx.set_custom_status({"stage": "waiting for approval"})
        by = await ctx.wait_for_event("approved")
        ctx.set_custom_status({"stage": "done", "by": by})
        return str(by)


app.register(Stages)


def test_custom_status_is_published_with_the_status() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        iid = client.start(Stages(), instance_id="stages")
        em.run()
        waiting = client.status(iid)
        assert waiting is not None
        client.raise_event(iid, "approved", "ann")
        result = client.wait(iid)
        done = client.status(iid)
        assert done is not None
        return [waiting.status, waiting.custom_status, result, done.custom_status]

    assert fault_free_and_faulty(app, scenario) == [
        "running", {"stage": "waiting for approval"}, "ann", {"stage": "done", "by": "ann"}
    ]
