"""The serverless host loop, written once for every host.

One invocation of a partition:

1. load its snapshot (the partition, its input position, the highest sequence number seen
   from each sender, the last sequence number sent to each destination);
2. read and process the input after that position, in log order, dropping duplicates;
3. send every outgoing message, stamped (sender, sequence number);
4. run the activities it asked for, appending their results to its own input;
5. write the snapshot, fenced by the version it loaded, so that a stale invocation loses;
6. acknowledge the input the snapshot covers; only now emit log lines, unhandled errors
   and dead letters. They are saved in the snapshot's outbox, numbered, so that a crash
   right after the save loses none of them: the next invocation emits what the last one
   did not get to (within a process exactly once; across a process crash at that moment,
   at least once).

A crash anywhere re-runs the same input from the last snapshot; determinism regenerates
the same messages with the same sequence numbers, and receivers drop them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from reactive import errors
from reactive.app import Schema
from reactive.core.messages import Message, Tick, from_wire, to_wire
from reactive.core.partition import ActivityTask, Effects, Partition
from reactive.hosting.activities import execute_activity
from reactive.hosting.seams import LegacySnapshotStore as SnapshotStore
from reactive.hosting.seams import Record, StaleSnapshotError, Transport

CLIENT = -1  # sender id of client requests (not de-duplicated: starts are idempotent)
SELF = -2  # sender id of a partition's own timer ticks and activity results
SNAPSHOT_FORMAT = 1

log = logging.getLogger("reactive.host")

Hook = Callable[[str], None]
"""Called at each step of an invocation ("processed", "sent-one", "sent", "saved");
raising from it simulates a crash at that step (the fault matrix uses this)."""


def envelope(epoch: str, sender: int, seq: int, wire: dict[str, Any]) -> bytes:
    """The bytes of one message on a transport."""
    body = {"e": epoch, "s": sender, "q": seq, "m": wire}
    return json.dumps(body, separators=(",", ":")).encode()


def encode_snapshot(body: dict[str, Any]) -> bytes:
    text = json.dumps(body, separators=(",", ":")).encode()
    return hashlib.sha256(text).hexdigest().encode() + b"\n" + text


def decode_snapshot(partition: int, data: bytes) -> dict[str, Any]:
    digest, _, text = data.partition(b"\n")
    if hashlib.sha256(text).hexdigest().encode() != digest:
        raise errors.CorruptSnapshotError(
            f"the snapshot of partition {partition} fails its checksum; it was left as it is "
            "(restore it from a backup or remove it to reset the partition)"
        )
    body: dict[str, Any] = json.loads(text)
    if body.get("format") != SNAPSHOT_FORMAT:
        raise errors.CorruptSnapshotError(
            f"the snapshot of partition {partition} has unknown format {body.get('format')!r}"
        )
    return body


@dataclass
class LoopOptions:
    partitions: int
    epoch: str = "1"  # messages from another deployment epoch are ignored
    batch_size: int = 256  # records read at a time
    time_budget: float | None = None  # seconds an invocation may run before it saves and stops


@dataclass
class Checkpoint:
    """What the host keeps next to the partition's own snapshot."""

    position: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    next_seq: dict[str, int] = field(default_factory=dict)
    outbox: list[list[Any]] = field(default_factory=list)  # [n, kind, ...] not yet emitted
    out_seq: int = 0


@dataclass
class InvocationReport:
    partition: int
    processed: int = 0
    sent: int = 0
    activities: int = 0
    dead_letters: int = 0
    next_due: float | None = None
    backlog: bool = False  # stopped by the time budget with input left


@dataclass
class _Loaded:
    version: str | None
    partition: Partition
    checkpoint: Checkpoint
    restored: bool = False  # just restored from the store: rerun its pending activities


class HostLoop:
    """Runs invocations of any partition against a transport and a snapshot store."""

    def __init__(
        self,
        schema: Schema,
        transport: Transport,
        store: SnapshotStore,
        options: LoopOptions,
        clock: Callable[[], float] = time.time,
        on_log: Callable[[int, int, str], None] | None = None,
        on_unhandled: Callable[[str], None] | None = None,
        emitted: dict[int, int] | None = None,
    ) -> None:
        """``emitted`` records, per partition, the last outbox entry the log sink received;
        loops that feed one sink share it, so no entry reaches the sink twice."""
        self.schema = schema
        self.transport = transport
        self.store = store
        self.options = options
        self.clock = clock
        self.on_log = on_log
        self.on_unhandled = on_unhandled
        self._warm: dict[int, _Loaded] = {}  # partitions kept live between invocations
        self.emitted: dict[int, int] = {} if emitted is None else emitted

    # -- client-side helpers -----------------------------------------------------------

    def post(self, msg: Message) -> None:
        """Append a client request to its partition's input."""
        self.transport.append(
            msg.dest, [envelope(self.options.epoch, CLIENT, 0, to_wire(msg, self.schema))]
        )

    def partition(self, index: int) -> Partition:
        """The partition as of its last saved snapshot (for status queries)."""
        return self._load(index).partition

    def has_input(self, index: int) -> bool:
        """Whether the partition's input holds records after its last saved position."""
        position = self._load(index).checkpoint.position
        return bool(self.transport.read(index, position, 1))

    def forget(self, index: int | None = None) -> None:
        """Drop warm partitions: the next invocation restores from the store."""
        if index is None:
            self._warm.clear()
        else:
            self._warm.pop(index, None)

    # -- one invocation ----------------------------------------------------------------

    def invoke(self, index: int, hook: Hook | None = None) -> InvocationReport:
        try:
            return self._invoke(index, hook)
        except BaseException:
            self._warm.pop(index, None)  # its memory ran ahead of the store
            raise

    def _invoke(self, index: int, hook: Hook | None) -> InvocationReport:
        loaded = self._load(index)
        self._warm.pop(index, None)
        part, checkpoint = loaded.partition, loaded.checkpoint
        self._flush_outbox(index, checkpoint)  # what a crash after the last save withheld
        report = InvocationReport(index)
        effects = Effects()
        tasks: list[ActivityTask] = []
        dead: list[tuple[bytes, str]] = []
        first = loaded.version is None and not part.started
        if first:
            self._absorb(part.first_start(self.clock()), effects, tasks)
        elif loaded.restored:
            tasks.extend(part.pending_activities())  # at least once after a restore
        started = self.clock()
        while True:
            records = self.transport.read(index, checkpoint.position, self.options.batch_size)
            for record in records:
                checkpoint.position = record.position
                msg = self._accept(index, record, checkpoint, dead)
                if msg is not None:
                    self._absorb(part.process(msg, record.time), effects, tasks)
                    report.processed += 1
            if hook is not None and records:
                hook("processed")
            report.sent += self._send(index, checkpoint, effects, hook)
            due = part.next_due()
            if due is not None and due <= self.clock():
                self._append_self(index, Tick(index))
                continue
            if tasks:
                report.activities += len(tasks)
                self._run_activities(index, tasks)
                continue
            if not records:
                break
            budget = self.options.time_budget
            if budget is not None and self.clock() - started >= budget:
                report.backlog = True
                break
        report.next_due = part.next_due()
        if not (first or report.processed or dead):
            self._warm[index] = loaded  # nothing changed: no snapshot to write
            return report
        self._queue_outbox(checkpoint, effects, dead)
        version = self._save(index, loaded.version, part, checkpoint)
        if hook is not None:
            hook("saved")
        self.transport.acknowledge(index, checkpoint.position)
        self._warm[index] = _Loaded(version, part, checkpoint)
        self._flush_outbox(index, checkpoint)
        report.dead_letters = len(dead)
        return report

    # -- steps ---------------------------------------------------------------------------

    def _load(self, index: int) -> _Loaded:
        warm = self._warm.get(index)
        if warm is not None:
            return warm
        data, version = self.store.load(index)
        if data is None:
            part = Partition(self.schema, index, self.options.partitions)
            loaded = _Loaded(None, part, Checkpoint())
        else:
            body = decode_snapshot(index, data)
            part = Partition.restore(self.schema, body["partition"])
            checkpoint = Checkpoint(
                body["position"], body["seen"], body["next_seq"], body["outbox"], body["out_seq"]
            )
            loaded = _Loaded(version, part, checkpoint, restored=True)
            # a faithful replay has no effects; a failing one must still reach its callers
            pending = part.take_effects()
            if pending.sends:
                self._send(index, checkpoint, pending, None)
        self._warm[index] = loaded
        return loaded

    def _accept(
        self, index: int, record: Record, checkpoint: Checkpoint, dead: list[tuple[bytes, str]]
    ) -> Message | None:
        """The message in a record, or None if it is a duplicate, from another epoch, or
        bad (then it goes to the dead letters with the reason)."""
        try:
            env = json.loads(record.data)
            epoch, sender, seq, wire = env["e"], env["s"], env["q"], env["m"]
        except (ValueError, KeyError, TypeError):
            dead.append((record.data, f"partition {index} position {record.position}: "
                         "not a message envelope"))
            return None
        if epoch != self.options.epoch:
            return None  # traffic of a previous deployment
        if seq:
            key = str(sender)
            if seq <= checkpoint.seen.get(key, 0):
                return None
            checkpoint.seen[key] = seq
        try:
            msg = from_wire(wire, self.schema)
        except (errors.ReactiveError, ValidationError, KeyError, TypeError, IndexError) as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            dead.append((record.data, f"partition {index} position {record.position} from "
                         f"sender {sender}: {reason}"))
            return None
        if msg.dest != index:
            dead.append((record.data, f"partition {index} position {record.position}: "
                         f"addressed to partition {msg.dest}"))
            return None
        return msg

    def _absorb(self, produced: Effects, effects: Effects, tasks: list[ActivityTask]) -> None:
        effects.sends.extend(produced.sends)
        effects.logs.extend(produced.logs)
        effects.errors.extend(produced.errors)
        tasks.extend(produced.activities)

    def _send(
        self, index: int, checkpoint: Checkpoint, effects: Effects, hook: Hook | None
    ) -> int:
        """Send the pending messages, grouped per destination in order, each stamped with
        the next sequence number of its (sender, destination) pair."""
        if not effects.sends:
            return 0
        batches: dict[int, list[bytes]] = {}
        for msg in effects.sends:
            key = str(msg.dest)
            seq = checkpoint.next_seq.get(key, 0) + 1
            checkpoint.next_seq[key] = seq
            wire = to_wire(msg, self.schema)
            batches.setdefault(msg.dest, []).append(envelope(self.options.epoch, index, seq, wire))
        count = len(effects.sends)
        effects.sends.clear()
        for n, (dest, batch) in enumerate(sorted(batches.items())):
            if hook is not None and n == 1:
                hook("sent-one")
            self.transport.append(dest, batch)
        if hook is not None:
            hook("sent")
        return count

    def _append_self(self, index: int, msg: Message) -> None:
        self.transport.append(
            index, [envelope(self.options.epoch, SELF, 0, to_wire(msg, self.schema))]
        )

    def _run_activities(self, index: int, tasks: list[ActivityTask]) -> None:
        """Run activities inline and append their results to the partition's own input:
        results are recorded when processed, once; a crash before the snapshot runs them
        again (at least once)."""
        pending, tasks[:] = list(tasks), []
        for task in pending:
            result = execute_activity(
                self.schema, task, lambda level, text: self._log(index, level, text)
            )
            self._append_self(index, result)

    def _save(
        self, index: int, version: str | None, part: Partition, checkpoint: Checkpoint
    ) -> str:
        body = {
            "format": SNAPSHOT_FORMAT,
            "epoch": self.options.epoch,
            "position": checkpoint.position,
            "seen": checkpoint.seen,
            "next_seq": checkpoint.next_seq,
            "outbox": checkpoint.outbox,
            "out_seq": checkpoint.out_seq,
            "partition": part.snapshot(),
        }
        try:
            return self.store.save(index, encode_snapshot(body), version)
        except StaleSnapshotError:
            log.info("partition %d: a newer invocation saved first; this one stops", index)
            raise

    def _queue_outbox(
        self, checkpoint: Checkpoint, effects: Effects, dead: list[tuple[bytes, str]]
    ) -> None:
        entries: list[list[Any]] = [["log", level, text] for level, text in effects.logs]
        entries += [["error", text] for text in effects.errors]
        # latin-1 maps every byte to one character: the record is kept exactly
        entries += [["dead", reason, data.decode("latin-1")] for data, reason in dead]
        for entry in entries:
            checkpoint.out_seq += 1
            checkpoint.outbox.append([checkpoint.out_seq, *entry])

    def _flush_outbox(self, index: int, checkpoint: Checkpoint) -> None:
        """Emit the saved outbox entries not emitted yet, and forget emitted ones."""
        done = self.emitted.get(index, 0)
        for n, kind, *rest in checkpoint.outbox:
            if n <= done:
                continue
            if kind == "log":
                self._log(index, rest[0], rest[1])
            elif kind == "error":
                log.error("unhandled error: %s", rest[0])
                if self.on_unhandled is not None:
                    self.on_unhandled(rest[0])
            else:
                log.warning("dead letter: %s", rest[0])
                self.store.dead_letter(index, rest[1].encode("latin-1"), rest[0])
            done = n
        self.emitted[index] = done
        checkpoint.outbox = []

    def _log(self, index: int, level: int, text: str) -> None:
        if self.on_log is not None:
            self.on_log(index, level, text)
