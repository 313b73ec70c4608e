"""Instance statuses in Blob Storage, readable without restoring a partition.

``status/i/<instance id>``: one block blob per instance, its JSON record as the body and
``status``, ``name``, ``created``, ``updated`` as metadata, so that a query filters from
one listing and downloads only the records it returns. ``status/health/p<partition>``:
what each partition's last commit published about itself.

A record replaces a stored one only if it is not older: writes are conditional on the
ETag this process last saw (one request in the steady state); when that fails, the stored
record's ``updated`` is read and compared before retrying.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, replace
from typing import Any
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import ContainerClient

from reactive.hosting.seams import PartitionHealth, StatusQuery, StatusRecord

FINISHED = ("completed", "failed", "terminated")
ETAG_CACHE = 100_000  # instances whose last ETag this process remembers
WRITE_ATTEMPTS = 8


def _encode_id(instance_id: str) -> str:
    return quote(instance_id, safe="-_.~")


def _is_condition_failure(exc: HttpResponseError) -> bool:
    return exc.status_code in (409, 412)


def _record_from(body: bytes) -> StatusRecord:
    return StatusRecord(**json.loads(body))


def _health_from(body: bytes) -> PartitionHealth:
    return PartitionHealth(**json.loads(body))


class BlobStatusStore:
    """Implements :class:`reactive.hosting.seams.StatusStore` on Blob Storage."""

    def __init__(
        self, container: ContainerClient, prefix: str = "status/", parallelism: int = 8
    ) -> None:
        self.container = container
        self.instances = prefix + "i/"
        self.health_prefix = prefix + "health/"
        # instance id -> (ETag last seen, its record's creation time)
        self._etags: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(parallelism, thread_name_prefix="reactive-status")
        self.calls = 0

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- writes --------------------------------------------------------------------------

    def _remember(self, instance_id: str, etag: str | None, created: float = 0.0) -> None:
        with self._lock:
            if etag is None:
                self._etags.pop(instance_id, None)
                return
            self._etags[instance_id] = (etag, created)
            self._etags.move_to_end(instance_id)
            while len(self._etags) > ETAG_CACHE:
                self._etags.popitem(last=False)

    def _upload(self, record: StatusRecord, **conditions: Any) -> str:
        blob = self.container.get_blob_client(self.instances + _encode_id(record.instance_id))
        metadata = {
            "status": record.status, "name": record.name,
            "created": repr(record.created), "updated": repr(record.updated),
        }
        self.calls += 1
        reply = blob.upload_blob(
            json.dumps(asdict(record)).encode(), overwrite=True, metadata=metadata, **conditions
        )
        return str(reply["etag"])

    def _write(self, record: StatusRecord) -> None:
        iid = record.instance_id
        with self._lock:
            cached = self._etags.get(iid)
        try:
            if cached is None:
                new = self._upload(record, match_condition=MatchConditions.IfMissing)
            else:
                # an instance keeps the creation time of its first record
                record = replace(record, created=min(record.created, cached[1]))
                new = self._upload(
                    record, etag=cached[0], match_condition=MatchConditions.IfNotModified
                )
            self._remember(iid, new, record.created)
            return
        except (ResourceExistsError, ResourceModifiedError):
            pass
        except HttpResponseError as exc:
            if not _is_condition_failure(exc):
                raise
        blob = self.container.get_blob_client(self.instances + _encode_id(iid))
        for _ in range(WRITE_ATTEMPTS):
            try:
                self.calls += 1
                props = blob.get_blob_properties()
            except ResourceNotFoundError:
                conditions: dict[str, Any] = {"match_condition": MatchConditions.IfMissing}
            else:
                stored = float(props.metadata.get("updated", "0"))
                created = float(props.metadata.get("created", repr(record.created)))
                if stored > record.updated:
                    self._remember(iid, props.etag, created)
                    return  # a newer record is there already
                record = replace(record, created=min(record.created, created))
                conditions = {"etag": props.etag, "match_condition": MatchConditions.IfNotModified}
            try:
                self._remember(iid, self._upload(record, **conditions), record.created)
                return
            except (ResourceExistsError, ResourceModifiedError):
                continue
            except HttpResponseError as exc:
                if not _is_condition_failure(exc):
                    raise
        raise RuntimeError(f"status of {iid!r}: {WRITE_ATTEMPTS} conditional writes lost")

    def publish(self, records: Sequence[StatusRecord], health: PartitionHealth) -> None:
        latest: dict[str, StatusRecord] = {}
        for record in records:  # one write per instance: its newest record
            seen = latest.get(record.instance_id)
            if seen is None or record.updated >= seen.updated:
                latest[record.instance_id] = record
        futures = [self._pool.submit(self._write, r) for r in latest.values()]
        futures.append(self._pool.submit(self._put_health, health))
        for future in futures:
            future.result()

    def _put_health(self, health: PartitionHealth) -> None:
        name = f"{self.health_prefix}p{health.partition:04d}"
        self.calls += 1
        self.container.upload_blob(name, json.dumps(asdict(health)).encode(), overwrite=True)

    def put_pending_all(self, records: Sequence[StatusRecord]) -> list[bool]:
        """:meth:`put_pending` for many records, in parallel."""
        return list(self._pool.map(self.put_pending, records))

    def put_pending(self, record: StatusRecord) -> bool:
        try:
            self._remember(
                record.instance_id,
                self._upload(record, match_condition=MatchConditions.IfMissing),
                record.created,
            )
            return True
        except ResourceExistsError:
            return False
        except HttpResponseError as exc:
            if exc.status_code == 409:
                return False
            raise

    # -- reads ---------------------------------------------------------------------------

    def get(self, instance_id: str) -> StatusRecord | None:
        try:
            self.calls += 1
            body = self.container.download_blob(self.instances + _encode_id(instance_id))
            return _record_from(body.readall())
        except ResourceNotFoundError:
            return None

    def query(self, query: StatusQuery) -> list[StatusRecord]:
        """One listing (metadata included) filters; only the page's bodies are read."""
        matches: list[str] = []
        self.calls += 1
        listing = self.container.list_blobs(name_starts_with=self.instances, include=["metadata"])
        for blob in listing:
            iid = unquote(blob.name[len(self.instances) :])
            if query.after is not None and iid <= query.after:
                continue
            meta = blob.metadata or {}
            if query.status is not None and meta.get("status") != query.status:
                continue
            if query.name is not None and meta.get("name") != query.name:
                continue
            created = float(meta.get("created", "0"))
            if query.since is not None and created < query.since:
                continue
            if query.until is not None and created >= query.until:
                continue
            matches.append(iid)
        page = sorted(matches)[: max(query.limit, 0)]
        records = list(self._pool.map(self.get, page))
        return [r for r in records if r is not None]

    def health(self) -> list[PartitionHealth]:
        names = [b.name for b in self.container.list_blobs(name_starts_with=self.health_prefix)]
        self.calls += 1 + len(names)
        bodies = self._pool.map(lambda n: self.container.download_blob(n).readall(), names)
        return sorted((_health_from(b) for b in bodies), key=lambda h: h.partition)

    def purge(self, instance_id: str) -> bool:
        blob = self.container.get_blob_client(self.instances + _encode_id(instance_id))
        try:
            downloaded = blob.download_blob()
            record = _record_from(downloaded.readall())
            if record.status not in FINISHED:
                return False
            blob.delete_blob(etag=downloaded.properties.etag,
                             match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            return False
        self._remember(instance_id, None)
        return True
