"""The S3 snapshot store: a partition is a run of numbered objects, fenced by creation.

Under ``snapshots/p{N}/`` a partition's commits are objects named by their number
(``000000000007``), each created with ``If-None-Match: *``: of two invocations that loaded
version 6, exactly one creates object 7, and the other gets 412 and is stale. An object is
a delta or, written by :meth:`S3SnapshotStore.compact`, a base that replaces everything
before it; ``000000000007.d`` marks commit 7's outbox delivered. ``snapshot-heads/p{N}``
names the latest base, so a load lists from there (one LIST plus parallel GETs).

Only a partition's *last* commit may be undelivered (an invocation delivers the last
commit before it makes a new one, so commit 8 existing proves 7 was delivered), and a
load resends that commit's outbox unless its mark is there. Resending is harmless when
the commit emitted nothing else: receivers drop the duplicates and its status segment
is created once. So the mark of a commit that this process made and that emitted no log
line, unhandled error or dead letter is written later, by a background thread once the
partition has been quiet for ``mark_delay`` seconds, and not at all if the partition
commits again first; every other mark (output that must not be emitted twice, or a
resend after a load) is written at once.

Objects before the previous base are deleted after a compaction (at most every
``GC_GRACE / 2`` seconds per partition), but only once they are older than
:data:`GC_GRACE` seconds, and a writer whose version is older than
:data:`FENCE_TRUST` seconds checks the head after creating its object: a long-frozen
invocation that creates a number which was deleted would otherwise find it free.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydantic_core
from botocore.exceptions import ClientError

from hosts.aws.config import AwsConfig
from reactive.hosting import CorruptSnapshotError
from reactive.hosting.seams import StaleSnapshotError, Stored

GC_GRACE = 900.0  # seconds an object outlives its replacement by a base
FENCE_TRUST = 300.0  # seconds a version stays trusted without checking the head
MARK_DELAY = 0.5  # seconds a partition stays quiet before a deferred mark is written
KEY_WIDTH = 12
_SLOT = re.compile(rf"^(\d{{{KEY_WIDTH}}})(\.d)?$")
CONFLICT_CODES = {"PreconditionFailed", "ConditionalRequestConflict", "412", "409"}

log = logging.getLogger("reactive.aws")


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


@dataclass(slots=True)
class _Known:
    version: int  # the last commit this process saw or made
    since: float  # monotonic time just before the request that saw or made it
    base: int  # the base that version builds on (0: none)
    quiet: bool = False  # this process wrote that version and its delivery emits only
    # sends and statuses, which a resend repeats harmlessly


def _emits_only_sends(data: bytes) -> bool:
    """Whether a commit written by the worker emits nothing but its outbox and status
    changes (no log line, unhandled error or dead letter); False for anything else."""
    try:
        body = pydantic_core.from_json(data.partition(b"\n")[2])
        return isinstance(body, dict) and body["host"]["output"] == []
    except (ValueError, KeyError, TypeError):
        return False


class S3SnapshotStore:
    """Implements :class:`reactive.hosting.seams.SnapshotStore` on one S3 bucket."""

    def __init__(
        self,
        config: AwsConfig,
        pool: ThreadPoolExecutor | None = None,
        gc_grace: float = GC_GRACE,
        fence_trust: float = FENCE_TRUST,
        mark_delay: float = MARK_DELAY,
    ) -> None:
        self.config = config
        self.s3 = config.s3
        self.bucket = config.bucket
        self.gc_grace = gc_grace
        self.fence_trust = fence_trust
        self._pool = pool or ThreadPoolExecutor(16, thread_name_prefix="s3-store")
        self._known: dict[int, _Known] = {}
        self._collected: dict[int, float] = {}  # partition -> monotonic time of the last GC
        self.commits = 0  # commits made (appends and compactions, for measurements)
        self.mark_delay = mark_delay
        self._marks_lock = threading.Condition()
        self._deferred: dict[int, tuple[int, float]] = {}  # partition -> (commit, write at)
        self._marks_thread: threading.Thread | None = None

    # -- keys ----------------------------------------------------------------------------

    @staticmethod
    def prefix(partition: int) -> str:
        return f"snapshots/p{partition}/"

    def key(self, partition: int, number: int) -> str:
        return f"{self.prefix(partition)}{number:0{KEY_WIDTH}d}"

    @staticmethod
    def head_key(partition: int) -> str:
        return f"snapshot-heads/p{partition}"

    # -- reading -------------------------------------------------------------------------

    def _head(self, partition: int) -> int:
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=self.head_key(partition))["Body"]
        except self.s3.exceptions.NoSuchKey:
            return 0
        return int(body.read() or b"0")

    def _list(self, partition: int, start: int) -> tuple[list[int], list[int]]:
        """Commit numbers from ``start`` on, and delivered marks, both ascending."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix(partition)}
        if start > 1:
            kwargs["StartAfter"] = self.key(partition, start - 1) + "~"
        slots: list[int] = []
        marks: list[int] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(**kwargs):
            for item in page.get("Contents", []):
                match = _SLOT.match(item["Key"][len(self.prefix(partition)):])
                if match:
                    (marks if match.group(2) else slots).append(int(match.group(1)))
        return slots, marks

    def _get(self, partition: int, number: int) -> tuple[str, bytes]:
        response = self.s3.get_object(Bucket=self.bucket, Key=self.key(partition, number))
        kind = response.get("Metadata", {}).get("kind", "delta")
        return kind, response["Body"].read()

    def load(self, partition: int) -> Stored:
        since = time.monotonic()
        head = self._head(partition)
        slots, marks = self._list(partition, head)
        if not slots:
            if head:
                raise CorruptSnapshotError(
                    f"partition {partition}: the head names base {head} but no commit is stored"
                )
            self._known[partition] = _Known(0, since, 0)
            return Stored()
        objects = list(self._pool.map(lambda n: self._get(partition, n), slots))
        base_at = max((i for i, (kind, _) in enumerate(objects) if kind == "base"), default=-1)
        if base_at < 0 and slots[0] != 1:
            raise CorruptSnapshotError(
                f"partition {partition}: commits start at {slots[0]} without a base"
            )
        kept = slots[max(base_at, 0):]
        if kept != list(range(kept[0], kept[0] + len(kept))):
            raise CorruptSnapshotError(f"partition {partition}: commits {kept} have a gap")
        base = objects[base_at][1] if base_at >= 0 else None
        deltas = tuple(data for _, data in objects[base_at + 1:])
        version = slots[-1]
        delivered = max((m for m in marks if m <= version), default=None)
        self._known[partition] = _Known(version, since, slots[base_at] if base_at >= 0 else 0)
        return Stored(
            base=base,
            deltas=deltas,
            version=str(version),
            delivered=None if delivered is None else str(delivered),
        )

    # -- writing -------------------------------------------------------------------------

    def _create(self, partition: int, expected: str | None, data: bytes, kind: str) -> int:
        """Create the commit after ``expected``; StaleSnapshotError if it exists."""
        number = int(expected or 0) + 1
        known = self._known.get(partition)
        self.commits += 1
        since = time.monotonic()
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=self.key(partition, number),
                Body=data,
                IfNoneMatch="*",
                Metadata={"kind": kind},
            )
        except ClientError as error:
            if _error_code(error) in CONFLICT_CODES:
                self._known.pop(partition, None)
                raise StaleSnapshotError(
                    f"partition {partition}: commit {number} exists; version {expected} is stale"
                ) from None
            raise
        trusted = (
            known is not None
            and known.version == number - 1
            and since - known.since < self.fence_trust
        )
        if not trusted and self._head(partition) > number:
            # the number was free because a compaction long ago deleted it: stale
            self._delete([self.key(partition, number)])
            self._known.pop(partition, None)
            raise StaleSnapshotError(
                f"partition {partition}: version {expected} predates the current base"
            )
        base = number if kind == "base" else (known.base if known else 0)
        self._known[partition] = _Known(number, since, base, _emits_only_sends(data))
        return number

    def append(self, partition: int, delta: bytes, expected: str | None) -> str:
        return str(self._create(partition, expected, delta, "delta"))

    def compact(self, partition: int, base: bytes, expected: str | None) -> str:
        previous = self._known.get(partition)
        number = self._create(partition, expected, base, "base")
        try:
            self.s3.put_object(
                Bucket=self.bucket, Key=self.head_key(partition), Body=str(number).encode()
            )
            last = self._collected.get(partition)
            due = last is None or time.monotonic() - last >= self.gc_grace / 2
            if previous is not None and previous.base > 0 and due:
                self._collected[partition] = time.monotonic()
                self._collect(partition, previous.base)
        except Exception:  # the commit stands; the head and old objects can wait
            log.exception("partition %d: tidying after compaction %d failed", partition, number)
        return str(number)

    def _collect(self, partition: int, below: int) -> None:
        """Delete commits and marks numbered below ``below`` older than the grace period."""
        now = datetime.now(UTC)
        stale: list[str] = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix(partition)
        )
        for page in pages:
            for item in page.get("Contents", []):
                match = _SLOT.match(item["Key"][len(self.prefix(partition)):])
                if match is None or int(match.group(1)) >= below:
                    continue
                if (now - item["LastModified"]).total_seconds() > self.gc_grace:
                    stale.append(item["Key"])
        self._delete(stale)

    def _delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            chunk = keys[start:start + 1000]
            self.s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
            )

    def mark_delivered(self, partition: int, version: str) -> None:
        number = int(version)
        known = self._known.get(partition)
        if known is not None and known.version == number and known.quiet:
            with self._marks_lock:
                # trailing: a busy partition's mark waits until it pauses, and its next
                # commit makes it needless meanwhile
                self._deferred[partition] = (number, time.monotonic() + self.mark_delay)
                if self._marks_thread is None:
                    self._marks_thread = threading.Thread(
                        target=self._write_marks, name="s3-store-marks", daemon=True)
                    self._marks_thread.start()
                self._marks_lock.notify()
            return
        self._put_mark(partition, number)

    def _put_mark(self, partition: int, number: int) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.key(partition, number) + ".d", Body=b"")

    def _due_marks(self, everything: bool) -> list[tuple[int, int]]:
        """Take the deferred marks to write now (under the lock): those whose partition
        was quiet long enough (all with ``everything``), less the superseded ones."""
        now = time.monotonic()
        due = [(p, n) for p, (n, at) in self._deferred.items() if everything or at <= now]
        for partition, _ in due:
            del self._deferred[partition]
        # a later commit of this process proves the delivery, unless that commit was lost
        return [(p, n) for p, n in due
                if (k := self._known.get(p)) is None or k.version <= n]

    def _write_marks(self) -> None:
        while True:
            with self._marks_lock:
                while not self._deferred:
                    self._marks_lock.wait()
                due = self._due_marks(everything=False)
                if not due:  # none due yet, or the due ones were superseded
                    if self._deferred:
                        wait = min(at for _, at in self._deferred.values()) - time.monotonic()
                        self._marks_lock.wait(max(wait, 0.01))
                    continue
            for partition, number in due:
                try:
                    self._put_mark(partition, number)
                except Exception:  # a load then only resends an outbox receivers drop
                    log.warning("partition %d: writing the delivered mark of %d failed",
                                partition, number, exc_info=True)

    def flush_marks(self) -> None:
        """Write the deferred marks now (before a process stops)."""
        with self._marks_lock:
            due = self._due_marks(everything=True)
        for partition, number in due:
            self._put_mark(partition, number)

    def dead_letter(self, partition: int, data: bytes, reason: str) -> None:
        body = json.dumps(
            {"partition": partition, "reason": reason, "time": time.time(),
             "data": data.decode("latin-1")}
        ).encode()
        key = f"dead-letters/p{partition}/{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body)

    def dead_letters(self, partition: int) -> list[tuple[bytes, str]]:
        """The dead letters kept for a partition, oldest first: (data, reason)."""
        found: list[tuple[bytes, str]] = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=f"dead-letters/p{partition}/"
        )
        for page in pages:
            for item in page.get("Contents", []):
                entry = json.loads(
                    self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                )
                found.append((entry["data"].encode("latin-1"), entry["reason"]))
        return found
