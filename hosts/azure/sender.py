"""The Event Hubs sender: messages to a partition id, batches split by bytes under the
hub's message limit, claim checks in Blob Storage for messages above it."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from azure.eventhub import EventData, EventDataBatch, EventHubProducerClient
from azure.storage.blob import ContainerClient

from reactive.hosting.seams import Outgoing

CLAIM = b"claim:"  # an event body naming the blob that holds the real one
WAKE = b"wake"  # an event body that only wakes a partition (due timers)


class ClaimChecks:
    """Bodies too large for an event, in ``claims/<hash of the dedup key>``: a resend
    writes the same blob. Nothing deletes them on receipt (a redelivery may need one);
    a lifecycle rule on the prefix removes them after days (see infra/azure)."""

    def __init__(self, container: ContainerClient, prefix: str = "claims/") -> None:
        self.container = container
        self.prefix = prefix

    def put(self, message: Outgoing) -> bytes:
        digest = hashlib.sha256(message.dedup.encode()).hexdigest()[:40]
        name = f"{self.prefix}{message.dest}/{digest}"
        self.container.upload_blob(name, message.data, overwrite=True)
        return CLAIM + name.encode()

    def resolve(self, body: bytes) -> bytes:
        """The real body of an event (downloading a claim check)."""
        if not body.startswith(CLAIM):
            return body
        return self.container.download_blob(body[len(CLAIM) :].decode()).readall()


class EventHubSender:
    """Implements :class:`reactive.hosting.seams.Sender` on one hub whose partition ``i``
    is the input of reactive partition ``i``. Returns when the service has accepted every
    batch; in order per destination. Destinations are sent to in parallel, each through a
    producer client of its own (made on first use by ``connect``), so that one slow link
    does not hold up the others."""

    def __init__(
        self, connect: Callable[[], EventHubProducerClient], claims: ClaimChecks,
        parallelism: int = 8,
    ) -> None:
        self.connect = connect
        self.claims = claims
        self._producers: dict[int, tuple[EventHubProducerClient, threading.Lock]] = {}
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(parallelism, thread_name_prefix="eventhubs-send")
        self.calls = 0
        self.claimed = 0
        # events the hub accepted from this sender, per partition (wake-ups included)
        self.sent: dict[int, int] = {}

    def _producer(self, dest: int) -> tuple[EventHubProducerClient, threading.Lock]:
        with self._guard:
            entry = self._producers.get(dest)
            if entry is None:
                entry = (self.connect(), threading.Lock())
                self._producers[dest] = entry
            return entry

    def send(self, messages: Sequence[Outgoing]) -> None:
        by_dest: dict[int, list[Outgoing]] = {}
        for message in messages:
            by_dest.setdefault(message.dest, []).append(message)
        if len(by_dest) == 1:
            (dest, group), = by_dest.items()
            self._send_partition(dest, [m.data for m in group], group)
            return
        futures = [
            self._pool.submit(self._send_partition, dest, [m.data for m in group], group)
            for dest, group in by_dest.items()
        ]
        for future in futures:
            future.result()

    def _send_partition(
        self, dest: int, bodies: list[bytes], messages: Sequence[Outgoing] | None = None
    ) -> None:
        producer, lock = self._producer(dest)
        partition_id = str(dest)
        with lock:
            batch = producer.create_batch(partition_id=partition_id)
            for n, body in enumerate(bodies):
                if self._add(batch, body):
                    continue
                if len(batch):
                    self._flush(producer, batch, dest)
                    batch = producer.create_batch(partition_id=partition_id)
                    if self._add(batch, body):
                        continue
                if messages is None:
                    raise ValueError(f"an event of {len(body)} bytes does not fit a batch")
                # too large for an event on its own: send a claim check instead
                self.claimed += 1
                if not self._add(batch, self.claims.put(messages[n])):
                    raise RuntimeError("a claim-check event does not fit an empty batch")
            if len(batch):
                self._flush(producer, batch, dest)

    @staticmethod
    def _add(batch: EventDataBatch, body: bytes) -> bool:
        try:
            batch.add(EventData(body))
        except ValueError:  # "EventDataBatch has reached its size limit"
            return False
        return True

    def _flush(self, producer: EventHubProducerClient, batch: EventDataBatch, dest: int
               ) -> None:
        self.calls += 1
        producer.send_batch(batch)
        with self._guard:
            self.sent[dest] = self.sent.get(dest, 0) + len(batch)

    def wake(self, partitions: Sequence[int]) -> None:
        """Ring partitions: an event that only makes the trigger run them."""
        futures = [self._pool.submit(self._send_partition, p, [WAKE]) for p in partitions]
        for future in futures:
            future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        with self._guard:
            producers, self._producers = list(self._producers.values()), {}
        for producer, _ in producers:
            producer.close()
