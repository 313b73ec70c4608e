"""In-memory transport and snapshot store: for tests and the fault matrix."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from reactive.hosting.seams import Record, StaleSnapshotError


class MemoryTransport:
    """Input logs in lists. ``clock`` stamps each record with its arrival time."""

    def __init__(self, partitions: int, clock: Callable[[], float] = time.time) -> None:
        self._logs: list[list[Record]] = [[] for _ in range(partitions)]
        self._clock = clock
        self._lock = threading.Lock()
        self.acknowledged = [0] * partitions

    def append(self, partition: int, payloads: Sequence[bytes]) -> None:
        with self._lock:
            log = self._logs[partition]
            for data in payloads:
                log.append(Record(len(log) + 1, self._clock(), data))

    def read(self, partition: int, after: int, limit: int) -> list[Record]:
        with self._lock:
            return self._logs[partition][after : after + limit]

    def acknowledge(self, partition: int, upto: int) -> None:
        self.acknowledged[partition] = max(self.acknowledged[partition], upto)

    def size(self, partition: int) -> int:
        return len(self._logs[partition])


class MemoryStore:
    """Snapshots in a dict, versions as counters."""

    def __init__(self) -> None:
        self._snapshots: dict[int, tuple[bytes, str]] = {}
        self.dead_letters: list[tuple[int, bytes, str]] = []
        self._lock = threading.Lock()

    def load(self, partition: int) -> tuple[bytes | None, str | None]:
        with self._lock:
            entry = self._snapshots.get(partition)
        return entry if entry is not None else (None, None)

    def save(self, partition: int, data: bytes, expected_version: str | None) -> str:
        with self._lock:
            current = self._snapshots.get(partition)
            if (current[1] if current else None) != expected_version:
                raise StaleSnapshotError(
                    f"partition {partition}: snapshot version {expected_version} is stale"
                )
            version = str(int(current[1]) + 1 if current else 1)
            self._snapshots[partition] = (data, version)
            return version

    def dead_letter(self, partition: int, data: bytes, reason: str) -> None:
        self.dead_letters.append((partition, data, reason))
