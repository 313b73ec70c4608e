"""The once-per-commit status store on Blob Storage (Azurite): the object adapter's
semantics, one upload per commit, folds, and a commit published twice by racing
processes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from hosts.azure.status import BlobObjects, BlobStatusStore
from reactive.hosting.seams import PartitionHealth, StatusQuery, StatusRecord

pytestmark = pytest.mark.timeout(120)
PARTITIONS = 4


@pytest.fixture
def container(blob_connection: str, container_name: str) -> Iterator[ContainerClient]:
    service = BlobServiceClient.from_connection_string(blob_connection)
    client = service.create_container(container_name)
    yield client
    client.delete_container()


def _record(store: BlobStatusStore, iid: str, status: str = "running", at: float = 1.0,
            **kw: object) -> StatusRecord:
    return StatusRecord(iid, "Hello", status, store.owner(iid), at, at, **kw)  # type: ignore[arg-type]


def _health(partition: int, number: int) -> PartitionHealth:
    return PartitionHealth(partition, str(number), float(number), number=number)


def test_the_adapter_creates_once_reads_lists_and_deletes(container: ContainerClient) -> None:
    with ThreadPoolExecutor(8) as pool:
        objects = BlobObjects(container, pool)
        assert objects.create("t/a/1", b"one")
        assert not objects.create("t/a/1", b"two")  # created only if absent
        assert objects.read("t/a/1") == b"one"
        assert objects.read("t/a/missing") is None
        keys = [f"t/b/{n:04d}" for n in range(30)]
        assert all(pool.map(lambda k: objects.create(k, b""), keys))
        assert sorted(objects.list_keys("t/b/")) == keys
        objects.delete([*keys, "t/b/never"])
        assert objects.list_keys("t/b/") == [] and objects.list_keys("t/") == ["t/a/1"]


def test_objects_created_here_are_read_back_without_a_request(
    container: ContainerClient,
) -> None:
    with ThreadPoolExecutor(4) as pool:
        objects = BlobObjects(container, pool, created_bytes=10)
        assert objects.create("t/c/1", b"12345") and objects.create("t/c/2", b"67890")
        before = objects.calls
        assert objects.read("t/c/1") == b"12345" and objects.read("t/c/2") == b"67890"
        assert objects.calls == before
        assert objects.create("t/c/3", b"x")  # over the budget: the oldest is dropped
        assert objects.read("t/c/1") == b"12345"  # and read from the container again
        assert objects.calls == before + 2
        objects.delete(["t/c/2"])
        assert objects.read("t/c/2") is None  # a delete here forgets it
        other = BlobObjects(container, pool)  # another process reads what is stored
        assert other.read("t/c/3") == b"x"


def test_deletes_go_in_batches_and_ignore_absent_keys(container: ContainerClient) -> None:
    with ThreadPoolExecutor(8) as pool:
        objects = BlobObjects(container, pool)
        keys = [f"t/d/{n:04d}" for n in range(300)]
        assert all(pool.map(lambda k: objects.create(k, b""), keys))
        before = objects.calls
        objects.delete([*keys, "t/d/never"])
        assert objects.calls - before == 2  # 301 keys: two batch requests
        assert objects.list_keys("t/d/") == []


def test_one_upload_per_commit_and_reads_across_folds(container: ContainerClient) -> None:
    store = BlobStatusStore(container, PARTITIONS, health_interval=0, fold_every=4, shards=4)
    reader = BlobStatusStore(container, PARTITIONS)  # another process
    try:
        partition = 1
        iids = [i for i in (f"s{n}" for n in range(200)) if store.owner(i) == partition][:12]
        before = store.calls
        for n, iid in enumerate(iids[:3], start=1):
            store.publish([_record(store, iid, "completed", float(n), result=n)],
                          _health(partition, n))
        # one upload per commit, plus one listing by this process's first publish
        assert store.calls - before == 3 + 1
        for n, iid in enumerate(iids[3:], start=4):  # folds at the 4th, 8th, 12th commits
            store.publish([_record(store, iid, "running", float(n))], _health(partition, n))
        store.wait_for_folds()
        assert [r.instance_id for r in reader.query(StatusQuery(limit=100))] == sorted(iids)
        first = reader.get(iids[0])
        assert first is not None and (first.status, first.result) == ("completed", 1)
        assert [h.number for h in reader.health()] == [12]
        assert reader.purge(iids[0]) and reader.get(iids[0]) is None
        assert list(container.list_blob_names(name_starts_with=f"status/p{partition:04d}/s/")) == []
    finally:
        store.close()
        reader.close()


def test_racing_processes_publishing_one_commit_write_one_segment(
    container: ContainerClient,
) -> None:
    stores = [BlobStatusStore(container, PARTITIONS, health_interval=0) for _ in range(4)]
    try:
        iid = "raced"
        partition = stores[0].owner(iid)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda pair: pair[1].publish(
                [_record(pair[1], iid, "completed", float(pair[0]), result=pair[0])],
                _health(partition, 1)), enumerate(stores)))
        names = list(container.list_blob_names(name_starts_with=f"status/p{partition:04d}/s/"))
        assert len(names) == 1
        got = [s.get(iid) for s in stores]
        assert len({(r.status, r.result) for r in got if r is not None}) == 1  # one stands
    finally:
        for store in stores:
            store.close()


class _SlowFolds(BlobStatusStore):
    """A store whose folds hang until released (Azurite busy with a fold's batch delete)."""

    def __init__(self, container: ContainerClient) -> None:
        super().__init__(container, PARTITIONS, health_interval=0, fold_every=2, shards=4)
        self.release = threading.Event()
        self.folding = threading.Event()

    def fold(self, partition: int) -> bool:
        self.folding.set()
        assert self.release.wait(60)
        return super().fold(partition)


def test_a_publish_does_not_wait_for_the_fold_it_makes_due(container: ContainerClient) -> None:
    """The fold runs on the store's own thread: while one hangs, the partition's next
    commits still publish, and once it is done the segments it covered are gone and
    every record reads the same."""
    store = _SlowFolds(container)
    reader = BlobStatusStore(container, PARTITIONS)
    try:
        partition = 2
        iids = [i for i in (f"f{n}" for n in range(200)) if store.owner(i) == partition][:5]
        for n, iid in enumerate(iids, start=1):  # a fold is due at the 2nd and 4th
            store.publish([_record(store, iid, "completed", float(n), result=n)],
                          _health(partition, n))
        assert store.folding.is_set()  # one started, and hangs
        segments = f"status/p{partition:04d}/s/"
        assert len(list(container.list_blob_names(name_starts_with=segments))) == 5
        assert [r.instance_id for r in reader.query(StatusQuery(limit=100))] == sorted(iids)
        store.release.set()
        store.wait_for_folds()
        left = list(container.list_blob_names(name_starts_with=segments))
        assert len(left) < 5  # folded (the second fold due may have taken the 5th too)
        got = [reader.get(iid) for iid in iids]
        assert [(r.status, r.result) for r in got if r is not None] == [
            ("completed", n) for n in range(1, 6)
        ]
    finally:
        store.release.set()
        store.close()
        reader.close()
