"""A durable local mode: input logs and snapshots in a folder.

Survives ``kill -9`` at any moment: log records are appended whole lines (a torn last line
is cut off when the log is reopened) and snapshots are replaced atomically (write a
temporary file, then rename). ``fsync=True`` also survives power loss, at a cost.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from reactive.hosting.seams import Record, StaleSnapshotError


class FolderTransport:
    """One append-only log file per partition: ``inbox-<p>.log``, a record per line."""

    def __init__(
        self, folder: Path, partitions: int, clock: Callable[[], float] = time.time,
        fsync: bool = False,
    ) -> None:
        self.folder = folder
        self.clock = clock
        self.fsync = fsync
        folder.mkdir(parents=True, exist_ok=True)
        self._offsets: list[list[int]] = []
        self._files: list[BinaryIO] = []
        for p in range(partitions):
            path = folder / f"inbox-{p}.log"
            path.touch()
            offsets, end = self._scan(path)
            f = path.open("r+b")
            f.truncate(end)  # drop a record torn by a crash mid-write
            self._offsets.append(offsets)
            self._files.append(f)

    @staticmethod
    def _scan(path: Path) -> tuple[list[int], int]:
        offsets, pos = [], 0
        with path.open("rb") as f:
            for line in f:
                if not line.endswith(b"\n"):
                    break
                offsets.append(pos)
                pos += len(line)
        offsets.append(pos)  # where the next record starts
        return offsets, pos

    def append(self, partition: int, payloads: Sequence[bytes]) -> None:
        f, offsets = self._files[partition], self._offsets[partition]
        stamp = repr(self.clock()).encode()
        chunk = b"".join(stamp + b"\t" + data + b"\n" for data in payloads)
        f.seek(offsets[-1])
        f.write(chunk)
        f.flush()
        if self.fsync:
            os.fsync(f.fileno())
        pos = offsets.pop()
        for data in payloads:
            offsets.append(pos)
            pos += len(stamp) + len(data) + 2
        offsets.append(pos)

    def read(self, partition: int, after: int, limit: int) -> list[Record]:
        offsets = self._offsets[partition]
        count = len(offsets) - 1
        if after >= count:
            return []
        last = min(count, after + limit)
        f = self._files[partition]
        f.seek(offsets[after])
        blob = f.read(offsets[last] - offsets[after])
        records = []
        for n, line in enumerate(blob.splitlines(), start=after + 1):
            stamp, _, data = line.partition(b"\t")
            records.append(Record(n, float(stamp), data))
        return records

    def acknowledge(self, partition: int, upto: int) -> None:
        """Logs are kept: the snapshot's position is the checkpoint."""

    def close(self) -> None:
        for f in self._files:
            f.close()


class FolderStore:
    """Snapshots as ``snapshot-<p>.bin`` (first line: the version), replaced atomically."""

    def __init__(self, folder: Path, fsync: bool = False) -> None:
        self.folder = folder
        self.fsync = fsync
        folder.mkdir(parents=True, exist_ok=True)

    def _path(self, partition: int) -> Path:
        return self.folder / f"snapshot-{partition}.bin"

    def load(self, partition: int) -> tuple[bytes | None, str | None]:
        try:
            raw = self._path(partition).read_bytes()
        except FileNotFoundError:
            return None, None
        version, _, data = raw.partition(b"\n")
        return data, version.decode()

    def save(self, partition: int, data: bytes, expected_version: str | None) -> str:
        current = self.load(partition)[1]
        if current != expected_version:
            raise StaleSnapshotError(
                f"partition {partition}: snapshot version {expected_version} is stale "
                f"(the store has {current})"
            )
        version = str(int(current) + 1 if current else 1)
        path = self._path(partition)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            f.write(version.encode() + b"\n" + data)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
        return version

    def dead_letter(self, partition: int, data: bytes, reason: str) -> None:
        entry = {"partition": partition, "reason": reason, "data": data.decode("utf-8", "replace")}
        with (self.folder / "dead-letters.jsonl").open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
