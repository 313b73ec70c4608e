"""The local host: partition workers driven over local input logs, in memory or in a
durable state folder (:mod:`hosts.local.folder`).

It is a pull driver on top of the push-shaped worker: read a batch of a partition's
input, hand it to the partition's worker, acknowledge what the commit covers.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from hosts.local.folder import FolderState
from reactive import App
from reactive.hosting import Partition, describe_waits, envelope
from reactive.hosting.client import SeamClient
from reactive.hosting.memory import MemoryLogs, MemoryStatusStore, MemoryStore
from reactive.hosting.seams import Inbound, Outgoing, SnapshotStore, StatusStore
from reactive.hosting.worker import Hook, Outcome, PartitionWorker, WorkerOptions

Done = Callable[[bool, Any], None]  # (ok, result or exception), called after the commit
MAX_JOBS = 512  # client requests the driver takes into one transaction
# seconds of activities that the requests' processing may run before their transaction
# commits: short ones then share its one fsync (the requests are answered only after it)
HOLD_FOR_ACTIVITIES = 0.01
# ... for at most this many requests to a partition: held activities run on a thread of
# their own (a hand-over each, about 0.1 ms), so more requests commit first and then run
# theirs inline (one more fsync for the lot instead of a hand-over per activity)
HOLD_UP_TO = 4


class VirtualClock:
    """Time that only moves when the host is idle and a timer is due."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class Inbox(Protocol):
    """Local input logs: a Sender that can also be read and acknowledged."""

    def send(self, messages: Sequence[Outgoing]) -> None: ...
    def read(self, partition: int, limit: int) -> list[Inbound]: ...
    def acknowledge(self, partition: int, refs: Sequence[Hashable]) -> None: ...
    def backlog(self, partition: int) -> int: ...


class LocalHost:
    """Runs an application's partitions in this process until quiescence, or
    continuously in a background thread (``start_background``)."""

    def __init__(
        self,
        app: App,
        partitions: int | None = 4,
        state_dir: Path | str | None = None,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        batch_size: int = 256,
        time_budget: float = 1.0,
        epoch: str = "1",
        on_unhandled: Callable[[str], None] | None = None,
        fsync: bool = True,
    ) -> None:
        """``partitions=None`` with a ``state_dir`` adopts the folder's count."""
        if partitions is not None and partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        self.schema = app.compile()
        self.clock = clock or (time.time if state_dir is not None else VirtualClock())
        self.folder: FolderState | None = None
        self.inbox: Inbox
        self.store: SnapshotStore
        self.status: StatusStore
        if state_dir is None:
            count = partitions or 4
            self.inbox = MemoryLogs(count, self.clock)
            self.store, self.status = MemoryStore(), MemoryStatusStore()
        else:
            self.folder = FolderState(state_dir, app.name, partitions, fsync=fsync,
                                      clock=self.clock)
            count = self.folder.partitions
            self.inbox = self.store = self.status = self.folder
        self.count = count
        self.epoch = epoch
        self.batch_size = batch_size
        self.options = WorkerOptions(count, epoch=epoch, time_budget=time_budget)
        self.logs: list[tuple[int, int, str]] = []
        self.unhandled: list[str] = []
        self.app_log = logging.getLogger(f"reactive.app.{app.name}")
        self._on_unhandled = on_unhandled
        self._rng = random.Random(seed)
        self._due: dict[int, float | None] = {}
        self._mutex = threading.RLock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by this host's clients when they send
        self._thread: threading.Thread | None = None
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Done]] = queue.SimpleQueue()
        self._capture: list[Outgoing] | None = None  # the driver's sends while it runs jobs
        self._commit_listeners: list[Callable[[bool], None]] = []
        self.invocations = 0
        self.deliveries = 0
        self.activity_runs = 0
        self.duplicates_dropped = 0
        self.restores = 0
        # messages between this host's partitions never leave the process: a receiver
        # takes the sender's message instead of parsing and validating its bytes again
        self.recent = envelope.Recent()
        self.workers = [self.new_worker(i) for i in range(count)]
        if self.folder is not None:  # it knows when a held transaction commits at last
            self.folder.on_commit(self._tell_commit)

    def new_worker(self, index: int) -> PartitionWorker:
        """A worker for partition ``index`` on this host's seams (tests make extra ones
        to play a second, concurrent invocation)."""
        return PartitionWorker(self.schema, index, self.options, self.store, self.inbox,
                               self.status, self.clock, output=_Output(self),
                               recent=self.recent)

    def _log(self, partition: int, level: int, text: str) -> None:
        self.logs.append((partition, level, text))
        self.app_log.log(level, text)

    def _unhandled(self, text: str) -> None:
        self.unhandled.append(text)
        if self._on_unhandled is not None:
            self._on_unhandled(text)

    # -- the client ----------------------------------------------------------------------------

    def client(self) -> SeamClient:
        drive = None if self._thread is not None else self.run
        return SeamClient(self.schema, self.count, _Waking(self),
                          self.status, self.epoch, drive=drive, clock=self.clock)

    # -- driving -------------------------------------------------------------------------------

    def invoke(self, index: int, hook: Hook | None = None,
               worker: PartitionWorker | None = None, group_commit: bool = False) -> Outcome:
        """One invocation of partition ``index``: read, handle, acknowledge. Durable when
        it returns, unless ``group_commit`` lets its commit share the fsync of the next
        invocations (a state folder's group commit: ``FolderState.group``)."""
        worker = worker or self.workers[index]
        with self._mutex, self._group(group_commit):
            batch = self.inbox.read(index, self.batch_size)
            outcome = worker.handle(batch, hook)
            self.inbox.acknowledge(index, outcome.acknowledged)
        self._count(index, outcome)
        return outcome

    def _count(self, index: int, outcome: Outcome) -> None:
        self.invocations += 1
        self._due[index] = outcome.next_due
        self.deliveries += outcome.processed
        self.activity_runs += outcome.activities
        self.duplicates_dropped += outcome.duplicates

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """Group the client requests made in the block into one durable write (in a state
        folder: one transaction, one fsync), as a client submitting a batch would."""
        return self._group()

    @contextlib.contextmanager
    def _group(self, group_commit: bool = False) -> Iterator[None]:
        """One transaction (in a state folder, which tells the commit listeners when it
        commits or rolls back: with ``group_commit`` the transaction may stay open for
        the next invocations); in memory the listeners hear at the end of the block."""
        if self.folder is not None:
            with self.folder.group(group_commit):
                yield
            return
        committed = False
        try:
            yield
            committed = True
        finally:
            self._tell_commit(committed)

    def _tell_commit(self, committed: bool) -> None:
        for listener in self._commit_listeners:
            with contextlib.suppress(Exception):  # a listener must never fail a commit
                listener(committed)

    def on_commit(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(committed)`` after each invocation's or batch's transaction
        ends (durable once it is called with True; rolled back with False), on the
        thread that ran it. What a status store was told to publish inside the
        transaction is visible to readers from then on."""
        self._commit_listeners.append(listener)

    # -- client requests run by the driver ------------------------------------------------

    def submit(self, job: Callable[[], Any], done: Done) -> None:
        """Run ``job`` (client requests: starts, events, terminations) on the driver
        thread, inside the same transaction as the invocations that handle what it sends,
        and then ``done(ok, result_or_exception)`` once that transaction has committed.
        Requests submitted together share one transaction and one fsync, and a start is
        durable and processed after a single commit. Needs ``start_background``."""
        if self._thread is None:
            raise RuntimeError("submit needs a host driven in the background (start_background)")
        self._jobs.put((job, done))
        self._wake.set()

    def _take_jobs(self) -> list[tuple[Callable[[], Any], Done]]:
        jobs: list[tuple[Callable[[], Any], Done]] = []
        while len(jobs) < MAX_JOBS:
            try:
                jobs.append(self._jobs.get_nowait())
            except queue.Empty:
                break
        return jobs

    def _run_jobs(self, jobs: list[tuple[Callable[[], Any], Done]]) -> None:
        """One transaction: the jobs, then an invocation of each partition they sent to,
        handed their messages directly (never written to the input log, so one commit
        covers the request and its processing)."""
        results: list[tuple[bool, Any]] = []
        handled: list[int] = []
        try:
            with self._mutex, self._group():
                captured: list[Outgoing] = []
                self._capture = captured
                try:
                    for job, _ in jobs:
                        try:
                            results.append((True, job()))
                        except Exception as exc:
                            results.append((False, exc))
                finally:
                    self._capture = None
                now = self.clock()
                direct: dict[int, list[Outgoing]] = {}
                for message in captured:
                    direct.setdefault(message.dest, []).append(message)
                for index in sorted(direct):
                    handled.append(index)
                    few = len(direct[index]) <= HOLD_UP_TO
                    if not few:  # committed before its activities run: its input with it
                        self.inbox.send(direct[index])
                    batch = self.inbox.read(index, self.batch_size)
                    if few and len(batch) < self.batch_size:
                        batch += [Inbound(m.data, now) for m in direct[index]]
                    elif few:  # older input is waiting beyond this batch: keep the order
                        self.inbox.send(direct[index])
                    worker = self.workers[index]
                    if few:
                        worker.hold_commits = HOLD_FOR_ACTIVITIES
                    try:
                        outcome = worker.handle(batch)
                    finally:
                        worker.hold_commits = 0.0
                    # every record handed over is acknowledged; the direct ones have no ref
                    self.inbox.acknowledge(index, [r for r in outcome.acknowledged
                                                   if r is not None])
                    self._count(index, outcome)
        except Exception as exc:  # nothing of the transaction happened
            for index in handled:  # their memory ran ahead of the rolled-back store
                self.workers[index].forget()
            results = [(False, exc)] * len(jobs)
        for (ok, value), (_, done) in zip(results, jobs, strict=True):
            with contextlib.suppress(Exception):
                done(ok, value)

    def _fail_jobs(self) -> None:
        stopped = RuntimeError("the host stopped before the request was processed")
        for _, done in self._take_jobs():
            with contextlib.suppress(Exception):
                done(False, stopped)

    def now(self) -> float:
        return self.clock()

    def next_due(self) -> float | None:
        """The earliest due timer over the partitions (as last invoked)."""
        dues = [d for d in (w.next_due() for w in self.workers) if d is not None]
        return min(dues) if dues else None

    def step(self) -> bool:
        """One invocation of a partition with input (the emulator's single step, in this
        host's grain); False if no partition has input."""
        ready = [p for p in range(self.count) if self.inbox.backlog(p)]
        if not ready:
            return False
        self.invoke(ready[self._rng.randrange(len(ready))])
        return True

    def idle(self) -> bool:
        return not any(self.inbox.backlog(p) for p in range(self.count))

    def run(
        self,
        until: Callable[[], bool] | None = None,
        progress: Callable[[LocalHost], None] | None = None,
    ) -> bool:
        """Invoke partitions (in a seeded random order) until ``until()`` holds or every
        partition is idle with no timer pending; returns whether ``until`` holds (True
        when there is none)."""
        while True:
            if until is not None and until():
                return True
            if self._stop.is_set():
                return until() if until is not None else False
            busy = False
            order = list(range(self.count))
            self._rng.shuffle(order)
            now = self.clock()
            for index in order:
                # an invocation with nothing to do still reads the log, opens a block
                # and acknowledges; skipped, an idle driver's sweep costs a query per
                # partition (and a held transaction still ends: the invocation that
                # finds no input left anywhere is never one of these)
                if self.workers[index].quiet(now) and not self.inbox.backlog(index):
                    continue
                outcome = self.invoke(index, group_commit=True)
                busy = busy or bool(outcome.processed or outcome.more or outcome.committed)
                if until is not None and until():
                    return True
            if progress is not None:
                progress(self)
            if busy or not self.idle():
                continue
            dues = [d for d in self._due.values() if d is not None]
            if not dues:
                return until() if until is not None else True
            wait = min(dues) - self.clock()
            if isinstance(self.clock, VirtualClock):
                self.clock.now += max(0.0, wait)
            elif wait > 0:
                if self._thread is None and until is None:
                    time.sleep(wait)
                else:
                    self._wake.wait(min(wait, 0.05))
                    self._wake.clear()

    def start_background(self, poll: float = 0.05) -> None:
        """Drive the partitions continuously in a thread (``reactive serve``)."""
        if self._thread is not None:
            return

        def interrupted() -> bool:
            return self._stop.is_set() or not self._jobs.empty()

        def loop() -> None:
            try:
                while not self._stop.is_set():
                    jobs = self._take_jobs()
                    if jobs:
                        self._run_jobs(jobs)
                        continue
                    if self.run(until=interrupted) and not self._stop.is_set():
                        continue  # submitted requests are waiting
                    # woken at once by this host's clients; input from other processes
                    # is picked up within ``poll`` seconds
                    self._wake.wait(poll)
                    self._wake.clear()
            finally:
                self._fail_jobs()

        self._thread = threading.Thread(target=loop, name="reactive-driver", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._fail_jobs()  # submitted while the driver was stopping

    def close(self) -> None:
        self.stop()
        if self.folder is not None:
            self.folder.close()

    @contextlib.contextmanager
    def background(self) -> Iterator[LocalHost]:
        self.start_background()
        try:
            yield self
        finally:
            self.stop()

    # -- inspection --------------------------------------------------------------------------

    @property
    def parts(self) -> list[Partition]:
        """The live partitions (loading any that are not warm)."""
        return [w.partition() for w in self.workers]

    def describe(self, instance_id: str) -> list[str] | None:
        """What a live instance waits for (None if it is not live)."""
        owner = self.schema.instance_owner(instance_id, self.count)
        return describe_waits(self.workers[owner].partition(), instance_id)

    def app_lines(self) -> list[str]:
        return [text for _, _, text in self.logs]


class _Output:
    """The workers' output sink: the host's log and unhandled-error lists."""

    def __init__(self, host: LocalHost) -> None:
        self.host = host

    def log(self, partition: int, level: int, text: str) -> None:
        self.host._log(partition, level, text)

    def unhandled(self, partition: int, text: str) -> None:
        self.host._unhandled(text)


class _Waking:
    """A sender that wakes the host's driver after each send, or, inside a job the
    driver runs (``LocalHost.submit``), hands the messages to the driver instead."""

    def __init__(self, host: LocalHost) -> None:
        self.host = host

    def send(self, messages: Sequence[Outgoing]) -> None:
        capture = self.host._capture
        if capture is not None and threading.current_thread() is self.host._thread:
            capture.extend(messages)
            return
        self.host.inbox.send(messages)
        self.host._wake.set()
