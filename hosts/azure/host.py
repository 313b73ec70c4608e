"""The Azure host: what the functions do, as a thin adapter over the partition worker.

- :meth:`AzureHost.on_partition_events`: a batch of the partition hub's events for one
  partition (its id from the trigger metadata). Events the last commit already covers are
  skipped; if the batch starts after where the last commit ended, the missing range is
  read from the hub first (the Functions host checkpoints a batch even when the function
  failed or lost a race, so a checkpoint can run ahead of the commits). Claim checks are
  resolved, wake-up events dropped, the rest handed to the worker; a stale invocation
  (another committed first) reloads and handles the batch again, so that when the
  function returns, its batch is committed and the checkpoint is right.
- :meth:`AzureHost.on_ingress_events`: requests anyone posted; valid ones are routed to
  their partitions, invalid ones dead-lettered with the reason.
- :meth:`AzureHost.on_timer`: rings partitions whose next timer is due (or that never
  committed, so that startup orchestrations start) with a wake-up event.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.eventhub import EventData

from hosts.azure.deadletters import BlobDeadLetters
from hosts.azure.events import event_bytes, partition_of, read_range
from hosts.azure.sender import WAKE, ClaimChecks, EventHubSender
from hosts.azure.settings import AzureSettings
from hosts.azure.snapshots import BlobSnapshotStore
from hosts.azure.status import BlobStatusStore
from reactive import App
from reactive.hosting import Schema
from reactive.hosting.client import SeamClient
from reactive.hosting.ingress import IngressError, parse_request
from reactive.hosting.seams import Inbound, StaleSnapshotError, StatusRecord
from reactive.hosting.worker import Hook, Outcome, Output, PartitionWorker, WorkerOptions

log = logging.getLogger("reactive.azure")

STALE_RETRIES = 3  # a batch is handled again this often after losing a commit race
INVOCATION_LIMIT = 240.0  # seconds an invocation keeps working (Functions' default is 5 min)


@dataclass
class BatchReport:
    """What one partition invocation did (for logs, tests and the local runner)."""

    partition: int
    events: int = 0
    handled: int = 0  # records handed to the worker
    skipped: int = 0  # already covered by a commit
    caught_up: int = 0  # read from the hub because the batch started after a gap
    wakes: int = 0
    stale: int = 0  # commits lost to another invocation
    committed: bool = False
    gave_up: bool = False
    processed: int = 0  # messages applied (the worker's count)
    duplicates: int = 0
    activities: int = 0


@dataclass
class HostStats:
    """Totals over this process's partition invocations."""

    invocations: int = 0
    events: int = 0
    processed: int = 0
    duplicates: int = 0
    activities: int = 0
    stale: int = 0

    def add(self, report: BatchReport) -> None:
        self.invocations += 1
        self.events += report.events
        self.processed += report.processed
        self.duplicates += report.duplicates
        self.activities += report.activities
        self.stale += report.stale


class AzureHost:
    """One per process: the stores, the sender and a worker per partition."""

    def __init__(
        self,
        app: App | Schema,
        settings: AzureSettings,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        create_container: bool = True,
        output: Output | None = None,
    ) -> None:
        """``output`` receives the partitions' log lines and unhandled errors (default:
        the ``reactive.app`` and ``reactive.host`` loggers)."""
        self.schema = app.compile() if isinstance(app, App) else app
        self.settings = settings
        self.clock = clock
        self.sleep = sleep
        self.container = settings.container_client()
        if create_container:
            with contextlib.suppress(ResourceExistsError):
                self.container.create_container()
        self.store = BlobSnapshotStore(self.container)
        self.status = BlobStatusStore(self.container, settings.partitions)
        self.dead_letters = BlobDeadLetters(self.container)
        self.claims = ClaimChecks(self.container)
        self.sender = EventHubSender(
            lambda: settings.producer(settings.partition_hub), self.claims
        )
        self.options = WorkerOptions(
            partitions=settings.partitions, epoch=settings.epoch,
            time_budget=settings.time_budget,
        )
        self._workers: dict[int, PartitionWorker] = {}
        self._locks = [threading.Lock() for _ in range(settings.partitions)]
        self._guard = threading.Lock()
        self.output = output
        self.stats = HostStats()
        # called with each step of a commit ("saved", "sent", "published", ...) on the
        # invocation's thread: for measurements (``hosts.azure.accounting --hops``)
        self.hook: Hook | None = None

    def close(self) -> None:
        self.sender.close()
        self.status.close()
        self.store.close()

    def client(self) -> SeamClient:
        return SeamClient(
            self.schema, self.settings.partitions, self.sender, self.status, self.settings.epoch
        )

    def worker(self, partition: int) -> PartitionWorker:
        with self._guard:
            worker = self._workers.get(partition)
            if worker is None:
                worker = PartitionWorker(
                    self.schema, partition, self.options, self.store, self.sender, self.status,
                    clock=self.clock, output=self.output,
                )
                self._workers[partition] = worker
            return worker

    # -- the partition hub -------------------------------------------------------------------

    def on_partition_events(self, events: Sequence[func.EventHubEvent]) -> BatchReport:
        partition = partition_of(events)
        if partition is None:
            if not events:
                raise ValueError("an empty batch names no partition")
            raise ValueError("the trigger metadata names no PartitionContext.PartitionId")
        if not 0 <= partition < self.settings.partitions:
            raise ValueError(
                f"event hub partition {partition} is outside the app's "
                f"{self.settings.partitions} partitions (REACTIVE_PARTITIONS must equal the "
                "partition hub's partition count)"
            )
        report = BatchReport(partition, events=len(events))
        with self._locks[partition]:
            worker = self.worker(partition)
            for _ in range(STALE_RETRIES + 1):
                try:
                    self._run(worker, events, report)
                    self._count(report)
                    return report
                except StaleSnapshotError:
                    report.stale += 1
                    log.info("partition %d: lost a commit race; handling the batch again",
                             partition)
                except Exception:
                    # The Functions host checkpoints a failed batch too, and nothing may
                    # arrive for this partition for a while: ring it, so that the next
                    # invocation soon reads the range this one did not commit.
                    self._ring_after_failure(partition)
                    raise
            report.gave_up = True
            self._count(report)
            self._ring_after_failure(partition)
            log.warning("partition %d: lost %d commit races in a row; the batch is left to "
                        "the partition's owner", partition, report.stale)
            return report

    def _count(self, report: BatchReport) -> None:
        with self._guard:
            self.stats.add(report)

    def _ring_after_failure(self, partition: int) -> None:
        try:
            self.sender.wake([partition])
        except Exception:
            log.exception("partition %d: could not ring itself after a failure", partition)

    def _run(
        self, worker: PartitionWorker, events: Sequence[func.EventHubEvent], report: BatchReport
    ) -> None:
        partition = worker.index
        started = self.clock()
        worker.partition()  # loaded (or warm): the store now knows the committed position
        known = self.store.position(partition)
        # nothing known (no commit yet, or its mark was lost): from the start of the stream
        position = -1 if known is None else known
        numbers = [e.sequence_number for e in events if e.sequence_number is not None]
        batch: list[Inbound] = []
        if numbers and min(numbers) > position + 1:
            missing = read_range(
                self.settings, self.settings.partition_hub, partition, position + 1,
                min(numbers) - 1,
            )
            report.caught_up = len(missing)
            log.info("partition %d: batch starts at %d after the commit at %d; read %d "
                     "missing events", partition, min(numbers), position, len(missing))
            batch.extend(self._inbound_data(e) for e in missing if event_bytes(e) != WAKE)
        for event in events:
            number = event.sequence_number
            if number is not None and number <= position:
                report.skipped += 1
                continue
            body = event.get_body()
            if body == WAKE:
                report.wakes += 1
                continue
            batch.append(Inbound(self.claims.resolve(body), _seconds(event.enqueued_time),
                                 number))
        report.handled = len(batch)
        # the batch's position travels in the commit that covers it (no write of its own)
        self.store.stage_position(partition, max(numbers) if numbers else None)
        outcome = worker.handle(batch, self.hook)
        _absorb(report, outcome)
        while outcome.more and self.clock() - started < INVOCATION_LIMIT:
            outcome = worker.handle([], self.hook)
            _absorb(report, outcome)
        if numbers:  # no-op if a commit carried it; else (nothing changed) a metadata write
            self.store.set_position(partition, max(numbers))
        self.store.flush(partition)
        outcome = self._wait_for_timers(worker, outcome, started, report)
        if outcome.more:
            self.sender.wake([partition])  # the trigger comes back for the rest

    def _inbound_data(self, event: EventData) -> Inbound:
        body = event_bytes(event)
        return Inbound(self.claims.resolve(body), _seconds(event.enqueued_time),
                       event.sequence_number)

    def _wait_for_timers(
        self, worker: PartitionWorker, outcome: Outcome, started: float, report: BatchReport
    ) -> Outcome:
        """Timers due within ``wait_limit`` are awaited here rather than by a wake-up."""
        while outcome.next_due is not None and not outcome.more:
            now = self.clock()
            delay = outcome.next_due - now
            if delay > self.settings.wait_limit or now - started + delay > INVOCATION_LIMIT:
                break
            if delay > 0:
                self.sleep(delay)
            outcome = worker.handle([])
            _absorb(report, outcome)
            self.store.flush(worker.index)
        return outcome

    # -- the ingress hub ---------------------------------------------------------------------

    def on_ingress_events(self, events: Sequence[func.EventHubEvent]) -> tuple[int, int]:
        """Route valid requests, dead-letter invalid ones; (routed, dead-lettered)."""
        accepted = []
        dead = 0
        for event in events:
            body = event.get_body()
            try:
                accepted.append(
                    parse_request(self.schema, self.settings.partitions, body,
                                  self.settings.epoch)
                )
            except IngressError as exc:
                dead += 1
                log.warning("ingress event %s dead-lettered: %s", event.sequence_number, exc)
                self.dead_letters.put("ingress", body, str(exc))
        now = self.clock()
        self.status.put_pending_all([
            StatusRecord(r.instance_id, r.name, "pending", r.outgoing.dest, now, now)
            for r in accepted
        ])
        self.sender.send([r.outgoing for r in accepted])
        return len(accepted), dead

    # -- the timer -----------------------------------------------------------------------------

    def on_timer(self) -> list[int]:
        """Ring partitions with due timers or no commit yet; the partitions rung."""
        health = {h.partition: h for h in self.status.health()}
        now = self.clock()
        due = [
            p for p in range(self.settings.partitions)
            if p not in health or _due(health[p].next_due, now)
        ]
        if due:
            self.sender.wake(due)
        return due


def _absorb(report: BatchReport, outcome: Outcome) -> None:
    report.committed |= outcome.committed is not None
    report.processed += outcome.processed
    report.duplicates += outcome.duplicates
    report.activities += outcome.activities


def _due(when: float | None, now: float) -> bool:
    return when is not None and when <= now


def _seconds(when: datetime | None) -> float:
    if when is None:
        return time.time()
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
