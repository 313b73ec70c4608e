"""The seams in memory: for tests, the emulator-shaped local host and the broker doubles."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Hashable, Sequence

from reactive.hosting.seams import (
    Inbound,
    Outgoing,
    PartitionHealth,
    StaleSnapshotError,
    StatusQuery,
    StatusRecord,
    Stored,
)

DONE = ("completed", "failed", "terminated")


class MemoryLogs:
    """One input log per partition, acknowledged record by record. Also a ``Sender``."""

    def __init__(self, partitions: int, clock: Callable[[], float] = time.time) -> None:
        self._logs: list[dict[Hashable, Inbound]] = [{} for _ in range(partitions)]
        self._clock = clock
        self._refs = itertools.count(1)
        self._lock = threading.Lock()
        self.sent = 0

    def send(self, messages: Sequence[Outgoing]) -> None:
        with self._lock:
            now = self._clock()
            for out in messages:
                ref = next(self._refs)
                self._logs[out.dest][ref] = Inbound(out.data, now, ref)
            self.sent += len(messages)

    def append_raw(self, partition: int, data: bytes) -> None:
        """Put any bytes into a partition's log (poison tests)."""
        with self._lock:
            ref = next(self._refs)
            self._logs[partition][ref] = Inbound(data, self._clock(), ref)

    def read(self, partition: int, limit: int) -> list[Inbound]:
        with self._lock:
            return list(itertools.islice(self._logs[partition].values(), limit))

    def acknowledge(self, partition: int, refs: Sequence[Hashable]) -> None:
        with self._lock:
            log = self._logs[partition]
            for ref in refs:
                log.pop(ref, None)

    def backlog(self, partition: int) -> int:
        return len(self._logs[partition])


class MemoryStore:
    """Base snapshots and deltas in dicts; versions ``"<base>.<deltas>"``."""

    def __init__(self) -> None:
        self._stored: dict[int, Stored] = {}
        self._bases: dict[int, int] = {}
        self.dead_letters: list[tuple[int, bytes, str]] = []
        self.bytes_written = 0
        self._lock = threading.Lock()

    def load(self, partition: int) -> Stored:
        with self._lock:
            return self._stored.get(partition, Stored())

    def _check(self, partition: int, expected: str | None) -> Stored:
        current = self._stored.get(partition, Stored())
        if current.version != expected:
            raise StaleSnapshotError(
                f"partition {partition}: version {expected} is stale (the store has "
                f"{current.version})"
            )
        return current

    def append(self, partition: int, delta: bytes, expected: str | None) -> str:
        with self._lock:
            current = self._check(partition, expected)
            if current.base is None:
                raise StaleSnapshotError(f"partition {partition}: no base to append to")
            deltas = (*current.deltas, delta)
            version = f"{self._bases[partition]}.{len(deltas)}"
            self._stored[partition] = dataclasses.replace(
                current, deltas=deltas, version=version
            )
            self.bytes_written += len(delta)
            return version

    def compact(self, partition: int, base: bytes, expected: str | None) -> str:
        with self._lock:
            current = self._check(partition, expected)
            generation = self._bases.get(partition, 0) + 1
            self._bases[partition] = generation
            version = f"{generation}.0"
            self._stored[partition] = Stored(base, (), version, current.delivered)
            self.bytes_written += len(base)
            return version

    def mark_delivered(self, partition: int, version: str) -> None:
        with self._lock:
            current = self._stored.get(partition)
            if current is not None and current.version == version:
                self._stored[partition] = dataclasses.replace(current, delivered=version)

    def dead_letter(self, partition: int, data: bytes, reason: str) -> None:
        with self._lock:
            self.dead_letters.append((partition, data, reason))


class MemoryStatusStore:
    """Instance statuses in a dict."""

    def __init__(self) -> None:
        self._records: dict[str, StatusRecord] = {}
        self._health: dict[int, PartitionHealth] = {}
        self._lock = threading.Lock()
        self.publishes = 0

    def publish(self, records: Sequence[StatusRecord], health: PartitionHealth) -> None:
        with self._lock:
            self.publishes += 1
            for record in records:
                old = self._records.get(record.instance_id)
                if old is not None:
                    if old.updated > record.updated and old.status != "pending":
                        continue
                    record = dataclasses.replace(record, created=old.created)
                self._records[record.instance_id] = record
            self._health[health.partition] = health

    def put_pending(self, record: StatusRecord) -> bool:
        with self._lock:
            if record.instance_id in self._records:
                return False
            self._records[record.instance_id] = record
            return True

    def get(self, instance_id: str) -> StatusRecord | None:
        with self._lock:
            return self._records.get(instance_id)

    def query(self, query: StatusQuery) -> list[StatusRecord]:
        with self._lock:
            records = sorted(self._records.values(), key=lambda r: r.instance_id)
        return [r for r in records if matches(r, query)][: query.limit]

    def health(self) -> list[PartitionHealth]:
        with self._lock:
            return [self._health[p] for p in sorted(self._health)]

    def purge(self, instance_id: str) -> bool:
        with self._lock:
            record = self._records.get(instance_id)
            if record is None or record.status not in DONE:
                return False
            del self._records[instance_id]
            return True


def matches(record: StatusRecord, query: StatusQuery) -> bool:
    """Whether a record passes a query's filters (for stores that filter in Python)."""
    return (
        (query.status is None or record.status == query.status)
        and (query.name is None or record.name == query.name)
        and (query.since is None or record.created >= query.since)
        and (query.until is None or record.created < query.until)
        and (query.after is None or record.instance_id > query.after)
    )
