"""The Event Hubs sender: messages to a partition id, batches split by bytes under the
hub's message limit, claim checks in Blob Storage for messages above it."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

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
    batch; in order per destination."""

    def __init__(self, producer: EventHubProducerClient, claims: ClaimChecks) -> None:
        self.producer = producer
        self.claims = claims
        self._lock = threading.Lock()  # the producer client is not shared across threads
        self.calls = 0
        self.claimed = 0

    def send(self, messages: Sequence[Outgoing]) -> None:
        by_dest: dict[int, list[Outgoing]] = {}
        for message in messages:
            by_dest.setdefault(message.dest, []).append(message)
        with self._lock:
            for dest, group in by_dest.items():
                self._send_partition(str(dest), group)

    def _send_partition(self, partition_id: str, messages: list[Outgoing]) -> None:
        batch = self.producer.create_batch(partition_id=partition_id)
        for message in messages:
            if self._add(batch, message.data):
                continue
            if len(batch):
                self._flush(batch)
                batch = self.producer.create_batch(partition_id=partition_id)
                if self._add(batch, message.data):
                    continue
            # too large for an event on its own: send a claim check instead
            self.claimed += 1
            if not self._add(batch, self.claims.put(message)):
                raise RuntimeError("a claim-check event does not fit an empty batch")
        if len(batch):
            self._flush(batch)

    @staticmethod
    def _add(batch: EventDataBatch, body: bytes) -> bool:
        try:
            batch.add(EventData(body))
        except ValueError:  # "EventDataBatch has reached its size limit"
            return False
        return True

    def _flush(self, batch: EventDataBatch) -> None:
        self.calls += 1
        self.producer.send_batch(batch)

    def wake(self, partitions: Sequence[int]) -> None:
        """Ring partitions: an event that only makes the trigger run them."""
        with self._lock:
            for p in partitions:
                batch = self.producer.create_batch(partition_id=str(p))
                batch.add(EventData(WAKE))
                self._flush(batch)

    def close(self) -> None:
        self.producer.close()
