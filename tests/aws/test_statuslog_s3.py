"""The once-per-commit status store on S3 (moto server): the object adapter's semantics,
one PUT per commit, folds, and a commit published twice by racing processes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from hosts.aws.config import AwsConfig
from hosts.aws.status import S3Objects, S3StatusStore
from reactive.hosting.seams import PartitionHealth, StatusQuery, StatusRecord


def _record(store: S3StatusStore, iid: str, status: str = "running", at: float = 1.0,
            **kw: object) -> StatusRecord:
    return StatusRecord(iid, "Hello", status, store.owner(iid), at, at, **kw)  # type: ignore[arg-type]


def _health(partition: int, number: int) -> PartitionHealth:
    return PartitionHealth(partition, str(number), float(number), number=number)


def test_the_adapter_creates_once_reads_lists_and_deletes(aws: AwsConfig) -> None:
    objects = S3Objects(aws.s3, aws.bucket)
    assert objects.create("t/a/1", b"one")
    assert not objects.create("t/a/1", b"two")  # If-None-Match: * refused it
    assert objects.read("t/a/1") == b"one"
    assert objects.read("t/a/missing") is None
    keys = [f"t/b/{n:04d}" for n in range(1005)]  # more than a page and a delete batch
    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(lambda k: objects.create(k, b""), keys))
    assert sorted(objects.list_keys("t/b/")) == keys
    objects.delete([*keys, "t/b/never"])
    assert objects.list_keys("t/b/") == [] and objects.list_keys("t/") == ["t/a/1"]


def test_one_put_per_commit_and_reads_across_folds(aws: AwsConfig) -> None:
    store = S3StatusStore(aws, health_interval=0, fold_every=4, shards=4)
    partition = 2
    iids = [i for i in (f"s{n}" for n in range(200)) if store.owner(i) == partition][:12]
    for n, iid in enumerate(iids[:3], start=1):
        store.publish([_record(store, iid, "completed", float(n), result=n)],
                      _health(partition, n))
    assert store.puts == 3  # one object per commit, whatever it changed
    for n, iid in enumerate(iids[3:], start=4):  # folds at the 4th, 8th and 12th commits
        store.publish([_record(store, iid, "running", float(n))], _health(partition, n))
    reader = S3StatusStore(aws)  # another process
    assert [r.instance_id for r in reader.query(StatusQuery(limit=100))] == sorted(iids)
    first = reader.get(iids[0])
    assert first is not None and (first.status, first.result) == ("completed", 1)
    assert [h.number for h in reader.health()] == [12]
    assert reader.purge(iids[0]) and reader.get(iids[0]) is None
    listed = S3Objects(aws.s3, aws.bucket).list_keys(f"status/p{partition:04d}/s/")
    assert listed == []  # every segment was folded and deleted


def test_racing_processes_publishing_one_commit_write_one_segment(aws: AwsConfig) -> None:
    stores = [S3StatusStore(aws, health_interval=0) for _ in range(4)]
    iid = "raced"
    partition = stores[0].owner(iid)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda pair: pair[1].publish(
            [_record(pair[1], iid, "completed", float(pair[0]), result=pair[0])],
            _health(partition, 1)), enumerate(stores)))
    keys = S3Objects(aws.s3, aws.bucket).list_keys(f"status/p{partition:04d}/s/")
    assert len(keys) == 1
    got = [s.get(iid) for s in stores]
    assert len({(r.status, r.result) for r in got if r is not None}) == 1  # one stands
