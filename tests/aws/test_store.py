"""The S3 snapshot store: fenced appends, compaction, delivered marks, collection."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pytest

from hosts.aws.config import AwsConfig
from hosts.aws.store import S3SnapshotStore
from reactive.hosting.seams import StaleSnapshotError, Stored


def test_empty_partition_loads_as_nothing(aws: AwsConfig) -> None:
    assert S3SnapshotStore(aws).load(0) == Stored()


def test_appends_and_compaction_load_back(aws: AwsConfig) -> None:
    store = S3SnapshotStore(aws)
    v1 = store.compact(1, b"base-1", None)
    v2 = store.append(1, b"d2", v1)
    v3 = store.append(1, b"d3", v2)
    assert S3SnapshotStore(aws).load(1) == Stored(b"base-1", (b"d2", b"d3"), v3, None)
    store.mark_delivered(1, v2)
    v4 = store.compact(1, b"base-4", v3)
    v5 = store.append(1, b"d5", v4)
    # marks before the base no longer matter: the base's outbox is what may be unsent
    assert S3SnapshotStore(aws).load(1) == Stored(b"base-4", (b"d5",), v5, None)
    store.mark_delivered(1, v5)
    assert S3SnapshotStore(aws).load(1) == Stored(b"base-4", (b"d5",), v5, v5)
    assert S3SnapshotStore(aws).load(0) == Stored()  # partitions are apart


def test_deltas_without_a_base(aws: AwsConfig) -> None:
    store = S3SnapshotStore(aws)
    v1 = store.append(2, b"a", None)
    v2 = store.append(2, b"b", v1)
    store.mark_delivered(2, v2)
    assert S3SnapshotStore(aws).load(2) == Stored(None, (b"a", b"b"), v2, v2)


def test_a_stale_writer_loses_and_changes_nothing(aws: AwsConfig) -> None:
    first, second = S3SnapshotStore(aws), S3SnapshotStore(aws)
    v1 = first.compact(0, b"base", None)
    seen = second.load(0)
    assert seen.version == v1
    first.append(0, b"winner", v1)
    with pytest.raises(StaleSnapshotError):
        second.append(0, b"loser", seen.version)
    with pytest.raises(StaleSnapshotError):
        second.compact(0, b"loser-base", seen.version)
    assert S3SnapshotStore(aws).load(0).deltas == (b"winner",)


def test_racing_writers_one_wins(aws: AwsConfig) -> None:
    store = S3SnapshotStore(aws)
    version = store.compact(3, b"base", None)
    outcomes: list[str] = []
    barrier = threading.Barrier(6)

    def write(n: int) -> None:
        own = S3SnapshotStore(aws)
        own.load(3)
        barrier.wait()
        try:
            own.append(3, f"delta-{n}".encode(), version)
            outcomes.append(f"won-{n}")
        except StaleSnapshotError:
            outcomes.append("lost")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [o for o in outcomes if o.startswith("won")]
    assert len(winners) == 1 and outcomes.count("lost") == 5
    assert S3SnapshotStore(aws).load(3).deltas == (f"delta-{winners[0][4:]}".encode(),)


def test_old_commits_are_collected_after_the_grace_period(aws: AwsConfig) -> None:
    store = S3SnapshotStore(aws, gc_grace=-1.0)
    version = store.compact(0, b"b1", None)
    for _ in range(3):
        version = store.append(0, b"d", version)
    version = store.compact(0, b"b5", version)  # the previous base was 1: nothing before
    version = store.append(0, b"d6", version)
    version = store.compact(0, b"b7", version)  # deletes what precedes base 5
    keys = [o["Key"] for o in aws.s3.list_objects_v2(
        Bucket=aws.bucket, Prefix=store.prefix(0))["Contents"]]
    assert [k.rsplit("/", 1)[1] for k in keys] == [f"{n:012d}" for n in (5, 6, 7)]
    assert S3SnapshotStore(aws).load(0) == Stored(b"b7", (), version, None)


def test_a_long_stale_writer_cannot_reuse_a_collected_number(aws: AwsConfig) -> None:
    stale = S3SnapshotStore(aws, fence_trust=0.0)
    v1 = stale.compact(0, b"b1", None)
    live = S3SnapshotStore(aws, gc_grace=-1.0)
    version = live.load(0).version
    for _ in range(3):
        version = live.compact(0, b"b", version)  # collects commit 1 and 2
    # commit 2 is free again: only the head check finds the writer stale
    with pytest.raises(StaleSnapshotError):
        stale.append(0, b"late", v1)
    assert S3SnapshotStore(aws).load(0) == Stored(b"b", (), version, None)


def test_dead_letters_keep_data_and_reason(aws: AwsConfig) -> None:
    store = S3SnapshotStore(aws)
    store.dead_letter(1, b"\xff\x00junk", "not a message envelope")
    assert store.dead_letters(1) == [(b"\xff\x00junk", "not a message envelope")]


def _commit(output: list[list[object]]) -> bytes:
    """A delta shaped as the worker writes it (checksum line, then JSON)."""
    text = json.dumps({"format": 1, "partition": {}, "host": {"outbox": [], "output": output}})
    return hashlib.sha256(text.encode()).hexdigest().encode() + b"\n" + text.encode()


def _marks(aws: AwsConfig, store: S3SnapshotStore, partition: int) -> list[int]:
    listed = aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix=store.prefix(partition))
    return [int(o["Key"].rsplit("/", 1)[1][:-2]) for o in listed.get("Contents", [])
            if o["Key"].endswith(".d")]


def test_a_quiet_commits_mark_waits_and_the_next_commit_makes_it_needless(
    aws: AwsConfig,
) -> None:
    store = S3SnapshotStore(aws, mark_delay=3600.0)
    v1 = store.append(0, _commit([]), None)
    store.mark_delivered(0, v1)
    v2 = store.append(0, _commit([]), v1)
    store.mark_delivered(0, v2)
    assert _marks(aws, store, 0) == []  # deferred: nothing emitted but sends and statuses
    store.flush_marks()
    assert _marks(aws, store, 0) == [2]  # commit 2 proves commit 1 was delivered
    assert S3SnapshotStore(aws).load(0).delivered == v2


def test_a_deferred_mark_is_written_once_the_partition_is_quiet(aws: AwsConfig) -> None:
    store = S3SnapshotStore(aws, mark_delay=0.05)
    v1 = store.append(1, _commit([]), None)
    store.mark_delivered(1, v1)
    deadline = time.monotonic() + 30
    while _marks(aws, store, 1) != [1] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert S3SnapshotStore(aws).load(1).delivered == v1


@pytest.mark.parametrize("output", [
    [["log", 20, "line"]], [["error", "boom"]], [["dead", "bad", "x"]]])
def test_a_commit_that_emitted_output_is_marked_at_once(
    aws: AwsConfig, output: list[list[object]]
) -> None:
    # a resend would repeat its log line, error or dead letter
    store = S3SnapshotStore(aws, mark_delay=3600.0)
    v1 = store.append(2, _commit(output), None)
    store.mark_delivered(2, v1)
    assert _marks(aws, store, 2) == [1]


def test_a_resend_after_a_load_is_marked_at_once(aws: AwsConfig) -> None:
    S3SnapshotStore(aws).append(3, _commit([]), None)
    store = S3SnapshotStore(aws, mark_delay=3600.0)
    stored = store.load(3)  # another process's last commit: its outbox is resent now
    assert stored.delivered is None and stored.version is not None
    store.mark_delivered(3, stored.version)
    assert _marks(aws, store, 3) == [1]
