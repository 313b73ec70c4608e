"""Instance statuses in Blob Storage: the once-per-commit algorithm of
:mod:`reactive.hosting.statuslog` over one container.

A commit's status changes are one block blob, created only if absent (so a commit
published twice stays one blob); readers list a partition's prefix and read what is new
since they last looked. The blob operations below are all the algorithm needs.

Two savings in storage requests, both relying on the algorithm's objects being immutable:
an object this process created is read back from memory (the client's pending records,
read again by status reads and queries in the same process, cost no GET), and deletes go
as blob batches (one request per 256 keys) rather than one request each.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from reactive.hosting.statuslog import HEALTH_INTERVAL, LogStatusStore

log = logging.getLogger("reactive.azure.status")

BATCH_DELETE = 256  # keys per blob batch request (the service's limit)
CREATED_BYTES = 16 << 20  # objects created here, kept for reads by this process


class BlobObjects:
    """Implements :class:`reactive.hosting.statuslog.ObjectStore` on a container."""

    def __init__(self, container: ContainerClient, pool: ThreadPoolExecutor,
                 created_bytes: int = CREATED_BYTES) -> None:
        self.container = container
        self._pool = pool
        self.calls = 0  # requests made (for measurements)
        # what this process created, newest last: objects never change once created, so
        # the bytes stand until a delete (made here, or by another process: a reader only
        # asks for keys it just listed, and the algorithm caches what it read anyway)
        self._created: OrderedDict[str, bytes] = OrderedDict()
        self._created_size = 0
        self._created_budget = created_bytes
        self._lock = threading.Lock()

    def _remember(self, key: str, data: bytes) -> None:
        with self._lock:
            self._created[key] = data
            self._created_size += len(data)
            while self._created_size > self._created_budget and self._created:
                _, old = self._created.popitem(last=False)
                self._created_size -= len(old)

    def _forget(self, keys: Sequence[str]) -> None:
        with self._lock:
            for key in keys:
                data = self._created.pop(key, None)
                if data is not None:
                    self._created_size -= len(data)

    def create(self, key: str, data: bytes) -> bool:
        self.calls += 1
        try:
            self.container.upload_blob(key, data, overwrite=False)
        except ResourceExistsError:
            return False
        self._remember(key, data)
        return True

    def read(self, key: str) -> bytes | None:
        with self._lock:
            data = self._created.get(key)
        if data is not None:
            return data
        self.calls += 1
        try:
            return self.container.download_blob(key).readall()
        except ResourceNotFoundError:
            return None

    def list_keys(self, prefix: str) -> list[str]:
        self.calls += 1
        return list(self.container.list_blob_names(name_starts_with=prefix))

    def delete(self, keys: Sequence[str]) -> None:
        self._forget(keys)
        chunks = [keys[i : i + BATCH_DELETE] for i in range(0, len(keys), BATCH_DELETE)]
        list(self._pool.map(self._delete_batch, chunks))

    def _delete_batch(self, keys: Sequence[str]) -> None:
        self.calls += 1
        replies = self.container.delete_blobs(*keys, raise_on_any_failure=False)
        for key, reply in zip(keys, replies, strict=True):
            if reply.status_code not in (202, 404):  # absent keys are no error
                raise HttpResponseError(
                    f"deleting {key} failed with status {reply.status_code}",
                    response=reply,
                )


class BlobStatusStore(LogStatusStore):
    """Implements :class:`reactive.hosting.seams.StatusStore` on Blob Storage."""

    def __init__(
        self,
        container: ContainerClient,
        partitions: int,
        prefix: str = "status/",
        parallelism: int = 8,
        health_interval: float = HEALTH_INTERVAL,
        **options: Any,
    ) -> None:
        self.container = container
        pool = ThreadPoolExecutor(parallelism, thread_name_prefix="reactive-status")
        # deletes get a pool of their own: they run from inside tasks of the store's pool
        self._delete_pool = ThreadPoolExecutor(parallelism, thread_name_prefix="status-delete")
        self.blob_objects = BlobObjects(container, self._delete_pool)
        super().__init__(self.blob_objects, partitions, root=prefix, pool=pool,
                         health_interval=health_interval, **options)
        self._owns_pool = pool
        # folds run here, not in the publish that finds one due: a fold (a LIST, a write
        # per shard it touches, a batch delete) took 0.4 to 3 s in Azurite under a bank
        # run, during which the partition could not start its next invocation
        self._folds = ThreadPoolExecutor(1, thread_name_prefix="status-fold")
        self._folds_queued: set[int] = set()

    def fold_due(self, partition: int) -> None:
        with self._lock:
            if partition in self._folds_queued:
                return  # the queued fold takes this segment too
            self._folds_queued.add(partition)
        try:
            self._folds.submit(self._fold_later, partition)
        except RuntimeError:  # closing: the next writer folds
            with self._lock:
                self._folds_queued.discard(partition)

    def _fold_later(self, partition: int) -> None:
        with self._lock:
            self._folds_queued.discard(partition)
        try:
            self.fold(partition)
        except Exception:
            # only a reader's saving: the segments stay readable, and the next fold due
            # (``fold_every`` segments on) takes them
            log.exception("status fold of partition %d failed", partition)

    def wait_for_folds(self) -> None:
        """Return once the folds queued so far are done (tests, measurements)."""
        self._folds.submit(lambda: None).result()

    def close(self) -> None:
        self._folds.shutdown(wait=True)
        super().close()
        self._owns_pool.shutdown(wait=True)
        self._delete_pool.shutdown(wait=True)

    @property
    def calls(self) -> int:
        return self.blob_objects.calls
