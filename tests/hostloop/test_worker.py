"""Regression tests for the worker and its seams: each failure the first host loop had
under push triggers, brokers and retrying clients, reproduced and held."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from hosts.bench.brokers import Clock, EventHub
from reactive import (
    Activity,
    ActivityContext,
    App,
    Orchestration,
    OrchestrationContext,
)
from reactive.hosting import envelope
from reactive.hosting.client import SeamClient
from reactive.hosting.memory import MemoryLogs, MemoryStatusStore, MemoryStore
from reactive.hosting.seams import Inbound, Outgoing, StaleSnapshotError
from reactive.hosting.worker import PartitionWorker, WorkerOptions
from samples.counter.app import CounterKey, Increment
from samples.counter.app import app as counter_app

app = App("worker-tests")


@app.register
class Double(Activity[int]):
    x: int

    def execute(self, ctx: ActivityContext) -> int:
        return 2 * self.x


@app.register
class Steps(Orchestration[int]):
    """Activities and durable timers, one after the other."""

    n: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        total = 0
        for i in range(self.n):
            total += await ctx.perform(Double(x=i))
            await ctx.sleep(1.0)
            ctx.log.info("step %d", i)
        return total


@app.register
class Approval(Orchestration[list[Any]]):
    """Collects every 'vote' event until a quiet minute passes."""

    async def execute(self, ctx: OrchestrationContext) -> list[Any]:
        votes: list[Any] = []
        while True:
            vote = ctx.wait_for_event("vote")
            timeout = ctx.sleep(60.0)
            winner = await ctx.any(vote, timeout)
            if winner is timeout:
                return votes
            votes.append(vote.result())


class Recording:
    """A sender that keeps what it was given (and may forward it)."""

    def __init__(self, forward: Any = None) -> None:
        self.sent: list[Outgoing] = []
        self.forward = forward

    def send(self, messages: Sequence[Outgoing]) -> None:
        self.sent.extend(messages)
        if self.forward is not None:
            self.forward.send(messages)


def single(app_: App = app, partitions: int = 1) -> tuple[PartitionWorker, MemoryLogs,
                                                           MemoryStore, MemoryStatusStore,
                                                           Recording, Clock]:
    clock = Clock()
    logs = MemoryLogs(partitions, clock)
    store, status = MemoryStore(), MemoryStatusStore()
    sender = Recording(logs)
    worker = PartitionWorker(app_.compile(), 0, WorkerOptions(partitions), store, sender,
                             status, clock)
    return worker, logs, store, status, sender, clock


def pump(worker: PartitionWorker, logs: MemoryLogs, clock: Clock, index: int = 0) -> None:
    """Invoke until idle, moving the clock to each due timer."""
    for _ in range(10_000):
        batch = logs.read(index, 100)
        outcome = worker.handle(batch)
        logs.acknowledge(index, outcome.acknowledged)
        if batch or outcome.more:
            continue
        if outcome.next_due is None:
            return
        clock.now = max(clock.now, outcome.next_due)
    raise AssertionError("no quiescence")


def test_activity_results_and_timer_ticks_never_travel_through_the_transport() -> None:
    """The first loop appended its own activity results and ticks to its input: on a
    broker they come back only in a later invocation, and a forwarding adapter looped."""
    worker, logs, _, status, sender, clock = single()
    client = SeamClient(worker.schema, 1, logs, status, clock=clock)
    iid = client.start(Steps(n=5))
    pump(worker, logs, clock)
    assert client.status(iid).result == 2 * sum(range(5))  # type: ignore[union-attr]
    assert sender.sent == []  # one partition: nothing ever left it


def test_an_event_that_arrives_during_an_invocation_is_not_lost() -> None:
    """With broker-assigned positions, the first loop's saved position could cover a
    client's event that arrived mid-invocation. Here the event hub assigns sequence
    numbers and the event is sent while the partition is being processed."""
    clock = Clock()
    hub = EventHub(1, random.Random(0), clock)
    store, status = MemoryStore(), MemoryStatusStore()
    schema = app.compile()
    worker = PartitionWorker(schema, 0, WorkerOptions(1), store, hub, status, clock)
    client = SeamClient(schema, 1, hub, status, clock=clock)
    iid = client.start(Approval())

    def mid_invocation(step: str) -> None:
        if step == "processed":
            client.raise_event(iid, "vote", "yes")

    batch = hub.receive(0)
    hub.acknowledge(0, worker.handle(batch, mid_invocation).acknowledged)
    for _ in range(20):
        batch = hub.receive(0)
        outcome = worker.handle(batch)
        hub.acknowledge(0, outcome.acknowledged)
        if not batch and outcome.next_due is not None:
            clock.now = outcome.next_due
    assert client.status(iid).result == ["yes"]  # type: ignore[union-attr]


def test_a_redelivered_client_request_is_applied_once() -> None:
    worker, logs, _, status, _, clock = single()
    client = SeamClient(worker.schema, 1, logs, status, clock=clock)
    iid = client.start(Approval())
    for _ in range(3):  # a client that retries with its request id
        client.raise_event(iid, "vote", "yes", request_id="vote-1")
    client.raise_event(iid, "vote", "no", request_id="vote-2")
    client.start(Approval(), instance_id=iid)  # and a start sent again
    pump(worker, logs, clock)
    assert client.status(iid).result == ["yes", "no"]  # type: ignore[union-attr]


def test_instance_ids_are_random_and_a_taken_id_is_a_clear_error() -> None:
    worker, logs, _, status, _, clock = single()
    client = SeamClient(worker.schema, 1, logs, status, clock=clock)
    ids = {client.start(Steps(n=0)) for _ in range(20)}
    assert len(ids) == 20
    client.start(Steps(n=1), instance_id="job1")
    assert client.start(Steps(n=1), instance_id="job1") == "job1"  # the same instance
    with pytest.raises(Exception, match="taken by a Steps instance, not Approval"):
        client.start(Approval(), instance_id="job1")


def test_a_started_but_unprocessed_instance_reads_as_pending() -> None:
    worker, logs, _, status, _, clock = single()
    client = SeamClient(worker.schema, 1, logs, status, clock=clock)
    iid = client.start(Steps(n=1))
    assert client.status(iid).status == "pending"  # type: ignore[union-attr]
    logs.acknowledge(0, worker.handle(logs.read(0, 10)).acknowledged)
    assert client.status(iid).status == "running"  # type: ignore[union-attr]


def test_status_is_published_once_per_commit_and_read_without_a_partition() -> None:
    worker, logs, _, status, _, clock = single(counter_app)
    client = SeamClient(worker.schema, 1, logs, status, clock=clock)
    for _ in range(10):
        client.fork(Increment(counter=1))
    before = status.publishes
    outcome = worker.handle(logs.read(0, 100))
    assert status.publishes == before + 1 and outcome.committed is not None
    worker.forget()  # no partition in memory: status still answers from the store
    assert all(r.status == "completed" for r in status.query(__import__(
        "reactive.hosting.seams", fromlist=["StatusQuery"]).StatusQuery()))


def test_a_stale_invocation_sends_nothing() -> None:
    worker, logs, store, status, sender, clock = single(counter_app, partitions=2)
    client = SeamClient(worker.schema, 2, logs, status, clock=clock)
    other = PartitionWorker(worker.schema, 0, WorkerOptions(2), store, sender, status, clock)
    for c in range(20):
        client.fork(Increment(counter=c))
    first = logs.read(0, 100)
    worker.handle([])  # both load the same version
    other.handle([])
    other.handle(first)  # commits first
    sent = len(sender.sent)
    with pytest.raises(StaleSnapshotError):
        worker.handle(first)
    assert len(sender.sent) == sent


def counter_ops_from_partition_1(
    worker: PartitionWorker, clock: Clock
) -> tuple[Any, Callable[[int], Inbound]]:
    """Counter 2's key, and its ``seq``-th increment as partition 1 sends it to 0."""
    from reactive.core.messages import LocalOp

    schema = worker.schema
    key = schema.affinities_by_name["CounterKey"].pkey(CounterKey(counter=2))

    def op(seq: int) -> Inbound:
        msg = LocalOp(0, f"op{seq}", Increment(counter=2), key)
        out = envelope.from_partition("1", 1, seq, msg, schema)
        return Inbound(out.data, clock(), seq)

    return key, op


def test_messages_that_arrive_out_of_order_are_held_and_applied_in_order() -> None:
    """Standard queues and retried batches reorder; a sender's order is kept anyway."""
    worker, _logs, _, _status, _, clock = single(counter_app, partitions=2)
    key, op = counter_ops_from_partition_1(worker, clock)
    for seq in (3, 1, 3, 2, 1, 4):
        worker.handle([op(seq)])
    part = worker.partition()
    states = [s for (_, k), s in part.states.items() if k == key]
    assert [s.count for s in states] == [4]  # type: ignore[attr-defined]


def test_a_gap_in_a_senders_stream_shows_in_partition_health_until_it_fills() -> None:
    """A message held for a predecessor that never comes (lost, or parked in a
    dead-letter queue) stalls its sender: operators see it in the partition's health."""
    worker, _logs, _, status, _, clock = single(counter_app, partitions=2)
    key, op = counter_ops_from_partition_1(worker, clock)
    worker.handle([op(1)])
    assert [(h.held, h.held_since) for h in status.health()] == [(0, None)]
    clock.now = 100.0
    worker.handle([op(3)])
    clock.now = 105.0
    worker.handle([op(4)])
    assert [(h.held, h.held_since) for h in status.health()] == [(2, 100.0)]
    worker.handle([op(2)])  # the gap fills: everything held is applied
    assert [(h.held, h.held_since) for h in status.health()] == [(0, None)]
    part = worker.partition()
    assert [s.count for (_, k), s in part.states.items()  # type: ignore[attr-defined]
            if k == key] == [4]


POISON: list[tuple[bytes, str]] = [
    (b"not json at all", "not JSON"),
    (b"no\ttab", "not JSON"),
    (b"12.5", "a JSON float"),
    (b"[1, 2]", "a JSON list"),
    (b'{"e": "1", "s": 0, "q": "7", "m": {}}', "'q'"),
    (b'{"e": "1", "s": 0, "q": [7], "m": {}}', "'q'"),
    (b'{"e": 1, "s": 0, "q": 7, "m": {}}', "'e'"),
    (b'{"e": "1", "s": 99, "q": 7, "m": {}}', "'s'"),
    (b'{"e": "1", "s": "c", "m": {"t": "Start"}}', "'r'"),
    (b'{"e": "1", "s": "c", "r": "x", "m": {"t": "Nope"}}', "not a message"),
    (b'{"e": "1", "s": "c", "r": "y", "m": {"t": "RaiseEvent", "dest": 0, '
     b'"instance_id": 5, "name": "vote"}}', "instance_id must be str"),
    (b'{"e": "1", "s": "c", "r": "z", "m": {"t": "RaiseEvent", "dest": 3, '
     b'"instance_id": "a", "name": "vote"}}', "addressed to partition 3"),
    (b'{"e": "1", "s": 0, "q": 999999999, "m": {}}', "ahead of the next expected"),
    (b"\x00\xff\r\n\x80 raw bytes", "not JSON"),
]


@pytest.mark.parametrize(("data", "reason"), POISON)
def test_poison_is_dead_lettered_with_its_reason_and_stops_nothing(
    data: bytes, reason: str
) -> None:
    worker, logs, store, status, _, clock = single()
    client = SeamClient(worker.schema, 1, logs, status, clock=clock)
    logs.append_raw(0, data)
    iid = client.start(Steps(n=1))
    pump(worker, logs, clock)
    assert client.status(iid).status == "completed"  # type: ignore[union-attr]
    assert len(store.dead_letters) == 1
    _, kept, why = store.dead_letters[0]
    assert kept == data  # the bytes are kept exactly
    assert reason in why and "\n" not in why


def test_a_huge_sequence_number_does_not_shadow_later_messages() -> None:
    """The first loop recorded the highest number seen: one bogus record made every
    later real message from that sender look like a duplicate."""
    worker, _logs, _, _status, _, clock = single(counter_app, partitions=2)
    bogus = {"e": "1", "s": 1, "q": 10**12, "m": {"t": "Tick", "dest": 0}}
    worker.handle([Inbound(json.dumps(bogus).encode(), clock(), 1)])
    schema = worker.schema
    from reactive.core.messages import LocalOp

    key = schema.affinities_by_name["CounterKey"].pkey(CounterKey(counter=2))
    msg = LocalOp(0, "op1", Increment(counter=2), key)
    out = envelope.from_partition("1", 1, 1, msg, schema)
    worker.handle([Inbound(out.data, clock(), 2)])
    part = worker.partition()
    assert [s.count for (_, k), s in part.states.items()  # type: ignore[attr-defined]
            if k == key] == [1]


def test_commit_bytes_stay_flat_as_the_partition_grows() -> None:
    """A commit writes what changed: one increment costs the same on a partition of 1,000
    states as on one of 10,000."""
    worker, logs, _store, status, _, clock = single(counter_app)
    client = SeamClient(worker.schema, 1, logs, status, clock=clock)
    sizes = {}
    created = 0
    for target in (1_000, 10_000):
        while created < target:
            for c in range(created, created + 500):
                client.fork(Increment(counter=c))
            created += 500
            pump(worker, logs, clock)
        client.fork(Increment(counter=7))
        outcome = worker.handle(logs.read(0, 10))
        sizes[target] = outcome.commit_bytes
        logs.acknowledge(0, outcome.acknowledged)
    assert sizes[10_000] < 2 * sizes[1_000], sizes
