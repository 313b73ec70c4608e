"""The Blob snapshot store on Azurite: deltas, compaction, and the fences."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from hosts.azure import snapshots
from hosts.azure.snapshots import BlobSnapshotStore
from reactive.hosting.seams import StaleSnapshotError, Stored

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def container(blob_connection: str, container_name: str) -> Iterator[ContainerClient]:
    service = BlobServiceClient.from_connection_string(blob_connection)
    client = service.create_container(container_name)
    yield client
    client.delete_container()


def fresh(container: ContainerClient) -> BlobSnapshotStore:
    """Another process's view of the same store: nothing cached."""
    return BlobSnapshotStore(container)


def test_empty_partition_loads_nothing(container: ContainerClient) -> None:
    assert fresh(container).load(3) == Stored()


def test_base_and_deltas_round_trip(container: ContainerClient) -> None:
    store = fresh(container)
    v1 = store.compact(0, b"base-1", None)
    v2 = store.append(0, b"d1", v1)
    v3 = store.append(0, b"d2", v2)
    other = fresh(container).load(0)
    assert (other.base, other.deltas, other.version) == (b"base-1", (b"d1", b"d2"), v3)
    v4 = store.compact(0, b"base-2", v3)
    v5 = store.append(0, b"d3", v4)
    other = fresh(container).load(0)
    assert (other.base, other.deltas, other.version) == (b"base-2", (b"d3",), v5)
    assert store.load(0) == other  # the warm view agrees


def test_first_write_may_be_a_delta(container: ContainerClient) -> None:
    store = fresh(container)
    v = store.append(1, b"only", None)
    assert fresh(container).load(1) == Stored(None, (b"only",), v, None)


def test_stale_version_loses_and_changes_nothing(container: ContainerClient) -> None:
    a, b = fresh(container), fresh(container)
    v1 = a.compact(0, b"base", None)
    assert b.load(0).version == v1
    v2 = a.append(0, b"from-a", v1)
    with pytest.raises(StaleSnapshotError):
        b.append(0, b"from-b", v1)
    with pytest.raises(StaleSnapshotError):
        b.compact(0, b"base-b", v1)
    loaded = fresh(container).load(0)
    assert (loaded.base, loaded.deltas, loaded.version) == (b"base", (b"from-a",), v2)


def test_stale_writer_loses_after_a_compaction(container: ContainerClient) -> None:
    """The old generation's log is sealed by the forward record, so an append at the
    length the stale writer knew fails even though the log still exists."""
    a, b = fresh(container), fresh(container)
    v1 = a.append(0, b"d1", None)
    v2 = a.append(0, b"d2", v1)
    assert b.load(0).version == v2
    v3 = a.compact(0, b"base", v2)
    with pytest.raises(StaleSnapshotError):
        b.append(0, b"late", v2)
    assert fresh(container).load(0) == Stored(b"base", (), v3, None)
    # the loser reloads and goes on from the current version
    assert b.load(0).version == v3
    v4 = b.append(0, b"d3", v3)
    assert fresh(container).load(0).deltas == (b"d3",)
    assert a.load(0).version == v4


def test_first_writes_race(container: ContainerClient) -> None:
    a, b = fresh(container), fresh(container)
    a.load(2)
    b.load(2)
    va = a.append(2, b"a", None)
    with pytest.raises(StaleSnapshotError):
        b.compact(2, b"b", None)
    assert fresh(container).load(2) == Stored(None, (b"a",), va, None)


@pytest.mark.parametrize("kind", ["append", "compact"])
def test_racing_writers_exactly_one_wins(container: ContainerClient, kind: str) -> None:
    seed = fresh(container)
    version = seed.append(0, b"seed", None)
    stores = [fresh(container) for _ in range(6)]
    for store in stores:
        assert store.load(0).version == version
    barrier = threading.Barrier(len(stores))
    won: list[int] = []
    lost: list[int] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            if kind == "append":
                stores[i].append(0, b"w%d" % i, version)
            else:
                stores[i].compact(0, b"w%d" % i, version)
            won.append(i)
        except StaleSnapshotError:
            lost.append(i)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == len(stores) - 1
    loaded = fresh(container).load(0)
    winner = b"w%d" % won[0]
    if kind == "append":
        assert loaded.deltas == (b"seed", winner)
    else:
        assert (loaded.base, loaded.deltas) == (winner, ())
    # nothing the losers created is left behind
    for store in stores:
        store.drain()
    names = [b.name for b in container.list_blobs(name_starts_with="snapshots/")]
    assert len([n for n in names if n.endswith(".log")]) == (2 if kind == "compact" else 1)


def test_lagging_head_is_followed(container: ContainerClient) -> None:
    """A head left behind (its writer crashed after the seal) costs a read, not data."""
    a = fresh(container)
    v1 = a.compact(0, b"b1", None)
    head = container.get_blob_client("snapshots/p0000/head")
    old_head = head.download_blob().readall()
    v2 = a.compact(0, b"b2", v1)
    v3 = a.append(0, b"d", v2)
    a.drain()
    head.upload_blob(old_head, overwrite=True)  # as if the head move never happened
    assert fresh(container).load(0) == Stored(b"b2", (b"d",), v3, None)


def test_old_generations_are_removed(container: ContainerClient) -> None:
    store = fresh(container)
    version = store.compact(0, b"b0", None)
    for i in range(1, 5):
        version = store.compact(0, b"b%d" % i, store.append(0, b"d", version))
    store.drain()
    logs = [b.name for b in container.list_blobs(name_starts_with="snapshots/") if ".log" in b.name]
    assert len(logs) == 2  # the current generation and the one it compacted


def test_large_delta_travels_by_reference(
    container: ContainerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshots, "MAX_INLINE", 10)
    store = fresh(container)
    v1 = store.append(0, b"small", None)
    v2 = store.append(0, b"x" * 100, v1)
    assert fresh(container).load(0) == Stored(None, (b"small", b"x" * 100), v2, None)


def test_delivered_and_position_survive_a_restart(container: ContainerClient) -> None:
    store = fresh(container)
    v1 = store.append(0, b"d", None)
    store.mark_delivered(0, v1)
    store.set_position(0, 41)
    store.flush(0)
    store.drain()
    other = fresh(container)
    assert other.load(0).delivered == v1
    assert other.position(0) == 41
    v2 = other.compact(0, b"b", v1)  # the new generation starts with the known position
    third = fresh(container)
    assert third.load(0).delivered is None
    assert third.position(0) == 41
    assert third.load(0).version == v2


def loaded_position(container: ContainerClient) -> int | None:
    """The position another process finds on a load."""
    other = fresh(container)
    other.load(0)
    return other.position(0)


def test_position_travels_in_the_commit(container: ContainerClient) -> None:
    """A commit records the transport position it covers in its own append: no request
    of its own, and a restart knows it."""
    store = fresh(container)
    store.stage_position(0, 41)
    v1 = store.append(0, b"d1", None)
    store.stage_position(0, 57)
    before = store.calls
    v2 = store.append(0, b"d2", v1)
    assert store.calls - before == 1
    assert store.position(0) == 57
    other = fresh(container)
    assert other.load(0) == Stored(None, (b"d1", b"d2"), v2, None)
    assert other.position(0) == 57
    other.stage_position(0, 60)
    v3 = other.compact(0, b"base", v2)  # the new generation starts at the staged position
    third = fresh(container)
    assert third.load(0).version == v3
    assert third.position(0) == 60


def test_a_lost_commit_drops_its_staged_position(container: ContainerClient) -> None:
    first = fresh(container)
    v1 = first.append(0, b"d1", None)
    late = fresh(container)
    assert late.load(0).version == v1
    first.append(0, b"d2", v1)
    late.stage_position(0, 99)
    with pytest.raises(StaleSnapshotError):
        late.append(0, b"lost", v1)
    assert late.position(0) is None
    late.load(0)
    late.append(0, b"d3", late.load(0).version)  # a later commit does not carry it either
    assert loaded_position(container) is None


def test_a_superseded_delivery_mark_is_not_written(container: ContainerClient) -> None:
    """Only the last commit's mark matters: a mark still waiting when the partition
    commits again costs no request."""
    store = BlobSnapshotStore(container, mark_delay=2.0)
    try:
        v1 = store.append(0, b"d1", None)
        before = store.calls
        store.mark_delivered(0, v1)
        store.flush(0)
        v2 = store.append(0, b"d2", v1)
        store.drain()
        assert store.calls - before == 1  # the append only
        assert fresh(container).load(0).delivered is None
        store.mark_delivered(0, v2)
        store.flush(0)
        store.drain()
        assert store.calls - before == 2
        assert fresh(container).load(0).delivered == v2
    finally:
        store.close()


def test_a_position_without_a_commit_is_written_even_when_its_mark_is_superseded(
    container: ContainerClient,
) -> None:
    store = BlobSnapshotStore(container, mark_delay=2.0)
    try:
        v1 = store.append(0, b"d1", None)
        store.mark_delivered(0, v1)
        store.set_position(0, 12)  # e.g. a batch of wake-ups: no commit carries it
        store.flush(0)
        store.append(0, b"d2", v1)
        store.drain()
        assert loaded_position(container) == 12
    finally:
        store.close()


def test_flushes_within_the_mark_delay_write_once(container: ContainerClient) -> None:
    """Invocations of a busy partition, each flushing its marks, share one write."""
    store = BlobSnapshotStore(container, mark_delay=2.0)
    try:
        version = store.append(0, b"d", None)
        before = store.calls
        for position in range(20, 25):
            store.mark_delivered(0, version)
            store.set_position(0, position)
            store.flush(0)
            time.sleep(0.1)  # an invocation's worth of other work
        store.drain()
        assert store.calls - before == 1
        other = fresh(container)
        assert other.load(0).delivered == version and other.position(0) == 24
    finally:
        store.close()


def test_dead_letters_keep_reason_and_bytes(container: ContainerClient) -> None:
    store = fresh(container)
    store.dead_letter(2, b"\xff\x00junk", "not JSON")
    store.dead_letter(2, b"{}", "no operation")
    letters = store.dead_letters.list("2")
    assert [(d["data"], d["reason"]) for d in letters] == [
        (b"\xff\x00junk", "not JSON"), (b"{}", "no operation"),
    ]
