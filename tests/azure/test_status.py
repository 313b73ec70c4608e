"""The Blob status store on Azurite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from hosts.azure.status import BlobStatusStore
from reactive.hosting.seams import PartitionHealth, StatusQuery, StatusRecord

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def container(blob_connection: str, container_name: str) -> Iterator[ContainerClient]:
    service = BlobServiceClient.from_connection_string(blob_connection)
    client = service.create_container(container_name)
    yield client
    client.delete_container()


@pytest.fixture
def store(container: ContainerClient) -> Iterator[BlobStatusStore]:
    s = BlobStatusStore(container, 1)
    yield s
    s.close()


def rec(iid: str, status: str = "running", updated: float = 1.0, **kw: object) -> StatusRecord:
    fields: dict[str, object] = {"name": "Hello", "partition": 0, "created": 1.0}
    fields.update(kw)
    return StatusRecord(iid, status=status, updated=updated, **fields)  # type: ignore[arg-type]


def health(p: int, commit: str = "c", number: int = 1) -> PartitionHealth:
    return PartitionHealth(p, commit, 1.0, number=number)


def test_publish_get_and_health(store: BlobStatusStore) -> None:
    store.publish([rec("a"), rec("b/with slash~1")], health(0))
    store.publish([rec("a", "completed", 2.0, result={"x": [1]})], health(0, "c2", 2))
    got = store.get("a")
    assert got is not None and got.status == "completed" and got.result == {"x": [1]}
    assert store.get("b/with slash~1") == rec("b/with slash~1")
    assert store.get("missing") is None
    assert [h.commit for h in store.health()] == ["c2"]


def test_an_older_record_never_replaces_a_newer_one(
    store: BlobStatusStore, container: ContainerClient
) -> None:
    store.publish([rec("a", "completed", 5.0)], health(0, number=2))
    late = BlobStatusStore(container, 1)  # another process, publishing late
    try:
        late.publish([rec("a", "running", 3.0)], health(0, number=1))
        assert store.get("a") == rec("a", "completed", 5.0)
        # and this process, whose cached view is now stale, still moves forward
        store.publish([rec("a", "completed", 6.0, result=1)], health(0, number=3))
        late.publish([rec("a", "completed", 7.0, result=2)], health(0, number=4))
        got = store.get("a")
        assert got is not None and got.result == 2
    finally:
        late.close()


def test_pending_is_recorded_once(store: BlobStatusStore) -> None:
    assert store.put_pending(rec("p", "pending", 0.5))
    assert not store.put_pending(rec("p", "pending", 0.6))
    store.publish([rec("p", "running", 1.0)], health(0))
    got = store.get("p")
    assert got is not None and got.status == "running"


def test_query_filters_and_pages(store: BlobStatusStore) -> None:
    records = [
        rec(f"i{n:02d}", "completed" if n % 2 else "running", 2.0, created=float(n),
            name="A" if n < 5 else "B")
        for n in range(10)
    ]
    store.publish(records, health(0))

    def ids(q: StatusQuery) -> list[str]:
        return [r.instance_id for r in store.query(q)]

    assert ids(StatusQuery(status="completed")) == ["i01", "i03", "i05", "i07", "i09"]
    assert ids(StatusQuery(name="A", status="running")) == ["i00", "i02", "i04"]
    assert ids(StatusQuery(since=3.0, until=6.0)) == ["i03", "i04", "i05"]
    first = ids(StatusQuery(limit=4))
    second = ids(StatusQuery(limit=4, after=first[-1]))
    assert first == ["i00", "i01", "i02", "i03"] and second == ["i04", "i05", "i06", "i07"]


def test_purge_only_finished(store: BlobStatusStore) -> None:
    store.publish([rec("run"), rec("done", "failed", error={"type": "X"})], health(0))
    assert not store.purge("run")
    assert store.purge("done")
    assert store.get("done") is None
    assert not store.purge("done")


def test_an_instance_keeps_its_creation_time(
    store: BlobStatusStore, container: ContainerClient
) -> None:
    """Publishers stamp every record with the time of the change; the stored record keeps
    the first one's ``created``, in this process and in another."""
    assert store.put_pending(rec("c", "pending", 1.0, created=1.0))
    store.publish([rec("c", "running", 2.0, created=2.0)], health(0))
    other = BlobStatusStore(container, 1)
    try:
        other.publish([rec("c", "completed", 3.0, created=3.0)], health(0, number=2))
    finally:
        other.close()
    got = store.get("c")
    assert got is not None and (got.status, got.created) == ("completed", 1.0)
