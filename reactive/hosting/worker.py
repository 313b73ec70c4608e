"""The partition worker: one invocation of a partition over a batch of inbound records.

Written once for every host (see :mod:`reactive.hosting.seams` for the protocol). What it
guarantees, whatever the transport does (redeliver, reorder, interleave senders, retry a
batch with different contents) and however many invocations of one partition run at once:

- a message from another partition is applied once and in its sender's order: receivers
  keep, per sender, the last sequence number applied and hold messages that arrive early;
- a client request is applied once: its request id is remembered (within a bound);
- nothing leaves an invocation before its commit: outgoing messages, status changes, log
  lines, unhandled errors and dead letters are saved with the commit and delivered after
  it; a stale invocation (its fenced write lost) has delivered nothing;
- a commit writes what changed (a delta), and a new base now and then (compaction).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import pydantic_core

from reactive import errors
from reactive.core.messages import ActivityResult, Message, Tick
from reactive.core.partition import ActivityTask, Effects, Partition, apply_delta
from reactive.hosting import envelope
from reactive.hosting.activities import execute_activity
from reactive.hosting.seams import (
    GroupCommit,
    Inbound,
    Outgoing,
    PartitionHealth,
    Sender,
    SnapshotStore,
    StaleSnapshotError,
    StatusRecord,
    StatusStore,
)
from reactive.schema import Schema

FORMAT = 2
log = logging.getLogger("reactive.host")

Hook = Callable[[str], None]
"""Called at each step of an invocation ("processed", "saved", "sent", "published",
"delivered"); raising from it simulates a crash there (the fault matrix uses this)."""


class Output(Protocol):
    """Where a partition's log lines and unhandled errors go, once committed."""

    def log(self, partition: int, level: int, text: str) -> None: ...
    def unhandled(self, partition: int, text: str) -> None: ...


class LoggingOutput:
    """The default output: the ``reactive.app`` and ``reactive.host`` loggers."""

    def log(self, partition: int, level: int, text: str) -> None:
        logging.getLogger("reactive.app").log(level, text)

    def unhandled(self, partition: int, text: str) -> None:
        log.error("partition %d: unhandled error: %s", partition, text)


@runtime_checkable
class DeliversWithCommit(Protocol):
    """A store whose next append or compaction may land in one all-or-nothing
    transaction with the delivery that follows it, and mark it delivered there (the state
    folder inside a block). The method's name is the whole check: keep it unique."""

    def delivers_with_commit(self) -> bool:
        """Whether the next commit's delivery lands, and is marked, with the commit."""


@dataclass
class WorkerOptions:
    partitions: int
    epoch: str = "1"  # messages of another deployment epoch are dropped
    time_budget: float = 1.0  # seconds of activities and timers before an invocation commits
    remembered_requests: int = 100_000  # client request ids kept for de-duplication
    max_gap: int = 100_000  # how far ahead of its sender's order a message may be held
    compact_ratio: float = 1.0  # write a new base once the deltas outgrow the base this much
    compact_min_bytes: int = 256 * 1024  # ... and this many bytes (a small base compacts less)


@dataclass
class Outcome:
    """What an invocation did. Every record of the batch is covered by its commit (or was
    a duplicate), so ``acknowledged`` holds all their refs."""

    partition: int
    acknowledged: list[Hashable] = field(default_factory=list)
    processed: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    sent: int = 0
    activities: int = 0
    next_due: float | None = None
    more: bool = False  # stopped by the time budget with work left: invoke again soon
    committed: str | None = None  # the new version, None if nothing needed a commit
    commit_bytes: int = 0


@dataclass
class _Host:
    """The worker's own part of the snapshot."""

    seen: dict[str, int] = field(default_factory=dict)  # sender -> last sequence applied
    next_seq: dict[str, int] = field(default_factory=dict)  # dest -> last sequence sent
    outbox: list[list[Any]] = field(default_factory=list)  # [dest, dedup, data] of the commit
    statuses: list[list[Any]] = field(default_factory=list)  # status changes of the commit
    output: list[list[Any]] = field(default_factory=list)  # log / error / dead of the commit
    commits: int = 0
    request_count: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class _Warm:
    """A partition kept live between invocations in this process."""

    part: Partition
    host: _Host
    version: str | None
    requests: dict[str, int]  # request id -> arrival number (insertion ordered)
    held: dict[str, list[Any]]  # "sender:seq" -> [time, data]
    base_bytes: int = 0
    delta_bytes: int = 0
    delivered: bool = True
    tasks: list[ActivityTask] = field(default_factory=list)
    pending: Effects = field(default_factory=Effects)  # produced by a failing replay
    dirty_requests: set[str] = field(default_factory=set)
    dirty_held: set[str] = field(default_factory=set)


def _carries_output(effects: Effects) -> bool:
    """Whether ``effects`` hold something a commit must save (their activities are not
    kept in them: ``_absorb`` moves those to the partition's tasks)."""
    return bool(effects.sends or effects.errors or effects.logs)


def _encode(body: dict[str, Any]) -> bytes:
    # pydantic's JSON codec: several times faster than the json module (every commit)
    text = pydantic_core.to_json(body)
    return hashlib.sha256(text).hexdigest().encode() + b"\n" + text


def _decode(partition: int, data: bytes, what: str) -> dict[str, Any]:
    digest, _, text = data.partition(b"\n")
    if hashlib.sha256(text).hexdigest().encode() != digest:
        raise errors.CorruptSnapshotError(
            f"partition {partition}: a {what} fails its checksum; it was left as it is "
            "(restore it from a backup, or remove the partition's snapshot to reset it)"
        )
    body: dict[str, Any] = pydantic_core.from_json(text)
    if body.get("format") != FORMAT:
        raise errors.CorruptSnapshotError(
            f"partition {partition}: a {what} has unknown format {body.get('format')!r}"
        )
    return body


class PartitionWorker:
    """Runs invocations of one partition; keeps it warm between them."""

    def __init__(
        self,
        schema: Schema,
        index: int,
        options: WorkerOptions,
        store: SnapshotStore,
        sender: Sender,
        status: StatusStore,
        clock: Callable[[], float] = time.time,
        output: Output | None = None,
        recent: envelope.Recent | None = None,
    ) -> None:
        """``recent``: shared by the workers of one process whose messages reach each
        other there (the local host), so that a receiver takes a message instead of
        parsing what a partition of this process encoded."""
        if not 0 <= index < options.partitions:
            raise ValueError(f"partition {index} is not in 0..{options.partitions - 1}")
        self.schema = schema
        self.index = index
        self.options = options
        self.store = store
        self.sender = sender
        self.status = status
        self.clock = clock
        self.output = output or LoggingOutput()
        self.recent = recent
        self._warm: _Warm | None = None
        self._flush = store.commit_held if isinstance(store, GroupCommit) else None
        # seconds of activities that may run before held commits are flushed: a driver
        # that answers clients only after the commit sets it, so that short activities
        # share the one fsync of the requests that caused them
        self.hold_commits = 0.0
        # runs activities while commits are held, so that one outlasting the hold is
        # waited for only after the flush (a held commit keeps the store's write lock)
        self._holding: concurrent.futures.ThreadPoolExecutor | None = None
        self._with_commit = (store.delivers_with_commit
                             if isinstance(store, DeliversWithCommit) else None)

    # -- the invocation --------------------------------------------------------------------

    def handle(self, batch: Sequence[Inbound], hook: Hook | None = None) -> Outcome:
        """Process ``batch``, commit, deliver. Raises :class:`StaleSnapshotError` if another
        invocation committed first: then nothing was delivered and nothing may be
        acknowledged."""
        try:
            return self._handle(batch, hook)
        except BaseException:
            self._warm = None  # its memory may have run ahead of the store
            raise

    def next_due(self) -> float | None:
        """When the partition's earliest timer is due, as of this worker's last load."""
        return self._warm.part.next_due() if self._warm is not None else None

    def quiet(self, now: float) -> bool:
        """Whether an invocation with no input would do nothing at ``now``: the partition
        is warm and started, its last commit delivered, no effect or activity waiting and
        no timer due. A driver skips such a partition when its log is empty too."""
        warm = self._warm
        if warm is None or not warm.delivered or warm.tasks:
            return False
        if warm.version is None and not warm.part.started:
            return False  # its first invocation starts it (the startup instances)
        if _carries_output(warm.pending):
            return False
        due = warm.part.next_due()
        return due is None or due > now

    def partition(self) -> Partition:
        """The partition as this worker holds it (loaded from the store if not warm)."""
        return self._load().part

    def forget(self) -> None:
        """Drop the warm partition: the next invocation loads from the store."""
        self._warm = None

    def _handle(self, batch: Sequence[Inbound], hook: Hook | None) -> Outcome:
        warm = self._load()
        if not warm.delivered:
            self._deliver(warm, None)  # what the last commit saved but may not have delivered
        outcome = Outcome(self.index, [record.ref for record in batch])
        effects, warm.pending = warm.pending, Effects()
        dead: list[tuple[bytes, str]] = []
        changed = _carries_output(effects)
        part = warm.part
        if warm.version is None and not part.started:
            self._absorb(part.first_start(self.clock()), effects, warm)
            changed = True
        for record in batch:
            changed |= self._accept(warm, record, effects, dead, outcome)
        if hook is not None and batch:
            hook("processed")
        changed |= self._run_inline(warm, effects, outcome)
        outcome.next_due = part.next_due()
        outcome.more = bool(warm.tasks)
        if not (changed or dead):
            return outcome
        self._commit(warm, effects, dead, outcome)
        if hook is not None:
            hook("saved")
        self._deliver(warm, hook)
        outcome.dead_letters = len(dead)
        return outcome

    # -- accepting input -------------------------------------------------------------------

    def _accept(
        self,
        warm: _Warm,
        record: Inbound,
        effects: Effects,
        dead: list[tuple[bytes, str]],
        outcome: Outcome,
    ) -> bool:
        """Apply one record; True if the partition's state changed."""
        taken = self.recent.take(record.data) if self.recent is not None else None
        if taken is not None and taken[1].dest == self.index:
            env, msg = taken
        else:
            msg = None  # parsed and checked below (a misaddressed one is dead-lettered)
            try:
                env = envelope.parse(record.data, self.options.partitions)
            except envelope.PoisonError as exc:
                dead.append((record.data, f"partition {self.index}: {exc}"))
                return False
        if env.epoch != self.options.epoch:
            outcome.duplicates += 1
            return False  # traffic of another deployment
        if env.sender == envelope.CLIENT:
            if env.request in warm.requests:
                outcome.duplicates += 1
                return False
            msg = self._decode(env, record, dead)
            if msg is None:
                return False
            self._remember_request(warm, env.request)
            self._apply(warm, msg, record.time, effects, outcome)
            return True
        sender = str(env.sender)
        expected = warm.host.seen.get(sender, 0) + 1
        if env.seq < expected:
            outcome.duplicates += 1
            return False
        if env.seq > expected:
            key = f"{sender}:{env.seq}"
            if env.seq - expected > self.options.max_gap:
                dead.append((record.data, f"partition {self.index} from partition {sender}: "
                             f"sequence number "
                             f"{env.seq} is {env.seq - expected} ahead of the next expected"))
                return False
            if key in warm.held:
                outcome.duplicates += 1
                return False
            warm.held[key] = [record.time, record.data.decode("latin-1")]
            warm.dirty_held.add(key)
            return True
        self._apply_in_order(warm, sender, env, msg, record, effects, dead, outcome)
        return True

    def _apply_in_order(
        self,
        warm: _Warm,
        sender: str,
        env: envelope.Envelope,
        msg: Message | None,
        record: Inbound,
        effects: Effects,
        dead: list[tuple[bytes, str]],
        outcome: Outcome,
    ) -> None:
        """Apply the next message of ``sender`` (``msg``: already decoded, or None), then
        any held ones that now follow."""
        while True:
            warm.host.seen[sender] = env.seq
            if msg is None:
                msg = self._decode(env, record, dead)
            if msg is not None:
                self._apply(warm, msg, record.time, effects, outcome)
            key = f"{sender}:{env.seq + 1}"
            held = warm.held.pop(key, None)
            if held is None:
                return
            warm.dirty_held.add(key)
            record = Inbound(held[1].encode("latin-1"), held[0])
            env = envelope.parse(record.data, self.options.partitions)
            msg = None

    def _decode(
        self, env: envelope.Envelope, record: Inbound, dead: list[tuple[bytes, str]]
    ) -> Message | None:
        try:
            return envelope.decode_message(env, self.schema, self.index)
        except envelope.PoisonError as exc:
            source = "a client" if env.sender == envelope.CLIENT else f"partition {env.sender}"
            dead.append((record.data, f"partition {self.index} from {source}: {exc}"))
            return None

    def _remember_request(self, warm: _Warm, request: str) -> None:
        warm.host.request_count += 1
        warm.requests[request] = warm.host.request_count
        warm.dirty_requests.add(request)
        while len(warm.requests) > self.options.remembered_requests:
            oldest = next(iter(warm.requests))
            del warm.requests[oldest]
            warm.dirty_requests.add(oldest)

    def _apply(
        self, warm: _Warm, msg: Message, now: float, effects: Effects, outcome: Outcome
    ) -> None:
        self._absorb(warm.part.process(msg, now), effects, warm)
        outcome.processed += 1

    @staticmethod
    def _absorb(produced: Effects, effects: Effects, warm: _Warm) -> None:
        effects.sends.extend(produced.sends)
        effects.logs.extend(produced.logs)
        effects.errors.extend(produced.errors)
        warm.tasks.extend(produced.activities)

    def _run_inline(self, warm: _Warm, effects: Effects, outcome: Outcome) -> bool:
        """Run activities and due timers, feeding their results back in memory, until
        none is left or the time budget is spent; True if anything ran."""
        started = self.clock()
        # real time, not the host's clock (a virtual clock need not move while user code
        # runs): how long held commits may wait for activities
        hold_until = time.monotonic() + self.hold_commits
        ran = False
        flushed = self._flush is None
        while True:
            now = self.clock()
            if warm.tasks:
                task = warm.tasks.pop(0)
                if not flushed and time.monotonic() >= hold_until:
                    self._flush_held()  # commits held back for group commit wait for no activity
                    flushed = True
                if flushed:
                    result = self._execute(task)
                else:
                    result, flushed = self._execute_holding(task, hold_until)
                outcome.activities += 1
                self._absorb(warm.part.process(result, self.clock()), effects, warm)
            else:
                due = warm.part.next_due()
                if due is None or due > now:
                    return ran
                self._absorb(warm.part.process(Tick(self.index), now), effects, warm)
            ran = True
            if self.clock() - started >= self.options.time_budget:
                return ran

    def _execute(self, task: ActivityTask) -> ActivityResult:
        return execute_activity(
            self.schema, task, lambda level, text: self.output.log(self.index, level, text)
        )

    def _flush_held(self) -> None:
        assert self._flush is not None
        self._flush()

    def _execute_holding(
        self, task: ActivityTask, hold_until: float
    ) -> tuple[ActivityResult, bool]:
        """Run one activity while commits are held: if it outlasts the hold, flush them
        while it runs, so that a long activity never keeps the store locked; True if it
        flushed."""
        if self._holding is None:
            self._holding = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix=f"reactive-activity-p{self.index}"
            )
        running = self._holding.submit(self._execute, task)
        try:
            return running.result(timeout=max(0.0, hold_until - time.monotonic())), False
        except concurrent.futures.TimeoutError:
            self._flush_held()
            return running.result(), True

    # -- committing and delivering ----------------------------------------------------------

    def _commit(
        self, warm: _Warm, effects: Effects, dead: list[tuple[bytes, str]], outcome: Outcome
    ) -> None:
        host, part = warm.host, warm.part
        host.outbox = []
        for msg in effects.sends:
            dest = str(msg.dest)
            seq = host.next_seq.get(dest, 0) + 1
            host.next_seq[dest] = seq
            out = envelope.from_partition(self.options.epoch, self.index, seq, msg, self.schema,
                                          self.recent)
            host.outbox.append([out.dest, out.dedup, out.data.decode("latin-1")])
        host.statuses = [
            [iid, change["name"], change["status"], change.get("result"), change.get("error"),
             change.get("custom_status")]
            for iid, change in part.take_status_changes().items()
        ]
        host.output = [["log", level, text] for level, text in effects.logs]
        host.output += [["error", text] for text in effects.errors]
        # latin-1 maps every byte to one character: a dead record is kept exactly
        host.output += [["dead", reason, data.decode("latin-1")] for data, reason in dead]
        host.commits += 1
        delta = {
            "format": FORMAT,
            "partition": part.take_delta(),
            "host": self._stored_host(host),
            "requests": {r: warm.requests.get(r) for r in warm.dirty_requests},
            "held": {k: warm.held.get(k) for k in warm.dirty_held},
        }
        warm.dirty_requests.clear()
        warm.dirty_held.clear()
        data = _encode(delta)
        try:
            limit = max(warm.base_bytes * self.options.compact_ratio,
                        self.options.compact_min_bytes)
            if warm.version is not None and warm.delta_bytes + len(data) <= limit:
                version = self.store.append(self.index, data, warm.version)
                warm.delta_bytes += len(data)
            else:
                data = _encode(self._full(warm))
                version = self.store.compact(self.index, data, warm.version)
                warm.base_bytes, warm.delta_bytes = len(data), 0
        except StaleSnapshotError:
            log.info("partition %d: another invocation committed first; this one stops",
                     self.index)
            raise
        warm.version = version
        warm.delivered = False
        outcome.committed = version
        outcome.commit_bytes = len(data)
        outcome.sent = len(host.outbox)

    def _full(self, warm: _Warm) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "partition": warm.part.snapshot(),
            "host": self._stored_host(warm.host),
            "requests": dict(warm.requests),
            "held": dict(warm.held),
        }

    def _stored_host(self, host: _Host) -> dict[str, Any]:
        """The worker's part as the commit stores it. A commit whose delivery lands in
        its own transaction and is marked delivered there is never delivered again from
        the store, so its outbox, statuses and output are not stored (a quarter of a
        bank commit's bytes); they stay in memory for the delivery."""
        stored = host.to_json()
        if self._with_commit is not None and self._with_commit():
            stored.update(outbox=[], statuses=[], output=[])
        return stored

    def _deliver(self, warm: _Warm, hook: Hook | None) -> None:
        """Send the last commit's outbox, publish its statuses, emit its output."""
        host = warm.host
        if host.outbox:
            self.sender.send([Outgoing(d, data.encode("latin-1"), k) for d, k, data in host.outbox])
        if hook is not None:
            hook("sent")
        now = self.clock()
        records = [
            StatusRecord(iid, name, status, self.index, now, now, result, error, custom)
            for iid, name, status, result, error, custom in host.statuses
        ]
        health = PartitionHealth(
            self.index, warm.version or "", now, warm.part.next_due(),
            warm.base_bytes + warm.delta_bytes,
            sum(1 for entry in host.output if entry[0] == "dead"),
            len(warm.part.runs), number=host.commits, held=len(warm.held),
            held_since=min((t for t, _ in warm.held.values()), default=None),
        )
        self.status.publish(records, health)
        if hook is not None:
            hook("published")
        for entry in host.output:
            if entry[0] == "log":
                self.output.log(self.index, entry[1], entry[2])
            elif entry[0] == "error":
                self.output.unhandled(self.index, entry[1])
            else:
                log.warning("dead letter: %s", entry[1])
                self.store.dead_letter(self.index, entry[2].encode("latin-1"), entry[1])
        assert warm.version is not None
        self.store.mark_delivered(self.index, warm.version)
        warm.delivered = True
        if hook is not None:
            hook("delivered")

    # -- loading -----------------------------------------------------------------------------

    def _load(self) -> _Warm:
        if self._warm is not None:
            return self._warm
        stored = self.store.load(self.index)
        if stored.base is None:
            part = Partition(self.schema, self.index, self.options.partitions)
            warm = _Warm(part, _Host(), None, {}, {})
        else:
            body = _decode(self.index, stored.base, "base snapshot")
            snapshot, host, requests, held = (
                body["partition"], body["host"], body["requests"], body["held"]
            )
            for n, data in enumerate(stored.deltas):
                delta = _decode(self.index, data, f"delta #{n + 1}")
                apply_delta(snapshot, delta["partition"])
                host = delta["host"]
                for table, changes in ((requests, delta["requests"]), (held, delta["held"])):
                    for key, value in changes.items():
                        if value is None:
                            table.pop(key, None)
                        else:
                            table[key] = value
            self._check_shape(snapshot)
            part = Partition.restore(self.schema, snapshot)
            warm = _Warm(
                part, _Host(**host), stored.version,
                dict(sorted(requests.items(), key=lambda item: item[1])), held,
                len(stored.base), sum(len(d) for d in stored.deltas),
                delivered=stored.delivered == stored.version,
            )
            warm.tasks = part.pending_activities()  # at least once after a restore
            pending = part.take_effects()  # a failing replay must still reach its callers
            self._absorb(pending, warm.pending, warm)
        self._warm = warm
        return warm

    def _check_shape(self, snapshot: dict[str, Any]) -> None:
        count = snapshot["head"]["count"]
        if count != self.options.partitions:
            raise errors.ReactiveError(
                f"partition {self.index} was saved by a deployment of {count} partitions, "
                f"not {self.options.partitions}"
            )
