"""The SQS sender: messages to partition input queues, in batches split by count and bytes,
with claim checks for payloads over the message limit."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from hosts.aws.claims import encode_body, put_claim
from hosts.aws.config import AwsConfig
from reactive.hosting.seams import Outgoing

MAX_BATCH_COUNT = 10  # SQS SendMessageBatch entries
MAX_MESSAGE_BYTES = 1024 * 1024  # SQS message size (body plus attributes)
MAX_BATCH_BYTES = 1024 * 1024  # SQS SendMessageBatch payload
SEND_ATTEMPTS = 5

log = logging.getLogger("reactive.aws")


class SendError(Exception):
    """Some messages could not be sent after retries (the reason is the message)."""


def attributes_size(attributes: dict[str, Any]) -> int:
    """Bytes SQS counts for message attributes: name, data type and value."""
    total = 0
    for name, entry in attributes.items():
        total += len(name.encode()) + len(entry["DataType"].encode())
        total += len(str(entry.get("StringValue", "")).encode())
        total += len(entry.get("BinaryValue", b""))
    return total


@dataclass(frozen=True, slots=True)
class Entry:
    """One message ready for ``SendMessageBatch``."""

    body: str
    attributes: dict[str, Any]
    size: int
    delay: int = 0

    def request(self, n: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"Id": str(n), "MessageBody": self.body}
        if self.attributes:
            entry["MessageAttributes"] = self.attributes
        if self.delay:
            entry["DelaySeconds"] = self.delay
        return entry


def split(entries: Sequence[Entry], max_count: int, max_bytes: int) -> list[list[Entry]]:
    """Consecutive batches of at most ``max_count`` entries and ``max_bytes`` bytes."""
    batches: list[list[Entry]] = []
    current: list[Entry] = []
    size = 0
    for entry in entries:
        if current and (len(current) == max_count or size + entry.size > max_bytes):
            batches.append(current)
            current, size = [], 0
        current.append(entry)
        size += entry.size
    if current:
        batches.append(current)
    return batches


class SqsSender:
    """Implements :class:`reactive.hosting.seams.Sender` over one standard queue per
    partition. Batches to different queues go out in parallel; a message whose body would
    exceed ``max_message_bytes`` is stored in S3 and sent as a claim check."""

    def __init__(
        self,
        config: AwsConfig,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        max_batch_count: int = MAX_BATCH_COUNT,
        pool: ThreadPoolExecutor | None = None,
    ) -> None:
        self.config = config
        self.max_message_bytes = max_message_bytes
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_count = max_batch_count
        self._pool = pool or ThreadPoolExecutor(16, thread_name_prefix="sqs-send")
        self.calls = 0  # SendMessageBatch requests made (for measurements)
        self.claims = 0  # payloads sent by claim check

    def entry(self, data: bytes, extra: dict[str, Any] | None = None, delay: int = 0) -> Entry:
        body, attributes = encode_body(data)
        if extra:
            attributes = {**attributes, **extra}
        size = len(body.encode()) + attributes_size(attributes)
        if size > self.max_message_bytes:
            self.claims += 1
            body, claim_attributes = put_claim(self.config, data)
            attributes = {**(extra or {}), **claim_attributes}
            size = len(body.encode()) + attributes_size(attributes)
        return Entry(body, attributes, size, delay)

    def send(self, messages: Sequence[Outgoing]) -> None:
        per_dest: dict[int, list[bytes]] = {}
        for msg in messages:
            if not 0 <= msg.dest < self.config.partitions:
                raise SendError(f"no partition {msg.dest} (there are {self.config.partitions})")
            per_dest.setdefault(msg.dest, []).append(msg.data)
        jobs: list[tuple[str, list[Entry]]] = []
        for dest, payloads in sorted(per_dest.items()):
            url = self.config.queue_url(self.config.partition_queue(dest))
            entries = list(self._pool.map(self.entry, payloads)) if any(
                len(p) > self.max_message_bytes // 2 for p in payloads
            ) else [self.entry(p) for p in payloads]
            for batch in split(entries, self.max_batch_count, self.max_batch_bytes):
                jobs.append((url, batch))
        self.send_entries(jobs)

    def send_entries(self, jobs: Sequence[tuple[str, list[Entry]]]) -> None:
        """Send each (queue URL, batch) job; batches run in parallel; raises
        :class:`SendError` if some entries still fail after retries."""
        if len(jobs) == 1:
            self._send_batch(*jobs[0])
            return
        for future in [self._pool.submit(self._send_batch, url, batch) for url, batch in jobs]:
            future.result()

    def _send_batch(self, url: str, batch: list[Entry]) -> None:
        pending = {str(n): entry for n, entry in enumerate(batch)}
        for attempt in range(SEND_ATTEMPTS):
            self.calls += 1
            response = self.config.sqs.send_message_batch(
                QueueUrl=url, Entries=[e.request(int(n)) for n, e in pending.items()]
            )
            failed = response.get("Failed") or []
            if not failed:
                return
            reasons = {f["Id"]: f.get("Message", f.get("Code", "?")) for f in failed}
            if any(f.get("SenderFault") for f in failed):
                raise SendError(f"SQS refused messages for {url}: {sorted(reasons.values())}")
            pending = {n: e for n, e in pending.items() if n in reasons}
            time.sleep(0.05 * 2**attempt)
        raise SendError(f"SQS kept failing {len(pending)} messages for {url}")
