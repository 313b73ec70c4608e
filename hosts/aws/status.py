"""The S3 status store: one JSON object per instance, one per partition's health.

Clients read statuses here without touching snapshots. A record replaces a stored one only
if it is not older; a ``pending`` record (written by a client that submitted a start) never
replaces another and is always replaced. Replacement is a conditional write (``If-Match``
on the ETag this process last saw or wrote), so two writers of one instance cannot undo
each other; usually a record costs one PUT.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Any

from botocore.exceptions import ClientError

from hosts.aws.config import AwsConfig
from hosts.aws.store import CONFLICT_CODES, _error_code
from reactive.hosting.memory import matches
from reactive.hosting.seams import PartitionHealth, StatusQuery, StatusRecord

INSTANCES = "status/instances/"
HEALTH = "status/health/"
DONE = frozenset({"completed", "failed", "terminated"})
ATTEMPTS = 8
KNOWN_LIMIT = 50_000  # ETags remembered per process
HEALTH_INTERVAL = 5.0  # seconds a partition's health may lag when nothing in it changed


def _encode(record: StatusRecord | PartitionHealth) -> bytes:
    return json.dumps(asdict(record), separators=(",", ":")).encode()


def _record(data: bytes) -> StatusRecord:
    return StatusRecord(**json.loads(data))


Marker = tuple[int, float]
"""What decides replacement: (0 for a pending record, else 1; its time)."""


def _marker(record: StatusRecord) -> Marker:
    return (0 if record.status == "pending" else 1, record.updated)


def _marker_of(data: bytes) -> Marker:
    body = json.loads(data)
    if "committed_at" in body:  # a partition's health
        return (1, float(body["committed_at"]))
    return (0 if body["status"] == "pending" else 1, float(body["updated"]))


def _may_replace(new: Marker, old: Marker) -> bool:
    """A pending record is always replaced and replaces nothing; otherwise the newer (or
    equally new) one wins."""
    return old[0] == 0 or (new[0] == 1 and new[1] >= old[1])


class S3StatusStore:
    """Implements :class:`reactive.hosting.seams.StatusStore` on one S3 bucket."""

    def __init__(
        self,
        config: AwsConfig,
        pool: ThreadPoolExecutor | None = None,
        health_interval: float = HEALTH_INTERVAL,
    ) -> None:
        self.config = config
        self.s3 = config.s3
        self.bucket = config.bucket
        self._pool = pool or ThreadPoolExecutor(16, thread_name_prefix="s3-status")
        # key -> the ETag and marker this process last saw or wrote (bounded, oldest out)
        self._known: OrderedDict[str, tuple[str, Marker]] = OrderedDict()
        self._lock = threading.Lock()
        self.puts = 0  # PUT requests made (for measurements)
        self.health_interval = health_interval
        self._health_written: dict[int, tuple[float, tuple[Any, ...]]] = {}

    @staticmethod
    def key(instance_id: str) -> str:
        """Hex of the id's UTF-8: any id is a valid key, and key order is id order."""
        return INSTANCES + instance_id.encode().hex()

    @staticmethod
    def health_key(partition: int) -> str:
        return f"{HEALTH}p{partition}.json"

    # -- writing -------------------------------------------------------------------------

    def _remember(self, key: str, etag: str, marker: Marker) -> None:
        with self._lock:
            self._known[key] = (etag, marker)
            self._known.move_to_end(key)
            while len(self._known) > KNOWN_LIMIT:
                self._known.popitem(last=False)

    def _put(self, key: str, body: bytes, marker: Marker, **condition: str) -> str | None:
        """PUT under a condition; the new ETag, or None if the condition failed."""
        self.puts += 1
        try:
            response = self.s3.put_object(Bucket=self.bucket, Key=key, Body=body, **condition)
        except ClientError as error:
            if _error_code(error) in CONFLICT_CODES or _error_code(error) == "NoSuchKey":
                return None
            raise
        etag = str(response["ETag"])
        self._remember(key, etag, marker)
        return etag

    def _read(self, key: str) -> tuple[bytes, str] | None:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            return None
        return response["Body"].read(), str(response["ETag"])

    def _replace(self, key: str, body: bytes, marker: Marker) -> None:
        """Write ``body`` unless the stored object may not be replaced by it; first
        conditional on the ETag this process knows, then read-compare-write."""
        with self._lock:
            known = self._known.get(key)
        if known is not None and not _may_replace(marker, known[1]):
            return
        condition = {"IfMatch": known[0]} if known else {"IfNoneMatch": "*"}
        if self._put(key, body, marker, **condition) is not None:
            return
        for _ in range(ATTEMPTS):
            stored = self._read(key)
            if stored is None:
                if self._put(key, body, marker, IfNoneMatch="*") is not None:
                    return
                continue
            if not _may_replace(marker, _marker_of(stored[0])):
                self._remember(key, stored[1], _marker_of(stored[0]))
                return
            if self._put(key, body, marker, IfMatch=stored[1]) is not None:
                return
        raise RuntimeError(f"status object {key} kept changing under {ATTEMPTS} attempts")

    def _publish_record(self, record: StatusRecord) -> None:
        self._replace(self.key(record.instance_id), _encode(record), _marker(record))

    def _publish_health(self, health: PartitionHealth) -> None:
        self._replace(self.health_key(health.partition), _encode(health),
                      (1, health.committed_at))

    def publish(self, records: Sequence[StatusRecord], health: PartitionHealth) -> None:
        """Writes each record; the health only if what the schedule and operators act on
        changed (next due timer, dead letters, live instances) or ``health_interval``
        seconds passed since this process last wrote it: one PUT fewer per commit."""
        futures = [self._pool.submit(self._publish_record, r) for r in records]
        key = (health.next_due, health.dead_letters, health.live_runs)
        written = self._health_written.get(health.partition)
        now = time.monotonic()
        if written is None or written[1] != key or now - written[0] >= self.health_interval:
            self._publish_health(health)
            self._health_written[health.partition] = (now, key)
        for future in futures:
            future.result()

    def put_pending(self, record: StatusRecord) -> bool:
        key, body = self.key(record.instance_id), _encode(record)
        return self._put(key, body, _marker(record), IfNoneMatch="*") is not None

    # -- reading -------------------------------------------------------------------------

    def get(self, instance_id: str) -> StatusRecord | None:
        stored = self._read(self.key(instance_id))
        return None if stored is None else _record(stored[0])

    def query(self, query: StatusQuery) -> list[StatusRecord]:
        """Lists the instance objects in key order (which is instance id order) and reads
        them a page at a time: a scan, since S3 has no secondary index."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": INSTANCES}
        if query.after is not None:
            kwargs["StartAfter"] = self.key(query.after)
        found: list[StatusRecord] = []
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            **kwargs, PaginationConfig={"PageSize": 200}
        )
        for page in pages:
            keys = [item["Key"] for item in page.get("Contents", [])]
            for data in self._pool.map(self._read, keys):
                if data is not None:
                    record = _record(data[0])
                    if matches(record, query):
                        found.append(record)
            if len(found) >= query.limit:
                break
        return found[: query.limit]

    def health(self) -> list[PartitionHealth]:
        keys = [self.health_key(p) for p in range(self.config.partitions)]
        return [
            PartitionHealth(**json.loads(stored[0]))
            for stored in self._pool.map(self._read, keys)
            if stored is not None
        ]

    def purge(self, instance_id: str) -> bool:
        key = self.key(instance_id)
        stored = self._read(key)
        if stored is None or _record(stored[0]).status not in DONE:
            return False
        try:
            self.s3.delete_object(Bucket=self.bucket, Key=key, IfMatch=stored[1])
        except ClientError as error:
            if _error_code(error) in CONFLICT_CODES:
                return False
            raise
        with self._lock:
            self._known.pop(key, None)
        return True
