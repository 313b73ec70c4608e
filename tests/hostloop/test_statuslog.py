"""The once-per-commit status store (reactive.hosting.statuslog) on an in-memory object
store: every transition, pending records, paging, purge, folds, a re-published commit,
readers racing a fold, and random schedules checked against a plain model."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from reactive.hosting.seams import PartitionHealth, StatusQuery, StatusRecord
from reactive.hosting.statuslog import LogStatusStore
from reactive.placement import place_text

PARTITIONS = 3


class MemoryObjects:
    """An object store in a dict, counting requests; ``on_list`` runs after a LIST
    answered and before its caller goes on (to stage races)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.creates = 0
        self.lists = 0
        self.reads = 0
        self.read_keys: list[str] = []
        self.on_list: Callable[[], object] | None = None

    def create(self, key: str, data: bytes) -> bool:
        with self.lock:
            self.creates += 1
            if key in self.data:
                return False
            self.data[key] = data
            return True

    def read(self, key: str) -> bytes | None:
        with self.lock:
            self.reads += 1
            self.read_keys.append(key)
            return self.data.get(key)

    def list_keys(self, prefix: str) -> list[str]:
        with self.lock:
            self.lists += 1
            keys = [k for k in self.data if k.startswith(prefix)]
        hook, self.on_list = self.on_list, None
        if hook is not None:
            hook()
        return keys

    def delete(self, keys: Sequence[str]) -> None:
        with self.lock:
            for key in keys:
                self.data.pop(key, None)

    def under(self, part: str) -> list[str]:
        return [k for k in self.data if part in k]


def ids_on(partition: int, count: int, stem: str = "i") -> list[str]:
    """``count`` instance ids owned by ``partition``."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        iid = f"{stem}{n}"
        if place_text(iid, PARTITIONS) == partition:
            found.append(iid)
        n += 1
    return found


def rec(iid: str, status: Any = "running", at: float = 1.0, **kw: Any) -> StatusRecord:
    fields: dict[str, Any] = {"name": "Hello", "created": at, "updated": at}
    fields.update(kw)
    return StatusRecord(iid, status=status, partition=place_text(iid, PARTITIONS), **fields)


def health(partition: int, number: int, **kw: Any) -> PartitionHealth:
    return PartitionHealth(partition, f"v{number}", float(number), number=number, **kw)


class Writer:
    """Publishes commits of one partition with increasing numbers."""

    def __init__(self, store: LogStatusStore, partition: int) -> None:
        self.store, self.partition, self.number = store, partition, 0

    def commit(self, *records: StatusRecord, **kw: Any) -> int:
        self.number += 1
        self.store.publish(list(records), health(self.partition, self.number, **kw))
        return self.number


@pytest.fixture
def objects() -> MemoryObjects:
    return MemoryObjects()


def make(objects: MemoryObjects, **kw: Any) -> LogStatusStore:
    kw.setdefault("health_interval", 0.0)
    return LogStatusStore(objects, PARTITIONS, **kw)


def test_every_transition_reads_back_and_keeps_the_creation_time(objects: MemoryObjects) -> None:
    store = make(objects)
    (iid,) = ids_on(1, 1)
    assert store.get(iid) is None
    assert store.put_pending(rec(iid, "pending", 0.5))
    assert not store.put_pending(rec(iid, "pending", 0.6))  # recorded once
    got = store.get(iid)
    assert got is not None and (got.status, got.created) == ("pending", 0.5)
    w = Writer(store, 1)
    for n, status in enumerate(("running", "completed"), start=1):
        w.commit(rec(iid, status, float(n), result=n if status == "completed" else None))
        got = store.get(iid)
        assert got is not None and (got.status, got.created, got.updated) == (status, 0.5,
                                                                               float(n))
    assert got is not None and got.result == 2
    assert not store.put_pending(rec(iid, "pending", 9.0))  # committed: exists
    for status in ("failed", "terminated"):
        (other,) = ids_on(1, 1, stem=status)
        w.commit(rec(other, status, 5.0, error={"type": "X"}))
        found = store.get(other)
        assert found is not None and found.status == status and found.error == {"type": "X"}


def test_one_object_per_commit_whatever_it_changed(objects: MemoryObjects) -> None:
    store = make(objects, fold_every=1000)
    w = Writer(store, 0)
    w.commit(*[rec(i) for i in ids_on(0, 50)])
    w.commit(*[rec(i, "completed", 2.0) for i in ids_on(0, 50)])
    assert objects.creates == 2
    assert {r.status for r in store.query(StatusQuery(limit=1000))} == {"completed"}


def test_a_commit_published_again_keeps_its_first_publication(objects: MemoryObjects) -> None:
    """A crash between commit and publish: the next invocation publishes the same commit
    again, stamped later. Records are ordered by commit number, not by clock."""
    store = make(objects)
    (iid,) = ids_on(2, 1)
    store.publish([rec(iid, "running", 1.0)], health(2, 1))
    store.publish([rec(iid, "completed", 2.0)], health(2, 2))
    late = make(objects)  # another process, republishing commit 1 later (a newer clock)
    late.publish([rec(iid, "running", 99.0)], health(2, 1))
    got = store.get(iid)
    assert got is not None and got.status == "completed"
    assert late.get(iid) == got
    assert [h.number for h in store.health()] == [2]


def test_a_publish_without_a_commit_number_is_refused(objects: MemoryObjects) -> None:
    with pytest.raises(ValueError, match="commit's number"):
        make(objects).publish([], PartitionHealth(0, "v", 1.0))


def test_query_filters_and_pages_across_partitions(objects: MemoryObjects) -> None:
    store = make(objects, fold_every=4)
    everything: list[StatusRecord] = []
    for p in range(PARTITIONS):
        w = Writer(store, p)
        for n, iid in enumerate(ids_on(p, 12, stem=f"q{p}-")):
            record = rec(iid, "completed" if n % 2 else "running", float(n),
                         name="A" if n < 6 else "B")
            w.commit(record)
            everything.append(record)
    everything.sort(key=lambda r: r.instance_id)

    def ids(q: StatusQuery) -> list[str]:
        return [r.instance_id for r in store.query(q)]

    assert ids(StatusQuery(limit=1000)) == [r.instance_id for r in everything]
    assert ids(StatusQuery(status="completed", name="B", limit=1000)) == [
        r.instance_id for r in everything if r.status == "completed" and r.name == "B"]
    assert ids(StatusQuery(since=3.0, until=6.0, limit=1000)) == [
        r.instance_id for r in everything if 3.0 <= r.created < 6.0]
    pages: list[str] = []
    after = None
    while page := ids(StatusQuery(limit=5, after=after)):
        assert len(page) <= 5
        pages += page
        after = page[-1]
    assert pages == [r.instance_id for r in everything]


def test_folds_rewrite_only_the_shards_that_changed(objects: MemoryObjects) -> None:
    store = make(objects, fold_every=5, shards=8)
    w = Writer(store, 0)
    many = ids_on(0, 200)
    for chunk in range(0, 200, 40):
        w.commit(*[rec(i, "completed", 1.0, result=i) for i in many[chunk:chunk + 40]])
    assert len(objects.under("/s/")) == 0  # folded at the fifth commit, segments deleted
    assert len(objects.under("/x/")) == 8
    (one,) = ids_on(0, 1, stem="late")
    before = set(objects.under("/x/"))
    for _ in range(5):
        w.commit(rec(one, "running", 2.0))
    after = set(objects.under("/x/"))
    assert len(after - before) == 1 and before <= after  # one shard rewritten
    for _ in range(5):
        w.commit(rec(one, "running", 3.0))  # the next fold deletes what the last replaced
    now = set(objects.under("/x/"))
    assert len(before - now) == 1 and len(now) == 8 + 1  # 8 live, the last replaced one
    assert len(objects.under("/m/")) == 1
    for iid in many:
        got = store.get(iid)
        assert got is not None and got.result == iid
    assert len(store.query(StatusQuery(limit=1000))) == 201


def test_purge_is_for_good(objects: MemoryObjects) -> None:
    store = make(objects, fold_every=3, shards=1)
    w = Writer(store, 0)
    done, running = ids_on(0, 2)
    first = w.commit(rec(done, "running"), rec(running, "running"))
    w.commit(rec(done, "completed", 2.0))
    assert not store.purge(running)  # not finished
    assert not store.purge("never-known")
    assert store.purge(done) and store.get(done) is None
    assert not store.purge(done)
    assert done not in [r.instance_id for r in store.query(StatusQuery(limit=100))]
    w.commit(rec(running, "completed", 3.0))  # the third commit folds, applying it
    assert store.get(done) is None
    for _ in range(3):
        w.commit(rec(running, "completed", 4.0))  # the next fold deletes the tombstone
    assert store.get(done) is None and objects.under("/t/") == []
    # the first commit published again late (its segment was folded away): still gone
    make(objects).publish([rec(done, "running", 50.0)], health(0, first))
    assert store.get(done) is None
    w.commit(rec(done, "running", 9.0))  # started again later: a new life
    got = store.get(done)
    assert got is not None and got.updated == 9.0


def test_a_pending_record_is_folded_away_keeping_its_creation_time(
    objects: MemoryObjects,
) -> None:
    store = make(objects, fold_every=2)
    (iid,) = ids_on(0, 1)
    store.put_pending(rec(iid, "pending", 0.25))
    w = Writer(store, 0)
    w.commit(rec(iid, "running", 1.0))
    w.commit(rec(iid, "completed", 2.0))  # folds
    assert objects.under("/w/") == []
    got = store.get(iid)
    assert got is not None and (got.status, got.created) == ("completed", 0.25)


def test_a_committed_instance_is_read_without_its_pending_record(
    objects: MemoryObjects,
) -> None:
    """The pending record's creation time is in its key: until a fold deletes it, a
    status read of the committed instance costs no GET of it."""
    store = make(objects, fold_every=1000)
    (iid,) = ids_on(0, 1)
    assert store.put_pending(rec(iid, "pending", 0.25))
    Writer(store, 0).commit(rec(iid, "running", 1.0))
    got = make(objects).get(iid)  # another process: nothing cached
    assert got is not None and (got.status, got.created) == ("running", 0.25)
    assert len(objects.under("/w/")) == 1
    assert [k for k in objects.read_keys if "/w/" in k] == []


def test_a_reader_racing_a_fold_sees_every_status(objects: MemoryObjects) -> None:
    writer = make(objects, fold_every=1000)
    reader = make(objects)
    w = Writer(writer, 1)
    iids = ids_on(1, 30)
    for n, iid in enumerate(iids):
        w.commit(rec(iid, "completed", float(n), result=n))
    for probe in (iids[0], iids[-1]):
        reader.get(probe)  # the reader caches some segments, not the index
        objects.on_list = lambda: writer.fold(1)  # the fold lands between LIST and GETs
        got = reader.get(probe)
        assert got is not None and got.result == iids.index(probe)
        w.commit(rec(f"x{probe}", "running"))
    objects.on_list = lambda: writer.fold(1)
    assert len(reader.query(StatusQuery(limit=1000))) == 30 + 2


def test_health_is_the_latest_and_unchanged_health_is_not_rewritten(
    objects: MemoryObjects,
) -> None:
    store = make(objects, health_interval=3600)
    w = Writer(store, 0)
    w.commit()
    w.commit()  # nothing changed: no object
    assert objects.creates == 1 and [h.number for h in store.health()] == [1]
    w.commit(next_due=9.0)  # a timer the schedule acts on: written at once
    Writer(store, 2).commit()
    assert [(h.partition, h.number, h.next_due) for h in store.health()] == [
        (0, 3, 9.0), (2, 1, None)]


def test_a_gap_opening_or_closing_is_published_at_once(objects: MemoryObjects) -> None:
    """Held messages (a gap in a sender's stream) are news for an operator: the health
    that shows them, and the one that shows them gone, are written without waiting for
    ``health_interval``; a count that only moves is not."""
    store = make(objects, health_interval=3600)
    w = Writer(store, 0)
    w.commit()
    w.commit(held=2, held_since=5.0)
    assert [(h.held, h.held_since) for h in store.health()] == [(2, 5.0)]
    w.commit(held=3, held_since=5.0)  # still a gap: not rewritten
    assert [(h.number, h.held) for h in store.health()] == [(2, 2)]
    w.commit()
    assert [(h.held, h.held_since) for h in store.health()] == [(0, None)]


def test_repeated_reads_cost_two_lists_each(objects: MemoryObjects) -> None:
    """The instance's own records and the partition's log; cached objects are not read
    again."""
    store = make(objects, fold_every=4)
    w = Writer(store, 0)
    iids = ids_on(0, 10)
    for iid in iids:
        w.commit(rec(iid))
    reader = make(objects)
    reader.get(iids[-1])
    reads, lists = objects.reads, objects.lists
    for _ in range(5):
        reader.get(iids[-1])
    assert (objects.reads, objects.lists) == (reads, lists + 2 * 5)


@pytest.mark.parametrize("seed", range(80))
def test_random_schedules_match_a_model(objects: MemoryObjects, seed: int) -> None:
    """Commits with re-publications out of order, pending records (alone and in
    batches), purges, folds at any moment and readers in other processes: every read
    equals the model's answer."""
    rng = random.Random(seed)
    writers = [make(objects, fold_every=rng.randint(1, 6), shards=rng.choice([1, 2, 4]))
               for _ in range(2)]
    reader = make(objects)
    iids = [f"r{n}" for n in range(12)]
    number = dict.fromkeys(range(PARTITIONS), 0)
    published: dict[int, list[tuple[int, list[StatusRecord]]]] = {p: [] for p in number}
    model: dict[str, StatusRecord] = {}
    life: dict[str, int] = {}  # the commit of each instance's latest record
    clock = 0.0
    for _ in range(120):
        clock += 1.0
        action = rng.random()
        iid = rng.choice(iids)
        p = place_text(iid, PARTITIONS)
        if action < 0.1:
            created = iid not in model
            assert reader.put_pending(rec(iid, "pending", clock)) == created
            if created:
                model[iid] = rec(iid, "pending", clock)
        elif action < 0.2:  # a batch of starts, some of one partition, maybe repeated
            batch = [iid, *rng.sample(iids, rng.randint(1, 5)), iid]
            expected = []
            for other in batch:
                expected.append(other not in model)
                if other not in model:
                    model[other] = rec(other, "pending", clock)
            assert rng.choice([reader, *writers]).put_pending_all(
                [rec(other, "pending", clock) for other in batch]) == expected
        elif action < 0.6:
            status = rng.choice(["running", "completed", "failed"])
            number[p] += 1
            record = rec(iid, status, clock, result=clock)
            rng.choice(writers).publish([record], health(p, number[p]))
            published[p].append((number[p], [record]))
            old = model.get(iid)
            model[iid] = record if old is None else StatusRecord(
                iid, record.name, record.status, p, old.created, clock, result=clock)
            life[iid] = number[p]
        elif action < 0.75 and published[p]:
            n, records = rng.choice(published[p])  # a commit published again, later
            stamped = [StatusRecord(r.instance_id, r.name, r.status, p, clock, clock)
                       for r in records]
            rng.choice(writers).publish(stamped, health(p, n))
        elif action < 0.85:
            done = iid in model and model[iid].status in ("completed", "failed")
            assert reader.purge(iid) == done
            if done:
                del model[iid]
        elif action < 0.9:
            rng.choice(writers).fold(p)
        got = rng.choice([reader, make(objects)]).get(iid)
        assert got == model.get(iid), (seed, iid)
    listed = reader.query(StatusQuery(limit=1000))
    assert listed == sorted(model.values(), key=lambda r: r.instance_id)


@pytest.mark.parametrize("stalled_sees_more", [False, True])
def test_two_writers_folding_at_once_lose_nothing(
    objects: MemoryObjects, stalled_sees_more: bool
) -> None:
    """One writer stalls inside a fold (after its LIST) while the other publishes and
    folds; the stalled one then finishes its fold. Every status stays readable, then and
    after later folds."""
    a = make(objects, fold_every=1000, shards=2)
    b = make(objects, fold_every=1000, shards=2)
    iids = ids_on(0, 12)
    number = 0
    expected: dict[str, int] = {}

    def commit(store: LogStatusStore, iid: str) -> None:
        nonlocal number
        number += 1
        store.publish([rec(iid, "completed", float(number), result=number)],
                      health(0, number))
        expected[iid] = number

    for iid in iids[:4]:  # both writers have these segments cached
        commit(a, iid)
        b._segment(0, number)
    stalled, other = (a, b) if stalled_sees_more else (b, a)

    def meanwhile() -> None:
        for iid in iids[4:7]:
            commit(other, iid)
        assert other.fold(0)

    if stalled_sees_more:
        for iid in iids[4:6]:  # the stalled writer lists more segments than ...
            commit(stalled, iid)

        def meanwhile_smaller() -> None:  # ... the one that folds first, listing less
            objects.on_list = None
            assert other.fold(0)
            commit(other, iids[6])
        objects.on_list = meanwhile_smaller
        # the other writer lists first: stage it by letting it fold inside our LIST
        stalled.fold(0)
    else:
        objects.on_list = meanwhile
        stalled.fold(0)
    reader = make(objects)
    for iid, n in expected.items():
        got = reader.get(iid)
        assert got is not None and got.result == n, iid
    for iid in iids[7:]:
        commit(a, iid)
        a.fold(0)
        b.fold(0)
    assert {r.instance_id: r.result for r in reader.query(StatusQuery(limit=100))} == expected


class S3Priced(MemoryObjects):
    """The in-memory store, counting requests as S3 bills them (a LIST answers at most
    ``page`` keys per request) and the keys LISTs answered."""

    def __init__(self, page: int = 1000) -> None:
        super().__init__()
        self.page = page
        self.list_pages = 0
        self.listed = 0

    def list_keys(self, prefix: str) -> list[str]:
        keys = super().list_keys(prefix)
        self.list_pages += max(1, -(-len(keys) // self.page))
        self.listed += len(keys)
        return keys

    def cost(self) -> tuple[int, int, int]:
        return self.list_pages + self.creates, self.lists, self.listed


def test_a_start_costs_the_same_however_many_starts_came_before() -> None:
    """A client's start (``get`` then ``put_pending``, as SeamClient.start does) costs
    as many requests, answering as many keys, after thousands of starts still waiting
    as after none: a partition's waiting starts are not listed by every later start."""
    objects = S3Priced()
    store = make(objects, fold_every=4)
    w = Writer(store, 0)
    ids = iter(ids_on(0, 2700))

    def start(iid: str) -> None:
        assert store.get(iid) is None
        assert store.put_pending(rec(iid, "pending", 0.5))

    def started_and_folded(waiting: int, committed: int) -> None:
        """Starts that stay pending, then starts committed in four commits (a fold)."""
        for _ in range(waiting):
            start(next(ids))
        done = [next(ids) for _ in range(committed)]
        for iid in done:
            start(iid)
        for n in range(4):
            w.commit(*[rec(iid) for iid in done[n::4]])

    def per_start(count: int = 10) -> tuple[int, int, int]:
        before = objects.cost()
        for _ in range(count):
            start(next(ids))
        after = objects.cost()
        return after[0] - before[0], after[1] - before[1], after[2] - before[2]

    started_and_folded(waiting=0, committed=100)
    first = per_start()
    started_and_folded(waiting=2400, committed=100)
    assert len(objects.under("/w/")) > 2400  # the waiting starts are there
    assert per_start() == first


# -- batches of starts ---------------------------------------------------------------------------

def pending_all(store: LogStatusStore, iids: Sequence[str], at: float) -> list[bool]:
    return store.put_pending_all([rec(i, "pending", at + n / 100) for n, i in enumerate(iids)])


def test_a_batch_of_starts_writes_one_object_per_partition(objects: MemoryObjects) -> None:
    store = make(objects)
    starts = ids_on(0, 20) + ids_on(2, 5, stem="j")
    assert pending_all(store, starts, 1.0) == [True] * 25
    assert objects.creates == 2
    reader = make(objects)  # another process: nothing cached
    for n, iid in enumerate(starts):
        got = reader.get(iid)
        assert got is not None and (got.status, got.created) == ("pending", 1.0 + n / 100)
    assert {r.instance_id for r in reader.query(StatusQuery(limit=100))} == set(starts)
    lone = ids_on(1, 1)[0]  # one start of a partition: a record of its own, as before
    assert store.put_pending_all([rec(lone, "pending", 3.0)]) == [True]
    assert len(objects.under("/w/")) == 3 and len(objects.under(f"/{lone.encode().hex()}/")) == 1


def test_duplicate_ids_in_and_across_batches_are_recorded_once(objects: MemoryObjects) -> None:
    store = make(objects, fold_every=1000)
    a, b, c, d = ids_on(0, 4)
    assert store.put_pending_all(
        [rec(a, "pending", 1.0), rec(b, "pending", 1.1), rec(a, "pending", 1.2)]
    ) == [True, True, False]
    other = make(objects)  # another client, knowing nothing
    assert other.put_pending_all(
        [rec(b, "pending", 2.0), rec(c, "pending", 2.1), rec(d, "pending", 2.2)]
    ) == [False, True, True]
    Writer(store, 0).commit(rec(c, "running", 3.0))
    assert other.put_pending_all([rec(a, "pending", 4.0), rec(c, "pending", 4.0)]) == [
        False, False]
    assert not other.put_pending(rec(d, "pending", 4.0))
    assert len(objects.under("/w/")) == 2
    reader = make(objects)
    got = {iid: reader.get(iid) for iid in (a, b, c, d)}
    assert {iid: (r.status, r.created) for iid, r in got.items() if r is not None} == {
        a: ("pending", 1.0), b: ("pending", 1.1), c: ("running", 2.1), d: ("pending", 2.2)}


def test_a_batch_whose_other_starts_commit_after_a_purge_is_deleted(
    objects: MemoryObjects,
) -> None:
    store = make(objects, fold_every=2, shards=2)
    done, waiting = ids_on(2, 2)
    pending_all(store, [done, waiting], 1.0)
    w = Writer(store, 2)
    w.commit(rec(done, "completed", 2.0))
    assert store.purge(done)
    w.commit(rec(waiting, "completed", 3.0))  # folds: the batch is of no use any more
    assert objects.under("/w/") == [] and objects.under("/b/") == []
    assert make(objects).get(done) is None
    got = make(objects).get(waiting)
    assert got is not None and (got.status, got.created) == ("completed", 1.01)


class Staged(MemoryObjects):
    """Runs ``when[prefix]`` once, right after a LIST of exactly that prefix answered."""

    def __init__(self) -> None:
        super().__init__()
        self.when: dict[str, Callable[[], object]] = {}

    def list_keys(self, prefix: str) -> list[str]:
        keys = super().list_keys(prefix)
        hook = self.when.pop(prefix, None)
        if hook is not None:
            hook()
        return keys


def log_of(partition: int) -> str:
    return f"status/p{partition:04d}/"


def test_racing_clients_batch_and_record_of_its_own_the_earliest_counts() -> None:
    """Two clients both find the id unknown: one writes a record of its own, the other a
    batch; readers take the earliest, before and after the commit and its fold."""
    objects = Staged()
    store = make(objects, fold_every=2)
    a, b = ids_on(0, 2)
    # the other client writes once this one has read everything it reads
    objects.when[log_of(0)] = lambda: store.put_pending(rec(a, "pending", 2.0))
    assert make(objects).put_pending_all([rec(a, "pending", 1.5), rec(b, "pending", 1.7)]) == [
        True, True]
    assert len(objects.under("/w/")) == 2  # the batch and a's record of its own
    got = make(objects).get(a)
    assert got is not None and (got.status, got.created) == ("pending", 1.5)
    w = Writer(store, 0)
    w.commit(rec(a, "running", 3.0), rec(b, "running", 3.0))
    for reader in (store, make(objects)):
        got = reader.get(a)
        assert got is not None and (got.status, got.created) == ("running", 1.5)
    w.commit(rec(a, "completed", 4.0))  # folds: both pending objects go
    assert objects.under("/w/") == []
    got = make(objects).get(a)
    assert got is not None and (got.status, got.created) == ("completed", 1.5)


def test_the_fold_deletes_a_batch_once_all_its_starts_are_committed(
    objects: MemoryObjects,
) -> None:
    store = make(objects, fold_every=2, shards=4)
    iids = ids_on(0, 6)
    pending_all(store, iids, 1.0)
    (batch,) = objects.under("/w/")
    w = Writer(store, 0)
    reader = make(objects)
    for step in range(3):  # two instances committed per step, a fold every step
        w.commit(rec(iids[2 * step], "running", 10.0 + step))
        w.commit(rec(iids[2 * step + 1], "completed", 10.0 + step, result=step))
        assert (batch in objects.data) == (step < 2)
        for n, iid in enumerate(iids):
            got = reader.get(iid)
            assert got is not None and got.created == 1.0 + n / 100
            committed = n < 2 * step + 2
            assert got.status == ("pending" if not committed else
                                  "running" if n % 2 == 0 else "completed"), (step, iid)
    assert objects.under("/w/") == []
    assert [r.created for r in make(objects).query(StatusQuery(limit=100))] == sorted(
        1.0 + n / 100 for n in range(6))


def test_a_purged_instance_in_a_live_batch_stays_gone_until_started_again(
    objects: MemoryObjects,
) -> None:
    store = make(objects, fold_every=2, shards=1)
    done, waiting, again = ids_on(0, 3)
    pending_all(store, [done, waiting], 1.0)
    w = Writer(store, 0)
    w.commit(rec(done, "completed", 2.0))
    assert store.purge(done) and store.get(done) is None
    for _ in range(4):  # folds apply the tombstone, then delete it
        w.commit(rec(again, "running", 3.0))
    assert objects.under("/t/") == [] and len(objects.under("/w/")) == 1  # waiting: kept
    for reader in (store, make(objects)):
        assert reader.get(done) is None
        assert done not in {r.instance_id for r in reader.query(StatusQuery(limit=100))}
    assert pending_all(store, [done, again], 5.0) == [True, False]  # a new life
    got = make(objects).get(done)
    assert got is not None and (got.status, got.created) == ("pending", 5.0)
    w.commit(rec(waiting, "completed", 6.0), rec(done, "running", 6.0))
    w.commit(rec(done, "completed", 7.0))  # folds: both batches go, and the mark
    assert objects.under("/w/") == [] and objects.under("/b/") == []
    got = make(objects).get(done)
    assert got is not None and (got.status, got.created) == ("completed", 5.0)
    waited = make(objects).get(waiting)
    assert waited is not None and (waited.status, waited.created) == ("completed", 1.01)


@pytest.mark.parametrize("how", ["get", "query", "start"])
def test_a_reader_racing_a_fold_that_deletes_a_batch(how: str) -> None:
    """The fold lands between a reader's LIST of the partition's log (which showed the
    batch and the segments) and its GETs: the reader lists again and sees every status."""
    objects = Staged()
    writer = make(objects, fold_every=1000)
    iids = ids_on(1, 5)
    pending_all(writer, iids, 1.0)
    w = Writer(writer, 1)
    for iid in iids:
        w.commit(rec(iid, "completed", 2.0, result=iid))
    (batch,) = objects.under("/w/")
    reader = make(objects)  # has the segments, not the batch: that GET finds it gone
    for n in range(1, w.number + 1):
        reader._segment(1, n)
    objects.when[log_of(1)] = lambda: writer.fold(1)
    if how == "get":
        got = reader.get(iids[2])
        assert got is not None and (got.status, got.created, got.result) == (
            "completed", 1.02, iids[2])
    elif how == "query":
        found = reader.query(StatusQuery(limit=100))
        assert {r.instance_id: (r.status, r.created) for r in found} == {
            i: ("completed", 1.0 + n / 100) for n, i in enumerate(iids)}
    else:
        assert pending_all(reader, iids, 0.5) == [False] * 5  # all known: nothing written
    assert objects.under("/w/") == [] and objects.under("/s/") == []
    assert objects.read_keys.count(batch) == 1  # listed, then gone: it listed again
