"""The Lambda handlers of an AWS deployment, as one object per process.

- :meth:`AwsHost.on_partition_batch`: an SQS batch from one partition's input queue (the
  event source mapping reports batch item failures). The batch goes to the partition's
  worker, which commits a fenced delta to S3, sends its outbox and publishes statuses; the
  response names every record the commit does not cover, so SQS deletes only what is
  committed and hands the rest out again (after ``maxReceiveCount`` receives, to the
  partition's dead-letter queue). A worker that lost the fence to a concurrent invocation
  acknowledges nothing.
- :meth:`AwsHost.on_ingress_batch`: requests posted by anyone to the ingress queue,
  validated and routed to their partitions; an invalid one goes to the ingress
  dead-letter queue with its reason, and the others go through.
- :meth:`AwsHost.on_schedule`: a scheduled rule rings each partition whose health shows a
  due timer (and each that never committed, so startup orchestrations run) by sending it a
  wake-up message. Timers due within ``short_wait`` seconds are waited for inside the
  invocation, and later ones within 15 minutes get a delayed wake-up message.

One worker per partition per process keeps the partition warm between invocations.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from hosts.aws.claims import ClaimError, decode_body, decode_payloads
from hosts.aws.config import AwsConfig
from hosts.aws.sender import Entry, SqsSender, split
from hosts.aws.status import S3StatusStore
from hosts.aws.store import S3SnapshotStore
from reactive import App
from reactive.hosting import Schema
from reactive.hosting.client import SeamClient
from reactive.hosting.ingress import IngressError, parse_request
from reactive.hosting.seams import Inbound, Outgoing, StaleSnapshotError
from reactive.hosting.worker import PartitionWorker, WorkerOptions

KIND_ATTRIBUTE = "reactive-kind"  # "wake" on wake-up messages
REASON_ATTRIBUTE = "reactive-reason"  # on dead-lettered ingress requests
WAKE_BODY = "wake"
MAX_DELAY = 900  # SQS DelaySeconds limit
SHORT_WAIT = 2.0  # seconds an invocation waits for a timer itself
STALE_RETRY = 1  # seconds before a stale invocation's batch is handed out again
ATTEMPTS = 3  # tries of a batch in one invocation before it goes back to its queue
RETRY_PAUSE = 0.1  # seconds before the second try after a failure (doubling after)
RESERVE = 3.0  # seconds kept free before the invocation's deadline
MAX_REASON = 2000

log = logging.getLogger("reactive.aws")


class Outcome(Protocol):
    @property
    def acknowledged(self) -> Sequence[Hashable]: ...
    @property
    def next_due(self) -> float | None: ...
    @property
    def more(self) -> bool: ...


class Worker(Protocol):
    def handle(self, batch: Sequence[Inbound]) -> Outcome: ...


WorkerFactory = Callable[["AwsHost", int], Worker]
Parser = Callable[[bytes], Outgoing]


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


def default_worker(host: AwsHost, partition: int) -> Worker:
    options = WorkerOptions(
        partitions=host.config.partitions, epoch=host.config.epoch, time_budget=host.time_budget
    )
    worker: Worker = PartitionWorker(
        host.schema, partition, options, host.store, host.sender, host.status, clock=host.clock
    )
    return worker


def _string_attribute(record: Mapping[str, Any], name: str) -> str | None:
    entry = (record.get("messageAttributes") or {}).get(name)
    value = entry.get("stringValue") if isinstance(entry, Mapping) else None
    return value if isinstance(value, str) else None


@dataclass
class _Partition:
    """What the process keeps per partition."""

    worker: Worker
    lock: threading.Lock = field(default_factory=threading.Lock)
    wake_at: float | None = None  # a delayed wake-up message is due then


class AwsHost:
    """The per-process state behind the handlers: the compiled app, the stores, the
    sender and one warm worker per partition."""

    def __init__(
        self,
        app: App | Schema,
        config: AwsConfig,
        *,
        time_budget: float = 2.0,
        short_wait: float = SHORT_WAIT,
        stale_retry: int = STALE_RETRY,
        attempts: int = ATTEMPTS,
        clock: Callable[[], float] = time.time,
        worker_factory: WorkerFactory = default_worker,
        parser: Parser | None = None,
    ) -> None:
        self.schema = app.compile() if isinstance(app, App) else app
        self.config = config
        self.time_budget = time_budget
        self.short_wait = short_wait
        self.stale_retry = stale_retry
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1 (tries of a batch), got {attempts}")
        self.attempts = attempts
        self.clock = clock
        # a pool per seam (one seam's task never waits on another's), shut down by close()
        self._pools = [ThreadPoolExecutor(16, thread_name_prefix=f"aws-{name}")
                       for name in ("store", "status", "send")]
        self.store = S3SnapshotStore(config, pool=self._pools[0])
        self.status = S3StatusStore(config, pool=self._pools[1])
        self.sender = SqsSender(config, pool=self._pools[2])
        self._worker_factory = worker_factory
        self._parser = parser
        self._partitions: dict[int, _Partition] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        """Stop the threads of the seams' pools (a process that makes many hosts, such
        as a test run, would otherwise keep every idle one)."""
        try:
            self.store.flush_marks()  # else the next load resends the last outboxes
        except Exception:
            log.warning("writing the deferred delivered marks failed", exc_info=True)
        for pool in self._pools:
            pool.shutdown(wait=True)

    def client(self, poll: float = 0.05) -> SeamClient:
        """A client of this deployment: requests go to the partition queues, statuses
        are read from S3."""
        return SeamClient(self.schema, self.config.partitions, SqsSender(self.config),
                          S3StatusStore(self.config), epoch=self.config.epoch, poll=poll)

    # -- partitions ----------------------------------------------------------------------

    def _partition(self, index: int) -> _Partition:
        with self._lock:
            entry = self._partitions.get(index)
            if entry is None:
                entry = _Partition(self._worker_factory(self, index))
                self._partitions[index] = entry
            return entry

    def forget(self, index: int) -> None:
        """Drop a partition's warm worker (as a new Lambda container would not have it)."""
        with self._lock:
            self._partitions.pop(index, None)

    def _record_partition(self, record: Mapping[str, Any]) -> int | None:
        return self.config.partition_of_queue(str(record.get("eventSourceARN", "")))

    def on_partition_batch(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> dict[str, Any]:
        """Handle an SQS event from partition input queues; the partial batch response."""
        groups: dict[int, list[tuple[str, Inbound | None]]] = {}
        failures: list[str] = []
        for record in event.get("Records", []):
            message_id = str(record["messageId"])
            index = self._record_partition(record)
            if index is None:
                log.error("message %s from %s: not a partition queue of this deployment",
                          message_id, record.get("eventSourceARN"))
                failures.append(message_id)
                continue
            if _string_attribute(record, KIND_ATTRIBUTE) == WAKE_BODY:
                groups.setdefault(index, []).append((message_id, None))
                continue
            try:
                payloads = decode_payloads(self.config, record.get("body", ""),
                                           record.get("messageAttributes") or {})
            except ClaimError as error:
                self.store.dead_letter(index, str(record.get("body", "")).encode(), str(error))
                continue
            sent = int((record.get("attributes") or {}).get("SentTimestamp", 0)) / 1000
            # a bundle's payloads are told apart by their place: the record is covered
            # once every one of them is
            refs: list[Hashable] = [message_id] if len(payloads) == 1 else [
                (message_id, n) for n in range(len(payloads))]
            groups.setdefault(index, []).extend(
                (message_id, Inbound(data, sent or self.clock(), ref))
                for data, ref in zip(payloads, refs, strict=True))
        records = {str(r["messageId"]): r for r in event.get("Records", [])}
        for index, items in groups.items():
            failed, stale = self._run(index, items, context)
            failures.extend(failed)
            if stale:
                self._retry_soon(index, [records[m] for m in failed])
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    def _retry_soon(self, index: int, records: Sequence[Mapping[str, Any]]) -> None:
        """Make a stale invocation's records visible again after ``stale_retry`` seconds:
        they are not poison, only late, and the visibility timeout (minutes, as Lambda
        advises) would hold them back needlessly."""
        url = self.config.queue_url(self.config.partition_queue(index))
        try:
            for start in range(0, len(records), 10):
                self.config.sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                    {"Id": str(n), "ReceiptHandle": r["receiptHandle"],
                     "VisibilityTimeout": self.stale_retry}
                    for n, r in enumerate(records[start:start + 10])])
        except Exception:
            log.warning("partition %d: could not shorten the retry of a stale batch", index,
                        exc_info=True)

    def _run(
        self,
        index: int,
        items: list[tuple[str, Inbound | None]],
        context: LambdaContext | None,
    ) -> tuple[list[str], bool]:
        """Hand one partition's records to its worker; the message ids not covered, and
        whether the invocation was stale."""
        entry = self._partition(index)
        inbound = [item for _, item in items if item is not None]
        ids = list(dict.fromkeys(m for m, _ in items))  # a bundle's id is there once per payload
        with entry.lock:
            outcome, stale = self._tries(index, entry, inbound, context)
            if outcome is None:
                self.forget(index)
                return ids, stale
            acknowledged = set(outcome.acknowledged)
            try:
                self._follow_up(index, entry, outcome, context)
            except Exception as error:  # the batch itself is committed
                if isinstance(error, StaleSnapshotError):
                    log.info("partition %d: %s", index, error)
                else:
                    log.exception("partition %d: running due work failed", index)
                self.forget(index)
                # what that work committed may be undelivered, and no message may come to
                # this partition to have it delivered: a wake-up will
                self._ring_quietly(index, self.stale_retry)
        failed = {m for m, item in items if item is not None and item.ref not in acknowledged}
        return [m for m in ids if m in failed], False

    def _tries(
        self, index: int, entry: _Partition, inbound: list[Inbound], context: LambdaContext | None
    ) -> tuple[Outcome | None, bool]:
        """Hand the batch to the worker, again after a failure or a lost fence while time
        allows (the worker reloads from the store each time); the outcome (None if every
        try failed), and whether the last try lost the fence.

        A batch given back to SQS counts a receive of each of its records, and a record
        received ``maxReceiveCount`` times goes to the dead-letter queue: for a message
        between partitions that is a gap its receiver waits at for good. Fences are lost
        by design (two invocations of a partition may run at once) and storage requests
        fail now and then, so the invocation tries again itself before it gives up."""
        deadline = time.monotonic() + self._remaining(context)
        for attempt in range(1, self.attempts + 1):
            try:
                return entry.worker.handle(inbound), False
            except StaleSnapshotError as error:
                failure: Exception = error
                pause = 0.0  # the newer commit is there to load at once
            except Exception as error:
                failure = error
                pause = RETRY_PAUSE * 2 ** (attempt - 1)
            stale = isinstance(failure, StaleSnapshotError)
            if attempt < self.attempts and time.monotonic() + pause < deadline:
                log.warning("partition %d: try %d of %d failed (%s: %s); trying again", index,
                            attempt, self.attempts, type(failure).__name__, failure)
                time.sleep(pause)
            elif stale:
                log.info("partition %d: %s; the batch comes back", index, failure)
                return None, True
            else:
                log.error("partition %d: the invocation failed; the batch comes back", index,
                          exc_info=failure)
                return None, False
        raise AssertionError("unreachable")

    def _ring_quietly(self, index: int, delay: int) -> None:
        try:
            self.ring([index], delay)
        except Exception:
            log.warning("partition %d: could not leave a wake-up message", index, exc_info=True)

    def _remaining(self, context: LambdaContext | None) -> float:
        if context is None:
            return math.inf
        return context.get_remaining_time_in_millis() / 1000 - RESERVE

    def _follow_up(
        self, index: int, entry: _Partition, outcome: Outcome, context: LambdaContext | None
    ) -> None:
        """Keep going while the worker has work left or a timer is due shortly, then
        leave a delayed wake-up message for a later timer."""
        deadline = time.monotonic() + self._remaining(context)
        while True:
            due = outcome.next_due
            wait = None if due is None else max(0.0, due - self.clock())
            if outcome.more:
                wait = 0.0
            if wait is None or wait > self.short_wait or time.monotonic() + wait > deadline:
                break
            if wait > 0:
                time.sleep(wait)
            outcome = entry.worker.handle([])
        due = outcome.next_due
        if due is None:
            return
        later = min(MAX_DELAY, max(0, math.ceil(due - self.clock())))
        delay = 0 if outcome.more else later
        at = self.clock() + delay
        if entry.wake_at is not None and self.clock() < entry.wake_at <= at + 1:
            return  # an earlier wake-up is on its way
        self.ring([index], delay)
        entry.wake_at = at

    # -- wake-ups ------------------------------------------------------------------------

    def ring(self, partitions: Sequence[int], delay: int = 0) -> None:
        """Send each partition a wake-up message (after ``delay`` seconds)."""
        attributes = {KIND_ATTRIBUTE: {"DataType": "String", "StringValue": WAKE_BODY}}
        jobs: list[tuple[str, list[Entry]]] = []
        for index in partitions:
            url = self.config.queue_url(self.config.partition_queue(index))
            jobs.append((url, [Entry(WAKE_BODY, attributes, 64, delay)]))
        if jobs:
            self.sender.send_entries(jobs)

    def on_schedule(
        self, event: Mapping[str, Any] | None = None, context: LambdaContext | None = None
    ) -> dict[str, Any]:
        """Ring the partitions that have a due timer or never committed."""
        now = self.clock()
        seen: set[int] = set()
        due: list[int] = []
        for health in self.status.health():
            seen.add(health.partition)
            if health.next_due is not None and health.next_due <= now:
                due.append(health.partition)
        due.extend(p for p in range(self.config.partitions) if p not in seen)
        self.ring(sorted(due))
        return {"rang": sorted(due)}

    # -- ingress -------------------------------------------------------------------------

    def parse(self, data: bytes) -> Outgoing:
        if self._parser is not None:
            return self._parser(data)
        request = parse_request(self.schema, self.config.partitions, data, self.config.epoch)
        return request.outgoing

    def on_ingress_batch(
        self, event: Mapping[str, Any], context: LambdaContext | None = None
    ) -> dict[str, Any]:
        """Validate and route requests; dead-letter invalid ones with their reason."""
        valid: list[tuple[str, Outgoing]] = []
        rejected: list[tuple[Mapping[str, Any], str]] = []
        for record in event.get("Records", []):
            attributes = record.get("messageAttributes") or {}
            try:
                data = decode_body(self.config, record.get("body", ""), attributes)
                valid.append((str(record["messageId"]), self.parse(data)))
            except (ClaimError, IngressError) as error:
                rejected.append((record, str(error).splitlines()[0] if str(error) else "invalid"))
        failures: list[str] = []
        if valid:
            try:
                self.sender.send([out for _, out in valid])
            except Exception:
                log.exception("ingress: routing %d requests failed; they come back", len(valid))
                failures.extend(m for m, _ in valid)
        if rejected:
            try:
                self._dead_letter_requests(rejected)
            except Exception:
                log.exception("ingress: dead-lettering failed; the requests come back")
                failures.extend(str(r["messageId"]) for r, _ in rejected)
        return {"batchItemFailures": [{"itemIdentifier": m} for m in failures]}

    def _dead_letter_requests(self, rejected: list[tuple[Mapping[str, Any], str]]) -> None:
        entries: list[Entry] = []
        for record, reason in rejected:
            log.warning("ingress: request %s dead-lettered: %s", record.get("messageId"), reason)
            attributes: dict[str, Any] = {
                name: {"DataType": value.get("dataType", "String"),
                       "StringValue": value.get("stringValue", "")}
                for name, value in (record.get("messageAttributes") or {}).items()
                if isinstance(value, Mapping) and value.get("stringValue") is not None
            }
            attributes[REASON_ATTRIBUTE] = {"DataType": "String",
                                            "StringValue": reason[:MAX_REASON]}
            body = str(record.get("body", "")) or json.dumps("")
            size = len(body.encode()) + sum(len(json.dumps(a)) for a in attributes.values())
            entries.append(Entry(body, attributes, size))
        url = self.config.queue_url(self.config.ingress_dlq)
        batches = split(entries, self.sender.max_batch_count, self.sender.max_batch_bytes)
        self.sender.send_entries([(url, batch) for batch in batches])
