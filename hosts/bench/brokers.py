"""Doubles of the two brokers the cloud hosts sit on, with their failure modes.

Both are ``Sender``s (partitions and clients send into them) and hand out batches the way
their trigger does. Neither keeps order across a partition's senders, and both deliver
at least once: what a worker must survive in the clouds.

- :class:`FifoQueues` plays SQS FIFO with Lambda: one message group per partition,
  batches of at most 10, a group blocked while any of its messages is in flight, messages
  that come back after the visibility timeout when not deleted (crashes, stale
  invocations, partial batch failures), and duplicate sends.
- :class:`EventHub` plays Event Hubs with Functions: broker-assigned sequence numbers per
  partition, consumers reading batches from a position, checkpoints, redelivery from the
  last checkpoint when a consumer restarts, and two consumers of one partition at once
  during a rebalance.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from reactive import App
from reactive.hosting.client import SeamClient
from reactive.hosting.memory import MemoryStatusStore, MemoryStore
from reactive.hosting.seams import Inbound, Outgoing
from reactive.hosting.worker import PartitionWorker, WorkerOptions


class Clock:
    """The doubles' virtual time: moves only when the driver says."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@dataclass
class _Message:
    ref: int
    data: bytes
    time: float
    in_flight: bool = False
    receives: int = 0
    visible_after: int = 0  # the broker step at which it may be received again


class FifoQueues:
    def __init__(self, partitions: int, rng: random.Random, clock: Clock,
                 duplicate_probability: float = 0.0, visibility_steps: int = 3) -> None:
        self.groups: list[list[_Message]] = [[] for _ in range(partitions)]
        self.rng = rng
        self.clock = clock
        self.duplicate_probability = duplicate_probability
        self.visibility_steps = visibility_steps
        self.step = 0
        self._refs = itertools.count(1)
        self.duplicates_sent = 0

    def send(self, messages: Sequence[Outgoing]) -> None:
        for out in messages:
            copies = 2 if self.rng.random() < self.duplicate_probability else 1
            self.duplicates_sent += copies - 1
            for _ in range(copies):
                self.groups[out.dest].append(_Message(next(self._refs), out.data, self.clock()))

    def receive(self, partition: int, consumer: int = 0) -> list[Inbound]:
        """Up to 10 messages from the head of the partition's group, or none while any of
        its messages is in flight (FIFO groups are blocked then)."""
        self.step += 1
        group = self.groups[partition]
        for msg in group:
            if msg.in_flight and msg.visible_after <= self.step:
                msg.in_flight = False  # the visibility timeout passed: it comes back
        if any(msg.in_flight for msg in group):
            return []
        batch = group[: self.rng.randint(1, 10)]
        for msg in batch:
            msg.in_flight = True
            msg.receives += 1
            msg.visible_after = self.step + self.visibility_steps
        return [Inbound(msg.data, msg.time, msg.ref) for msg in batch]

    def acknowledge(self, partition: int, refs: Sequence[Hashable], consumer: int = 0,
                    partial_failure: float = 0.0) -> None:
        """Delete what the handler reported done; ``partial_failure`` of them are reported
        as failed anyway (batchItemFailures) and come back after the timeout."""
        done = {r for r in refs if self.rng.random() >= partial_failure}
        self.groups[partition] = [m for m in self.groups[partition] if m.ref not in done]

    def abandon(self, partition: int, consumer: int = 0) -> None:
        """The invocation died: its messages stay in flight until the timeout."""

    def pending(self) -> int:
        return sum(len(g) for g in self.groups)

    def restart(self, partition: int) -> None:
        """A new consumer: nothing to do for queues."""


@dataclass
class _Consumer:
    position: int = 0  # the next sequence number it reads


@dataclass
class _HubPartition:
    events: list[tuple[int, bytes, float]] = field(default_factory=list)  # (seq, data, time)
    checkpoint: int = 0  # the first sequence number not checkpointed
    consumers: dict[int, _Consumer] = field(default_factory=dict)


class EventHub:
    def __init__(self, partitions: int, rng: random.Random, clock: Clock,
                 duplicate_probability: float = 0.0) -> None:
        self.partitions = [_HubPartition() for _ in range(partitions)]
        self.rng = rng
        self.clock = clock
        self.duplicate_probability = duplicate_probability
        self.duplicates_sent = 0

    def send(self, messages: Sequence[Outgoing]) -> None:
        for out in messages:
            copies = 2 if self.rng.random() < self.duplicate_probability else 1
            self.duplicates_sent += copies - 1
            hub = self.partitions[out.dest]
            for _ in range(copies):
                hub.events.append((len(hub.events), out.data, self.clock()))

    def _consumer(self, partition: int, consumer: int) -> _Consumer:
        hub = self.partitions[partition]
        if consumer not in hub.consumers:
            hub.consumers[consumer] = _Consumer(hub.checkpoint)
        return hub.consumers[consumer]

    def receive(self, partition: int, consumer: int = 0) -> list[Inbound]:
        """A batch from the consumer's position; its size varies from call to call, so a
        retried batch may differ from the first attempt."""
        hub = self.partitions[partition]
        reader = self._consumer(partition, consumer)
        batch = hub.events[reader.position : reader.position + self.rng.randint(1, 16)]
        return [Inbound(data, stamp, seq) for seq, data, stamp in batch]

    def acknowledge(self, partition: int, refs: Sequence[Hashable], consumer: int = 0,
                    partial_failure: float = 0.0) -> None:
        """The function returned: the consumer moves on and checkpoints its position
        (``partial_failure``: the checkpoint write is lost now and then)."""
        if not refs:
            return
        hub = self.partitions[partition]
        reader = self._consumer(partition, consumer)
        last = max(int(r) for r in refs)  # type: ignore[call-overload]
        reader.position = max(reader.position, last + 1)
        if self.rng.random() >= partial_failure:
            hub.checkpoint = max(hub.checkpoint, reader.position)

    def abandon(self, partition: int, consumer: int = 0) -> None:
        """The invocation died: the Functions host restarts the consumer from the last
        checkpoint, so the batch comes back (and maybe more)."""
        self.restart(partition, consumer)

    def restart(self, partition: int, consumer: int = 0) -> None:
        self.partitions[partition].consumers.pop(consumer, None)

    def pending(self) -> int:
        """Events some consumer has not read past yet."""
        total = 0
        for hub in self.partitions:
            positions = [c.position for c in hub.consumers.values()] or [hub.checkpoint]
            total += len(hub.events) - min(max(positions), len(hub.events))
        return total


class BrokerHost:
    """An application on partition workers fed by a broker double, driven until idle: the
    bench's ``fifo`` and ``eventhubs`` hosts (the cost of the push seam before the clouds
    add their own)."""

    def __init__(self, app: App, kind: str, partitions: int, seed: int = 0) -> None:
        self.schema = app.compile()
        self.count = partitions
        self.clock = Clock()
        rng = random.Random(seed)
        self.broker: FifoQueues | EventHub = (
            FifoQueues(partitions, rng, self.clock) if kind == "fifo"
            else EventHub(partitions, rng, self.clock)
        )
        self.store = MemoryStore()
        self.status = MemoryStatusStore()
        options = WorkerOptions(partitions)
        self.workers = [
            PartitionWorker(self.schema, i, options, self.store, self.broker, self.status,
                            self.clock)
            for i in range(partitions)
        ]
        self._order = random.Random(seed)
        self.commits = 0

    def client(self) -> SeamClient:
        return SeamClient(self.schema, self.count, self.broker, self.status,
                          drive=self.run, clock=self.clock)

    def run(self, until: Callable[[], bool] | None = None) -> bool:
        while True:
            if until is not None and until():
                return True
            busy = False
            order = list(range(self.count))
            self._order.shuffle(order)
            for index in order:
                batch = self.broker.receive(index)
                outcome = self.workers[index].handle(batch)
                self.broker.acknowledge(index, outcome.acknowledged)
                self.commits += outcome.committed is not None
                busy = busy or bool(batch or outcome.more)
            if busy:
                continue
            dues = [d for d in (w.next_due() for w in self.workers) if d is not None]
            if not dues:
                return until() if until is not None else True
            self.clock.now = max(self.clock.now, min(dues))
