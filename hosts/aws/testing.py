"""Test an application against SQS and S3 on a local endpoint (moto), in this process.

:class:`AwsTestHost` runs the real Lambda handler (:class:`~hosts.aws.handler.AwsHost`)
and drives it in the calling thread as the event source mappings would, on a virtual
clock; it implements the one host interface (:class:`reactive.hosting.Host`: ``client()``,
``run(until, progress)``, ``describe``, ``parts``, the counters, ``app_log``,
``unhandled``, ``now``, ``schema``), so a test written for the emulator runs on it too::

    with aws_test_host(app, "http://127.0.0.1:5000", partitions=4) as host:
        client = host.client()
        iid = client.start(Checkout(order="o-1"))
        host.run(until=lambda: client.status(iid).done)

Each invocation receives a partition queue's messages, builds the SQS event Lambda builds,
calls :meth:`AwsHost.on_partition_batch`, deletes what the partial batch response does not
name and makes the rest visible again at once. Snapshots and statuses go to S3 through the
host's own stores.

Time is virtual: a message is stamped with the virtual time it is received at, and when
every partition queue is empty the clock jumps to the earliest due timer and the partitions
whose timers are due get a wake-up message, so a one-hour timer takes no hour. The
handler's delayed wake-up messages (SQS ``DelaySeconds``, real seconds) are therefore not
sent: the clock plays them.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hosts.aws.config import AwsConfig
from hosts.aws.handler import AwsHost, Worker
from hosts.aws.local import lambda_record
from hosts.aws.provision import provision
from hosts.aws.sender import Entry, SqsSender
from hosts.local import VirtualClock
from reactive import App
from reactive.hosting import Partition, describe_waits
from reactive.hosting.client import SeamClient
from reactive.hosting.seams import Inbound
from reactive.hosting.worker import Outcome, PartitionWorker, WorkerOptions

BATCH_SIZE = 100  # records per invocation, as an event source mapping's batch size
REGION = "us-east-1"


class _CountingWorker:
    """The partition worker, counting what its invocations did for the host's figures."""

    def __init__(self, driver: AwsTestHost, worker: PartitionWorker) -> None:
        self.driver = driver
        self.inner = worker

    def handle(self, batch: Sequence[Inbound]) -> Outcome:
        outcome = self.inner.handle(batch)
        self.driver._count(outcome)
        return outcome


class _Output:
    def __init__(self, driver: AwsTestHost) -> None:
        self.driver = driver

    def log(self, partition: int, level: int, text: str) -> None:
        with self.driver._lock:
            self.driver.logs.append((partition, level, text))
        self.driver.app_log.log(level, text)

    def unhandled(self, partition: int, text: str) -> None:
        with self.driver._lock:
            self.driver.unhandled.append(text)


class _MarkingSender(SqsSender):
    """The SQS sender, noting which queues it sent to (the driver polls those first)."""

    def __init__(self, config: AwsConfig, pool: ThreadPoolExecutor,
                 sent: Callable[[str], None]) -> None:
        super().__init__(config, pool=pool)
        self.sent = sent

    def send_entries(self, jobs: Sequence[tuple[str, list[Entry]]]) -> None:
        super().send_entries(jobs)
        for url, _ in jobs:
            self.sent(url)


class _VirtualTimeHost(AwsHost):
    """The real handler; a delayed wake-up message is left to the virtual clock, and
    the sender notes the queues it sends to."""

    def __init__(self, app: App, config: AwsConfig, sent: Callable[[str], None],
                 **options: Any) -> None:
        super().__init__(app, config, **options)
        self.sender = _MarkingSender(config, self._pools[2], sent)

    def ring(self, partitions: Sequence[int], delay: int = 0) -> None:
        if delay <= 0:
            super().ring(partitions, 0)


class AwsTestHost:
    """Drives an :class:`AwsHost` over a provisioned deployment to quiescence on a virtual
    clock (see the module doc); implements :class:`reactive.hosting.Host`."""

    def __init__(self, app: App, config: AwsConfig, seed: int = 0,
                 batch_size: int = BATCH_SIZE) -> None:
        self.config = config
        self.app_log = logging.getLogger(f"reactive.app.{app.name}")
        self.clock = VirtualClock()
        self.count = config.partitions
        self.epoch = config.epoch
        self.batch_size = batch_size
        self.logs: list[tuple[int, int, str]] = []
        self.unhandled: list[str] = []
        self.invocations = 0
        self.deliveries = 0
        self.activity_runs = 0
        self.duplicates_dropped = 0
        self.restores = 0
        self._rng = random.Random(seed)
        self._pool = ThreadPoolExecutor(config.partitions, thread_name_prefix="mapping")
        self._lock = threading.Lock()
        self._workers: dict[int, PartitionWorker] = {}
        self.sqs = config.sqs
        self._arns: dict[int, str] = {}
        self._urls = {p: config.queue_url(config.partition_queue(p)) for p in range(self.count)}
        self._partition_of = {url: p for p, url in self._urls.items()}
        # partitions sent to since their queue was last found empty: polled first, so
        # a round does not cost an empty receive per idle partition (quiescence is still
        # confirmed by receiving from every queue)
        self._dirty: set[int] = set()
        self.host = _VirtualTimeHost(app, config, self._sent, clock=self.clock,
                                     short_wait=0.0, stale_retry=0,
                                     worker_factory=self._new_worker)
        self.schema = self.host.schema
        # the first schedule tick rings every partition that never committed, so startup
        # orchestrations run (as the deployed schedule does)
        self._scheduled = False

    # -- the workers ---------------------------------------------------------------------

    def _new_worker(self, host: AwsHost, index: int) -> Worker:
        options = WorkerOptions(partitions=self.count, epoch=self.epoch,
                                time_budget=host.time_budget)
        worker = PartitionWorker(host.schema, index, options, host.store, host.sender,
                                 host.status, clock=self.clock, output=_Output(self))
        self._workers[index] = worker
        return _CountingWorker(self, worker)

    def _sent(self, url: str) -> None:
        partition = self._partition_of.get(url)
        if partition is not None:
            self._dirty.add(partition)

    def _count(self, outcome: Outcome) -> None:
        with self._lock:
            self.deliveries += outcome.processed
            self.activity_runs += outcome.activities
            self.duplicates_dropped += outcome.duplicates

    def _worker(self, index: int) -> PartitionWorker:
        if index not in self._workers:
            self.host._partition(index)  # the host makes (and keeps) it
        return self._workers[index]

    # -- the client ----------------------------------------------------------------------

    def client(self) -> SeamClient:
        return SeamClient(self.schema, self.count, self.host.sender, self.host.status,
                          self.epoch, drive=self.run, clock=self.clock)

    # -- the event source mapping ----------------------------------------------------------

    def _arn(self, index: int) -> str:
        arn = self._arns.get(index)
        if arn is None:
            arn = str(self.sqs.get_queue_attributes(
                QueueUrl=self._urls[index], AttributeNames=["QueueArn"]
            )["Attributes"]["QueueArn"])
            self._arns[index] = arn
        return arn

    def _receive(self, index: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < self.batch_size:
            got = self.sqs.receive_message(
                QueueUrl=self._urls[index], WaitTimeSeconds=0,
                MaxNumberOfMessages=min(10, self.batch_size - len(messages)),
                AttributeNames=["All"], MessageAttributeNames=["All"],
            ).get("Messages", [])
            messages.extend(got)
            if len(got) < 10:
                break
        return messages

    def invoke(self, index: int) -> bool:
        """One invocation of partition ``index`` with what its queue holds; False if empty."""
        self._dirty.discard(index)
        messages = self._receive(index)
        if not messages:
            return False
        self._dirty.add(index)  # until a receive finds the queue empty
        stamp = str(int(self.clock() * 1000))  # sent "now": the clock only moves when idle
        records = [lambda_record(m, self._arn(index), REGION) for m in messages]
        for record in records:
            record["attributes"]["SentTimestamp"] = stamp
        response = self.host.on_partition_batch({"Records": records}, None)
        with self._lock:
            self.invocations += 1
        failed = {str(f["itemIdentifier"]) for f in response.get("batchItemFailures", [])}
        self._settle(index, [m for m in messages if m["MessageId"] not in failed], delete=True)
        self._settle(index, [m for m in messages if m["MessageId"] in failed], delete=False)
        return True

    def _settle(self, index: int, messages: list[dict[str, Any]], delete: bool) -> None:
        """Delete what the commit covers; hand the rest out again at once."""
        for start in range(0, len(messages), 10):
            chunk = messages[start:start + 10]
            if delete:
                self.sqs.delete_message_batch(QueueUrl=self._urls[index], Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                    for n, m in enumerate(chunk)])
            else:
                self.sqs.change_message_visibility_batch(QueueUrl=self._urls[index], Entries=[
                    {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for n, m in enumerate(chunk)])

    # -- driving -------------------------------------------------------------------------

    def now(self) -> float:
        return self.clock()

    def next_due(self) -> float | None:
        dues = [d for d in (w.next_due() for w in self._workers.values()) if d is not None]
        return min(dues) if dues else None

    def _schedule(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.host.on_schedule({}, None)

    def step(self) -> bool:
        """One invocation of a partition with input (in a seeded random order); False if
        every partition queue is empty."""
        self._schedule()
        for candidates in (sorted(self._dirty), list(range(self.count))):
            self._rng.shuffle(candidates)
            if any(self.invoke(index) for index in candidates):
                return True
        return False

    def run(
        self,
        until: Callable[[], bool] | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> bool:
        """Invoke partitions until ``until()`` holds or every queue is empty and no timer
        is pending; whether ``until`` holds (True when there is none). ``progress`` is
        called with the host after each round of invocations."""
        self._schedule()
        while True:
            if until is not None and until():
                return True
            if progress is not None:
                progress(self)
            busy = False
            confirm = not self._dirty  # nothing known to be waiting: poll every queue
            order = list(range(self.count)) if confirm else sorted(self._dirty)
            self._rng.shuffle(order)
            # the partitions of a round are invoked at once, as the mappings of their
            # queues would be: the calls to moto overlap. Every one is awaited (a bare
            # any() would stop at the first busy one): a round still running would be
            # invoked again beside the next one, and could be in flight at quiescence
            busy = any([*self._pool.map(self.invoke, order)])
            if until is not None and busy and until():
                return True
            if busy or not confirm:
                continue
            due = self.next_due()
            if due is None:
                return until() if until is not None else True
            self.clock.now = max(self.clock.now, due)
            ring = [p for p, w in self._workers.items()
                    if (d := w.next_due()) is not None and d <= self.clock.now]
            self.host.ring(sorted(ring))

    # -- inspection ----------------------------------------------------------------------

    @property
    def parts(self) -> list[Partition]:
        return [self._worker(i).partition() for i in range(self.count)]

    def describe(self, instance_id: str) -> list[str] | None:
        """What a live instance waits for, one line per awaited call (None if not live)."""
        owner = self.schema.instance_owner(instance_id, self.count)
        return describe_waits(self._worker(owner).partition(), instance_id)

    def app_lines(self) -> list[str]:
        return [text for _, _, text in self.logs]

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.host.close()


def fresh_config(endpoint_url: str, partitions: int, region: str = REGION) -> AwsConfig:
    """A deployment of its own on ``endpoint_url`` (a random stem names its bucket and
    queues), so that hosts sharing a server do not meet."""
    stem = f"t{uuid.uuid4().hex[:10]}"
    return AwsConfig(bucket=f"{stem}-bucket", partitions=partitions, stem=stem,
                     endpoint_url=endpoint_url, region=region)


@contextlib.contextmanager
def aws_test_host(app: App, endpoint_url: str, partitions: int = 4,
                  seed: int = 0) -> Iterator[AwsTestHost]:
    """A fresh deployment on ``endpoint_url`` (its bucket and queues provisioned), driven
    by an :class:`AwsTestHost`; closed afterwards. Credentials come from the environment,
    as for any boto3 client (moto accepts any)."""
    config = fresh_config(endpoint_url, partitions)
    provision(config)
    host = AwsTestHost(app, config, seed)
    try:
        yield host
    finally:
        host.close()


__all__ = ["AwsTestHost", "aws_test_host", "fresh_config"]
