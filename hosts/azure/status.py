"""Instance statuses in Blob Storage: the once-per-commit algorithm of
:mod:`reactive.hosting.statuslog` over one container.

A commit's status changes are one block blob, created only if absent (so a commit
published twice stays one blob); readers list a partition's prefix and read what is new
since they last looked. The blob operations below are all the algorithm needs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient

from reactive.hosting.statuslog import HEALTH_INTERVAL, LogStatusStore


class BlobObjects:
    """Implements :class:`reactive.hosting.statuslog.ObjectStore` on a container."""

    def __init__(self, container: ContainerClient, pool: ThreadPoolExecutor) -> None:
        self.container = container
        self._pool = pool
        self.calls = 0  # requests made (for measurements)

    def create(self, key: str, data: bytes) -> bool:
        self.calls += 1
        try:
            self.container.upload_blob(key, data, overwrite=False)
        except ResourceExistsError:
            return False
        return True

    def read(self, key: str) -> bytes | None:
        self.calls += 1
        try:
            return self.container.download_blob(key).readall()
        except ResourceNotFoundError:
            return None

    def list_keys(self, prefix: str) -> list[str]:
        self.calls += 1
        return list(self.container.list_blob_names(name_starts_with=prefix))

    def delete(self, keys: Sequence[str]) -> None:
        def remove(key: str) -> None:
            self.calls += 1
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(key)

        list(self._pool.map(remove, keys))


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

    def close(self) -> None:
        super().close()
        self._owns_pool.shutdown(wait=True)
        self._delete_pool.shutdown(wait=True)

    @property
    def calls(self) -> int:
        return self.blob_objects.calls
