"""Off-loop helpers that let many concurrent requests share durable writes and status
reads, so that the event loop never blocks on a store and N requests cost far fewer than
N fsyncs:

- :class:`GroupWriter` runs client requests (starts, events, terminations) in one writer
  thread, each batch inside the host's ``batch()`` block (in a state folder: one
  transaction, one fsync for the whole batch); a host that takes requests itself
  (``LocalHost.submit``, see :data:`Submit`) is used instead, to commit them with their
  processing;
- :class:`Watcher` answers every pending wait: with the records a host publishes, once it
  reports their commit, and otherwise (or as a safety net) from one thread that polls the
  status store for all waited instances per round.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from reactive.hosting.seams import StatusRecord, StatusStore

FINISHED = frozenset({"completed", "failed", "terminated"})
MAX_BATCH = 256
POLL = 0.001  # seconds between the watcher's rounds while something is waited for
SAFETY_POLL = 0.05  # ... when the host reports its status changes
FOLLOW_POLL = 1.0  # ... when it reports its commits too (every finish is then reported)

Batch = Callable[[], contextlib.AbstractContextManager[Any]]
# runs a job on the host's driver, then calls back (ok, result or exception) once committed
Submit = Callable[[Callable[[], Any], Callable[[bool, Any], None]], None]


def settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class _Mailbox:
    """Settles futures of one event loop from other threads, many per wake-up: each
    ``call_soon_threadsafe`` writes to the loop's wake-up pipe, and a commit that ends
    hundreds of requests would otherwise write it hundreds of times."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.lock = threading.Lock()
        self.items: list[tuple[asyncio.Future[Any], bool, Any]] = []

    def post(self, future: asyncio.Future[Any], ok: bool, value: Any) -> None:
        with self.lock:
            self.items.append((future, ok, value))
            if len(self.items) > 1:
                return  # a drain is scheduled and has not taken the list yet
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: nobody waits any more
            with self.lock:
                self.items.clear()

    def _drain(self) -> None:
        with self.lock:
            items, self.items = self.items, []
        for future, ok, value in items:
            settle(future, ok, value)


_mailboxes: dict[asyncio.AbstractEventLoop, _Mailbox] = {}
_mailboxes_lock = threading.Lock()


def settle_from_thread(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """:func:`settle` ``future`` on its own loop, from any thread."""
    loop = future.get_loop()
    box = _mailboxes.get(loop)
    if box is None:
        with _mailboxes_lock:
            for old in [other for other in _mailboxes if other.is_closed()]:
                del _mailboxes[old]  # loops of finished test clients and servers
            box = _mailboxes.setdefault(loop, _Mailbox(loop))
    box.post(future, ok, value)


class GroupWriter:
    """Runs calls in one thread, as many as are queued together inside one ``batch()``."""

    def __init__(self, batch: Batch | None) -> None:
        self.batch: Batch = batch or contextlib.nullcontext
        self.jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self.jobs.put((fn, args, future, loop))
        self._ensure_thread()
        return await future

    def _ensure_thread(self) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="reactive-http-writer",
                                               daemon=True)
                self.thread.start()

    def close(self) -> None:
        with self.lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            self.jobs.put(None)
            thread.join(10)

    def _run(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            jobs = [job]
            while len(jobs) < MAX_BATCH:
                try:
                    more = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self.jobs.put(None)
                    break
                jobs.append(more)
            results: list[tuple[bool, Any]] = []
            try:
                with self.batch():
                    for fn, args, _, _ in jobs:
                        try:
                            results.append((True, fn(*args)))
                        except Exception as exc:
                            results.append((False, exc))
            except Exception as exc:  # the batch did not commit: none of it happened
                results = [(False, exc)] * len(jobs)
            for (ok, value), (_, _, future, _) in zip(results, jobs, strict=True):
                settle_from_thread(future, ok, value)


Entry = tuple["asyncio.Future[Any]", asyncio.AbstractEventLoop]


class Watcher:
    """Waits for instances to finish. A host that reports its status changes
    (:meth:`published`, see :func:`observe_publish`) resolves waits as they commit; one
    thread also polls the store for every waited id, each round after ``poll`` seconds
    (often when nothing reports changes, rarely as a safety net when something does).

    Told of commits too (:meth:`follow`, :meth:`committed`), it answers a wait with the
    record its host published as soon as that transaction has committed, without
    reading the store back."""

    def __init__(self, status: StatusStore, poll: float = POLL) -> None:
        self.status = status
        self.poll = poll
        self.waiting: dict[str, list[Entry]] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        self.stopped = False
        self.changed: set[str] = set()
        self.deferred = False  # published records wait for :meth:`committed`
        self.pending: dict[str, StatusRecord] = {}

    def published(self, records: Sequence[StatusRecord]) -> None:
        """Status changes as a host publishes them (called from its thread, possibly
        inside its transaction). Following commits, the finished ones are held until
        :meth:`committed`; otherwise the watcher reads them back (which returns once the
        commit is durable where a store's reads wait for its writer) and answers."""
        finished = [r for r in records if r.status in FINISHED]
        if not finished:
            return
        with self.lock:
            if self.deferred:
                for record in finished:
                    if record.instance_id in self.waiting:
                        self.pending[record.instance_id] = record
                return
            self.changed.update(r.instance_id for r in finished if r.instance_id in self.waiting)
            if not self.changed:
                return
        self.wake.set()

    def committed(self, ok: bool) -> None:
        """The host's transaction ended: answer the waits its publishes finished (if it
        committed) or forget them (if it rolled back)."""
        with self.lock:
            if not self.pending:
                return
            pending, self.pending = self.pending, {}
        if ok:
            for instance_id, record in pending.items():
                self._settle(instance_id, record)

    def notified(self, poll: float = SAFETY_POLL) -> None:
        """The host reports its changes: poll only as a safety net."""
        self.poll = poll

    def follow(self, poll: float = FOLLOW_POLL) -> None:
        """The host reports its publishes and its commits (see :meth:`committed`)."""
        with self.lock:
            self.deferred = True
        self.poll = poll

    def _settle(self, instance_id: str, record: StatusRecord | None) -> None:
        with self.lock:
            entries = self.waiting.pop(instance_id, [])
        for future, _ in entries:
            settle_from_thread(future, True, record)

    def register(self, instance_id: str) -> Entry:
        """Watch ``instance_id`` from now on (before the request that creates it, so that
        a finish in the same commit is seen); pass the entry to :meth:`wait`, or to
        :meth:`release` if it is not waited for after all."""
        loop = asyncio.get_running_loop()
        entry: Entry = (loop.create_future(), loop)
        with self.lock:
            self.waiting.setdefault(instance_id, []).append(entry)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="reactive-http-watcher",
                                               daemon=True)
                self.thread.start()
        if not self.deferred:
            # the thread may be idling with nothing to watch; following commits, its
            # polls are a safety net that need not start at once (and waking it for
            # every request cost a switch of threads each)
            self.wake.set()
        return entry

    def release(self, instance_id: str, entry: Entry) -> None:
        with self.lock:
            entries = self.waiting.get(instance_id, [])
            if entry in entries:
                entries.remove(entry)
            if not entries:
                self.waiting.pop(instance_id, None)

    async def wait(
        self, instance_id: str, timeout: float, entry: Entry | None = None, fresh: bool = False
    ) -> StatusRecord | None:
        """The record once finished (or unknown: None), else the latest after ``timeout``.
        ``fresh``: ``entry`` was registered before the instance was created, by a watcher
        that follows commits, so no finish can have been missed and the store need not be
        read first."""
        if timeout <= 0 and entry is None:
            return await asyncio.to_thread(self.status.get, instance_id)
        if entry is None:
            entry = self.register(instance_id)
        future = entry[0]
        try:
            if not (fresh and self.deferred) and not future.done():
                # registered first, then read: a finish published in between is not missed
                record = await asyncio.to_thread(self.status.get, instance_id)
                if record is None or record.status in FINISHED:
                    return record
            # the future is this wait's own, so it may be cancelled with it: no shield, and
            # timeout() rather than wait_for() (fewer futures and loop passes per wait)
            async with asyncio.timeout(timeout):
                found: StatusRecord | None = await future
            return found
        except TimeoutError:
            return await asyncio.to_thread(self.status.get, instance_id)
        finally:
            self.release(instance_id, entry)

    def close(self) -> None:
        self.stopped = True
        self.wake.set()

    def _run(self) -> None:
        last_round = 0.0
        while not self.stopped:
            self.wake.clear()
            with self.lock:
                changed, self.changed = self.changed, set()
                ids = list(self.waiting)
            if not ids:
                self.wake.wait(0.5)
                continue
            now = time.monotonic()
            if now - last_round >= self.poll:
                last_round, targets = now, ids
            else:
                targets = [i for i in ids if i in changed]
            for instance_id in targets:
                # an unknown id is answered by the wait's own first read; a wait
                # registered before its start commits must not end as unknown here
                record = self.status.get(instance_id)
                if record is not None and record.status in FINISHED:
                    self._settle(instance_id, record)
            self.wake.wait(max(0.0, last_round + self.poll - time.monotonic()))


def observe_publish(store: Any, listener: Callable[[Sequence[StatusRecord]], None]) -> bool:
    """Call ``listener`` with every batch of records ``store.publish`` commits, by
    wrapping that method on the store object (a status store has no change feed yet);
    False if the store cannot be wrapped."""
    publish = getattr(store, "publish", None)
    if not callable(publish):
        return False

    def publish_and_tell(records: Sequence[StatusRecord], health: Any) -> None:
        publish(records, health)
        with contextlib.suppress(Exception):  # a listener must never fail a commit
            listener(records)

    try:
        store.publish = publish_and_tell
    except (AttributeError, TypeError):
        return False
    return True
