"""The SQS sender: messages to partition input queues, in batches split by count and bytes,
with claim checks for payloads over the message limit.

The payloads one :meth:`SqsSender.send` has for one partition travel as few SQS messages
as fit: a *bundle* is one message whose body is a JSON array of payloads, marked by the
``reactive-bundle`` attribute (the count). Every request to SQS costs far more than its
bytes (signing, a connection, the server's own per-message work), and a receiver
de-duplicates payloads on its own, so a bundle handed out twice is as harmless as a
single message handed out twice. A lone payload, or one that is not UTF-8 text, goes as
a message of its own, as before.

Sends to one queue from the threads of one process share requests: while a
``SendMessageBatch`` to a queue is under way, the batches other threads have for that
queue wait, and the next request carries as many of them as fit (10 entries, 1 MiB). So
the commits of partitions invoked at the same moment that send to the same partition
cost one request, not one each, and a lone send waits for nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from hosts.aws.claims import BUNDLE_ATTRIBUTE, encode_body, put_claim
from hosts.aws.config import AwsConfig
from reactive.hosting.seams import Outgoing

MAX_BATCH_COUNT = 10  # SQS SendMessageBatch entries
MAX_MESSAGE_BYTES = 1024 * 1024  # SQS message size (body plus attributes)
MAX_BATCH_BYTES = 1024 * 1024  # SQS SendMessageBatch payload
MAX_BUNDLE_BYTES = 256 * 1024  # a bundle's body at most (a bigger payload goes alone)
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


@dataclass
class _Lane:
    """The batches waiting for one queue, and whether a request to it is under way."""

    cond: threading.Condition = field(default_factory=threading.Condition)
    waiting: list[tuple[list[Entry], Future[None]]] = field(default_factory=list)
    busy: bool = False


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
        max_bundle_bytes: int = MAX_BUNDLE_BYTES,
    ) -> None:
        self.config = config
        self.max_message_bytes = max_message_bytes
        self.max_batch_bytes = max_batch_bytes
        self.max_batch_count = max_batch_count
        # 0: no bundles; the room left beside a bundle's body is for its attribute
        self.max_bundle_bytes = max(0, min(max_bundle_bytes, max_message_bytes - 64))
        self._pool = pool or ThreadPoolExecutor(16, thread_name_prefix="sqs-send")
        self.calls = 0  # SendMessageBatch requests made (for measurements)
        self.claims = 0  # payloads sent by claim check
        self._lanes: dict[str, _Lane] = {}
        self._lanes_lock = threading.Lock()

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

    def bundles(self, payloads: Sequence[bytes]) -> list[Entry]:
        """The entries that carry ``payloads`` to one queue: bundles of the UTF-8 ones (in
        order, each body within ``max_bundle_bytes``), and a message for each other."""
        entries: list[Entry] = []
        pieces: list[tuple[bytes, str]] = []  # the open bundle's payloads, as JSON strings
        size = 2  # the brackets

        def close() -> None:
            nonlocal size
            if len(pieces) == 1:
                entries.append(self.entry(pieces[0][0]))
            elif pieces:
                body = "[" + ",".join(piece for _, piece in pieces) + "]"
                extra = {BUNDLE_ATTRIBUTE: {"DataType": "Number",
                                            "StringValue": str(len(pieces))}}
                entries.append(Entry(body, extra, len(body) + attributes_size(extra)))
            pieces.clear()
            size = 2

        for data in payloads:
            try:
                # ASCII escapes keep the body valid SQS text whatever the payload holds
                piece = json.dumps(data.decode("utf-8"))
            except UnicodeDecodeError:
                piece = None
            if piece is None or len(piece) + 2 > self.max_bundle_bytes:
                close()
                entries.append(self.entry(data))
                continue
            if size + len(piece) + 1 > self.max_bundle_bytes:
                close()
            pieces.append((data, piece))
            size += len(piece) + 1
        close()
        return entries

    def send(self, messages: Sequence[Outgoing]) -> None:
        per_dest: dict[int, list[bytes]] = {}
        for msg in messages:
            if not 0 <= msg.dest < self.config.partitions:
                raise SendError(f"no partition {msg.dest} (there are {self.config.partitions})")
            per_dest.setdefault(msg.dest, []).append(msg.data)
        jobs: list[tuple[str, list[Entry]]] = []
        for dest, payloads in sorted(per_dest.items()):
            url = self.config.queue_url(self.config.partition_queue(dest))
            if any(len(p) > self.max_message_bytes // 2 for p in payloads):
                entries = list(self._pool.map(self.entry, payloads))
            elif self.max_bundle_bytes:
                entries = self.bundles(payloads)
            else:
                entries = [self.entry(p) for p in payloads]
            for batch in split(entries, self.max_batch_count, self.max_batch_bytes):
                jobs.append((url, batch))
        self.send_entries(jobs)

    def send_entries(self, jobs: Sequence[tuple[str, list[Entry]]]) -> None:
        """Send each (queue URL, batch) job; batches run in parallel; raises
        :class:`SendError` if some entries still fail after retries."""
        if len(jobs) == 1:
            self._send_shared(*jobs[0])
            return
        for future in [self._pool.submit(self._send_shared, url, batch) for url, batch in jobs]:
            future.result()

    def _lane(self, url: str) -> _Lane:
        with self._lanes_lock:
            lane = self._lanes.get(url)
            if lane is None:
                lane = self._lanes[url] = _Lane()
            return lane

    def _send_shared(self, url: str, batch: list[Entry]) -> None:
        """Send ``batch`` to ``url``, in one request with the batches other threads have
        for that queue meanwhile; returns once ``batch`` is sent."""
        lane = self._lane(url)
        own: Future[None] = Future()
        with lane.cond:
            lane.waiting.append((batch, own))
        while not own.done():
            with lane.cond:
                while lane.busy and not own.done():
                    lane.cond.wait()
                if own.done():
                    break
                lane.busy = True
                taken: list[tuple[list[Entry], Future[None]]] = []
                count, size = 0, 0
                while lane.waiting:  # in arrival order, whole batches, as many as fit
                    entries = lane.waiting[0][0]
                    more = sum(e.size for e in entries)
                    if taken and (count + len(entries) > self.max_batch_count
                                  or size + more > self.max_batch_bytes):
                        break
                    taken.append(lane.waiting.pop(0))
                    count, size = count + len(entries), size + more
            try:
                self._send_batch(url, [e for entries, _ in taken for e in entries])
            except BaseException as error:
                for _, future in taken:
                    future.set_exception(error)
            else:
                for _, future in taken:
                    future.set_result(None)
            finally:
                with lane.cond:
                    lane.busy = False
                    lane.cond.notify_all()
        own.result()

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
