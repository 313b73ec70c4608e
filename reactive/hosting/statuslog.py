"""A status store written once per commit, over any object store (S3, Blob Storage).

Each partition keeps, under ``<root>p<partition>/``:

- ``s/<n>``: a *segment* per commit ``n`` (the commit's number in the partition's history,
  :attr:`PartitionHealth.number`) holding the status changes of that commit and the
  partition's health. It is created if absent, so a commit published twice (a crash
  between commit and publish makes the next invocation publish again) writes one object;
  a stale invocation never publishes (its fenced commit failed), so a number names one
  commit. Readers order records by commit number, never by clock.
- ``m/<n>``: a *manifest* saying which index shard objects hold the state as of commit
  ``n``, written by a *fold*: every ``fold_every`` segments the writer merges the
  segments into the shards they touch (``<root>x/p<partition>/<shard>/<n>-<token>``, a
  shard per ``stable_digest(id) % shards``), creates the manifest, then deletes the
  segments it covers (what it replaced in the index goes one fold later). Only the
  changed shards are rewritten.
- ``w/<created>_<token>``: a *batch* of ``pending`` records (starts submitted together,
  not yet processed: :meth:`LogStatusStore.put_pending_all` writes one per partition per
  call instead of an object per start). It lies in the partition's log so that the LIST
  every read makes finds it at no extra request; there are as many as submissions, not
  starts, waiting. An entry is superseded by any committed record of its instance; the
  fold deletes the batch once every instance in it has a committed record in the
  manifest it makes (or was purged), and not before: a start not yet processed stays
  ``pending``. ``created`` is the earliest creation time in it.

and, under ``<root>i/p<partition>/<id>/`` (apart, so that the partition's LIST above stays
as short as one fold's worth of segments however many single starts wait):

- ``w/<created>_<token>``: a single start's ``pending`` record (``put_pending``, or a
  batch call with one start for the partition), superseded by any committed record and
  deleted by the fold that covers one. The token makes each one a new object, so that it
  is immutable too (an id may be started again after a purge); of several pending
  records (here or in batches), the earliest counts. Its creation time (``float.hex``) is
  in the key: a reader that has the committed record, which takes the creation time of
  the earliest pending one, needs no GET (a batch is read once, unless its key shows
  nothing in it is earlier).
- ``t/<n>``: a purge *tombstone*: records of that instance from commits up to ``n`` are
  gone; the first fold that rewrites the instance's shard drops them from the index, and
  the next one deletes the tombstone.
- ``b/<batch name>``: a purge's *mark* that the instance's entry in that batch is of its
  purged life (the purge cannot delete a batch other starts still need). The marks are
  created before the tombstone, so the instance never reads as pending again in
  between; a start after the purge is in a later batch, which no mark names. The fold
  deletes a mark after its batch, so that a reader missing the mark misses the batch.

Every object is immutable, so readers cache them: a repeated read of one instance costs
two LISTs (its own records, then the partition's log: in that order, so that a fold
deleting a pending record between them has already made the manifest that covers it)
plus the segments and batches that are new since, whatever the number of earlier starts.
A reader that loses an object to a fold (a segment or batch deleted between its LIST and
its GET) lists again: the manifest that replaced it covers the same commits. Instances
are placed by id (:func:`reactive.placement.place_text`), so ``get`` reads one partition.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from reactive.hosting.memory import matches
from reactive.hosting.seams import PartitionHealth, StatusQuery, StatusRecord
from reactive.placement import place_text, stable_digest

DONE = frozenset({"completed", "failed", "terminated"})
FOLD_EVERY = 64  # segments a partition accumulates before the writer folds them
SHARDS = 16  # index shards per partition
HEALTH_INTERVAL = 5.0  # seconds a partition's health may lag when nothing in it changed
ATTEMPTS = 8  # views retried when a fold deletes what a reader listed
CACHE_BYTES = 64 << 20  # immutable objects kept decoded per store
LIST_EACH = 8  # ids of a partition a batch of starts lists one by one (more: the whole)


class ObjectStore(Protocol):
    """What the algorithm needs from a bucket or container; keys are ``/``-separated."""

    def create(self, key: str, data: bytes) -> bool:
        """Store ``data`` under ``key`` if nothing is there; False if something is."""

    def read(self, key: str) -> bytes | None:
        """The object's bytes, None if absent."""

    def list_keys(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``, in any order."""

    def delete(self, keys: Sequence[str]) -> None:
        """Remove these keys; absent ones are no error."""


class StatusLogError(RuntimeError):
    """A partition's status objects kept changing under a reader."""


# -- encoding ------------------------------------------------------------------------------------

def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()


def _hex(instance_id: str) -> str:
    """Hex of the id's UTF-8: any id is a valid key, and key order is id order."""
    return instance_id.encode().hex()


def _unhex(text: str) -> str:
    return bytes.fromhex(text).decode()


def _number(text: str) -> int:
    return int(text)


def _fixed(n: int) -> str:
    return f"{n:012d}"


Entry = tuple[int, StatusRecord]
"""A committed record with the number of the commit that published it."""


def _merge(old: Entry | None, new: Entry) -> Entry:
    """The later commit wins; the instance keeps the creation time of its first record."""
    if old is None:
        return new
    first, last = (old, new) if new[0] >= old[0] else (new, old)
    return last[0], replace(last[1], created=min(first[1].created, last[1].created))


@dataclass
class _View:
    """What one LIST of a partition shows, with the objects read for it."""

    manifest: int | None = None
    manifest_key: str | None = None
    segments: list[int] = field(default_factory=list)  # newer than the manifest, in order
    stale_segments: list[int] = field(default_factory=list)  # covered by the manifest
    old_manifests: list[str] = field(default_factory=list)
    pending: dict[str, list[str]] = field(default_factory=dict)  # hex id -> keys
    batches: list[str] = field(default_factory=list)  # keys of the partition's batches
    hidden: dict[str, set[str]] = field(default_factory=dict)  # hex id -> batch names
    hide_keys: list[tuple[str, str]] = field(default_factory=list)  # (batch name, key)
    tombstones: dict[str, int] = field(default_factory=dict)  # hex id -> purged up to
    tombstone_keys: list[tuple[str, str]] = field(default_factory=list)  # (hex id, key)


class _Cache:
    """Decoded immutable objects, least recently used out past a byte budget."""

    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self.budget = budget
        self._items: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Any:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, size: int, value: Any) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (size, value)
            self._bytes += size
            while self._bytes > self.budget and len(self._items) > 1:
                _, (dropped, _) = self._items.popitem(last=False)
                self._bytes -= dropped


class _Missing(Exception):
    """An object listed a moment ago is gone: a fold replaced it."""


class LogStatusStore:
    """Implements :class:`reactive.hosting.seams.StatusStore` over an :class:`ObjectStore`:
    one object per commit (see the module's text)."""

    def __init__(
        self,
        objects: ObjectStore,
        partitions: int,
        root: str = "status/",
        pool: ThreadPoolExecutor | None = None,
        fold_every: int = FOLD_EVERY,
        shards: int = SHARDS,
        health_interval: float = HEALTH_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.objects = objects
        self.partitions = partitions
        self.root = root
        self.fold_every = fold_every
        self.shards = shards
        self.health_interval = health_interval
        self.clock = clock
        self._own_pool = pool is None
        self._pool = pool or ThreadPoolExecutor(16, thread_name_prefix="reactive-status")
        # per-partition reads run here and use ``_pool`` for their objects: one pool for
        # both could fill up with waiters whose work is queued behind them
        self._outer = ThreadPoolExecutor(8, thread_name_prefix="reactive-status-p")
        self._cache = _Cache()
        self._unfolded: dict[int, int] = {}  # partition -> segments since the last fold
        self._health_written: dict[int, tuple[float, tuple[Any, ...]]] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._outer.shutdown(wait=True)
        if self._own_pool:
            self._pool.shutdown(wait=True)

    # -- keys --------------------------------------------------------------------------------

    def _prefix(self, partition: int) -> str:
        return f"{self.root}p{partition:04d}/"

    def _segment_key(self, partition: int, n: int) -> str:
        return f"{self._prefix(partition)}s/{_fixed(n)}"

    def _manifest_key(self, partition: int, n: int) -> str:
        return f"{self._prefix(partition)}m/{_fixed(n)}"

    def _ids_prefix(self, partition: int) -> str:
        return f"{self.root}i/p{partition:04d}/"

    def _id_prefix(self, partition: int, instance_id: str) -> str:
        return f"{self._ids_prefix(partition)}{_hex(instance_id)}/"

    def _pending_key(self, partition: int, record: StatusRecord) -> str:
        return (f"{self._id_prefix(partition, record.instance_id)}w/"
                f"{float(record.created).hex()}_{uuid.uuid4().hex[:12]}")

    def _batch_key(self, partition: int, records: Sequence[StatusRecord]) -> str:
        created = min(float(r.created) for r in records)
        return f"{self._prefix(partition)}w/{created.hex()}_{uuid.uuid4().hex[:12]}"

    def _hide_key(self, partition: int, instance_id: str, batch_key: str) -> str:
        return f"{self._id_prefix(partition, instance_id)}b/{_name(batch_key)}"

    def _tombstone_key(self, partition: int, instance_id: str, n: int) -> str:
        return f"{self._id_prefix(partition, instance_id)}t/{_fixed(n)}"

    def _shard_key(self, partition: int, shard: int, n: int) -> str:
        return f"{self.root}x/p{partition:04d}/{shard:04d}/{_fixed(n)}-{uuid.uuid4().hex[:12]}"

    def owner(self, instance_id: str) -> int:
        return place_text(instance_id, self.partitions)

    @staticmethod
    def shard_of(instance_id: str, shards: int) -> int:
        return stable_digest(instance_id) % shards

    # -- reading objects ---------------------------------------------------------------------

    def _immutable(self, key: str, decode: Callable[[bytes], Any]) -> Any:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        data = self.objects.read(key)
        if data is None:
            raise _Missing(key)
        value = decode(data)
        self._cache.put(key, len(data), value)
        return value

    def _segment(self, partition: int, n: int) -> tuple[list[StatusRecord], PartitionHealth]:
        def decode(data: bytes) -> tuple[list[StatusRecord], PartitionHealth]:
            body = json.loads(data)
            return ([StatusRecord(**r) for r in body["records"]],
                    PartitionHealth(**body["health"]))
        return self._immutable(self._segment_key(partition, n), decode)  # type: ignore[no-any-return]

    def _manifest(self, key: str) -> dict[str, Any]:
        return self._immutable(key, json.loads)  # type: ignore[no-any-return]

    def _shard(self, key: str) -> dict[str, Entry]:
        def decode(data: bytes) -> dict[str, Entry]:
            return {iid: (n, StatusRecord(**r)) for iid, (n, r) in json.loads(data).items()}
        return self._immutable(key, decode)  # type: ignore[no-any-return]

    def _batch(self, key: str) -> dict[str, StatusRecord]:
        def decode(data: bytes) -> dict[str, StatusRecord]:
            found: dict[str, StatusRecord] = {}
            for body in json.loads(data)["records"]:
                record = StatusRecord(**body)
                found[record.instance_id] = _earliest(found.get(record.instance_id), record)
            return found
        return self._immutable(key, decode)  # type: ignore[no-any-return]

    def _batched(self, view: _View, keys: Sequence[str],
                 only: Collection[str] | None) -> dict[str, StatusRecord]:
        """The earliest entry of each instance (of ``only``, None: of all) in the batches
        ``keys``, leaving out entries a purge hid."""
        found: dict[str, StatusRecord] = {}
        for key, entries in zip(keys, self._pool.map(self._batch, keys), strict=True):
            name = _name(key)
            for iid, record in entries.items():
                if (only is None or iid in only) and name not in view.hidden.get(_hex(iid), ()):
                    found[iid] = _earliest(found.get(iid), record)
        return found

    def _id_keys(self, partition: int, ids: Sequence[str] | None) -> list[str]:
        """The pending records and tombstones of ``ids`` (None: of every instance of the
        partition): a LIST per id, or one of the whole partition past ``LIST_EACH``."""
        if ids is None or len(ids) > LIST_EACH:
            return self.objects.list_keys(self._ids_prefix(partition))
        if len(ids) == 1:
            return self.objects.list_keys(self._id_prefix(partition, ids[0]))
        lists = self._pool.map(lambda i: self.objects.list_keys(self._id_prefix(partition, i)),
                               ids)
        return [key for keys in lists for key in keys]

    def _view(self, partition: int, ids: Sequence[str] | None = (),
              log: bool = True) -> _View:
        """What the partition holds for ``ids`` (None: for all of them) and, if ``log``, its
        manifest and segments. The ids are listed first: a fold creates its manifest
        before it deletes the pending records it covers, so a record missing from the
        first LIST is in what the second one finds."""
        view = _View()
        ids_prefix = self._ids_prefix(partition)
        for key in self._id_keys(partition, ids) if ids is None or ids else []:
            hexid, _, rest = key[len(ids_prefix):].partition("/")
            kind, _, name = rest.partition("/")
            if kind == "w":
                view.pending.setdefault(hexid, []).append(key)
            elif kind == "t":
                view.tombstones[hexid] = max(view.tombstones.get(hexid, 0), _number(name))
                view.tombstone_keys.append((hexid, key))
            elif kind == "b":
                view.hidden.setdefault(hexid, set()).add(name)
                view.hide_keys.append((name, key))
        if not log:
            return view
        prefix = self._prefix(partition)
        manifests: list[int] = []
        segments: list[int] = []
        for key in self.objects.list_keys(prefix):
            kind, _, name = key[len(prefix):].partition("/")
            if kind == "m":
                manifests.append(_number(name))
            elif kind == "s":
                segments.append(_number(name))
            elif kind == "w":
                view.batches.append(key)
        manifests.sort()
        if manifests:
            view.manifest = manifests[-1]
            view.manifest_key = self._manifest_key(partition, manifests[-1])
            view.old_manifests = [self._manifest_key(partition, m) for m in manifests[:-1]]
        floor = view.manifest or 0
        view.segments = sorted(n for n in segments if n > floor)
        view.stale_segments = sorted(n for n in segments if n <= floor)
        return view

    def _retrying(self, partition: int, ids: Sequence[str] | None,
                  read: Callable[[_View], Any]) -> Any:
        """``read`` over a fresh view of ``ids`` (None: every id), again if a fold deleted
        what the view listed."""
        for _ in range(ATTEMPTS):
            view = self._view(partition, ids)
            try:
                return read(view)
            except _Missing:
                continue
        raise StatusLogError(f"partition {partition}: status objects kept changing under "
                             f"{ATTEMPTS} reads")

    def _records(self, partition: int, view: _View, only: str | None) -> dict[str, Entry]:
        """The committed records of a partition (or of instance ``only``), tombstones
        applied."""
        found: dict[str, Entry] = {}
        if view.manifest_key is not None:
            manifest = self._manifest(view.manifest_key)
            keys: list[str] = list(manifest["keys"].values())
            if only is not None:
                shard = str(self.shard_of(only, manifest["shards"]))
                keys = [manifest["keys"][shard]] if shard in manifest["keys"] else []
            for shard_records in self._pool.map(self._shard, keys):
                if only is None:
                    found.update(shard_records)
                elif only in shard_records:
                    found[only] = shard_records[only]
        found = _unpurged(found, view.tombstones)
        for n, (records, _) in zip(
            view.segments,
            self._pool.map(lambda n: self._segment(partition, n), view.segments),
            strict=True,
        ):
            for record in records:
                iid = record.instance_id
                if (only is None or iid == only) and n > view.tombstones.get(_hex(iid), 0):
                    found[iid] = _merge(found.get(iid), (n, record))
        return found

    def _pending(self, keys: list[str]) -> StatusRecord:
        """The earliest of an instance's pending records (read are only those created
        first, by their keys)."""
        def decode(data: bytes) -> StatusRecord:
            return StatusRecord(**json.loads(data))
        first = _created(keys)
        found = [self._immutable(key, decode) for key in keys if _key_created(key) == first]
        return min(found, key=lambda r: (r.created, r.updated))  # type: ignore[no-any-return]

    def _with_pending(
        self, partition: int, view: _View, found: dict[str, Entry], only: str | None
    ) -> dict[str, StatusRecord]:
        """Committed records, their creation time taken from a pending record still
        around, and the pending records of instances with none committed."""
        out = {iid: record for iid, (_, record) in found.items()}
        hexids = [h for h in view.pending if only is None or h == _hex(only)]
        unknown = []
        for hexid in hexids:
            iid = _unhex(hexid)
            known = out.get(iid)
            if known is None:
                unknown.append(hexid)  # a tombstone's purge deleted the older
            else:
                out[iid] = replace(known, created=min(known.created,
                                                      _created(view.pending[hexid])))
        for record in self._pool.map(lambda h: self._pending(view.pending[h]), unknown):
            out[record.instance_id] = record
        # a batch can only lower the creation time of a committed instance if its key
        # (the earliest creation time in it) is earlier: the others need no GET
        keys = view.batches
        if only is not None and only in found:
            keys = [k for k in keys if _key_created(k) < found[only][1].created]
        for iid, record in self._batched(view, keys, None if only is None else (only,)).items():
            known = out.get(iid)
            if known is None:
                out[iid] = record
            elif iid in found:
                out[iid] = replace(known, created=min(known.created, record.created))
            else:  # pending in a record of its own and in a batch: the earliest counts
                out[iid] = _earliest(known, record)
        return out

    # -- the StatusStore seam: reads -------------------------------------------------------

    def get(self, instance_id: str) -> StatusRecord | None:
        partition = self.owner(instance_id)

        def read(view: _View) -> StatusRecord | None:
            found = self._records(partition, view, instance_id)
            return self._with_pending(partition, view, found, instance_id).get(instance_id)

        return self._retrying(partition, [instance_id], read)  # type: ignore[no-any-return]

    def _partition_records(self, partition: int) -> dict[str, StatusRecord]:
        def read(view: _View) -> dict[str, StatusRecord]:
            found = self._records(partition, view, None)
            return self._with_pending(partition, view, found, None)

        return self._retrying(partition, None, read)  # type: ignore[no-any-return]

    def query(self, query: StatusQuery) -> list[StatusRecord]:
        """Every partition read (from cache where nothing changed), filtered, in id order."""
        records: list[StatusRecord] = []
        for found in self._outer.map(self._partition_records, range(self.partitions)):
            records.extend(r for r in found.values() if matches(r, query))
        records.sort(key=lambda r: r.instance_id)
        return records[: max(query.limit, 0)]

    def _health_of(self, partition: int) -> PartitionHealth | None:
        def read(view: _View) -> PartitionHealth | None:
            if view.segments:
                return self._segment(partition, view.segments[-1])[1]
            if view.manifest_key is not None:
                body = self._manifest(view.manifest_key)["health"]
                return None if body is None else PartitionHealth(**body)
            return None

        return self._retrying(partition, (), read)  # type: ignore[no-any-return]

    def health(self) -> list[PartitionHealth]:
        found = self._outer.map(self._health_of, range(self.partitions))
        return [h for h in found if h is not None]

    # -- the StatusStore seam: writes ------------------------------------------------------

    def put_pending(self, record: StatusRecord) -> bool:
        return self.put_pending_all([record])[0]

    def put_pending_all(self, records: Sequence[StatusRecord]) -> list[bool]:
        """:meth:`put_pending` for many records: one read per partition involved, then
        per partition ONE batch object holding its new records (a single one: a record
        object of its own, which a reader of the committed instance needs no GET for).
        Two clients racing to submit one id may both write a pending record: readers
        take the earliest, and the start is applied once."""
        asked: dict[int, list[int]] = {}  # partition -> indexes into records
        for index, r in enumerate(records):
            asked.setdefault(self.owner(r.instance_id), []).append(index)
        written = [False] * len(records)

        def submit(partition: int) -> None:
            indexes = asked[partition]
            ids = list(dict.fromkeys(records[i].instance_id for i in indexes))
            known = self._known_ids(partition, ids)
            new: list[int] = []
            for i in indexes:
                if records[i].instance_id not in known:
                    known.add(records[i].instance_id)  # the same id twice in a call
                    new.append(i)
            fresh = [replace(records[i], partition=partition) for i in new]
            if len(fresh) == 1:
                ok = self.objects.create(self._pending_key(partition, fresh[0]),
                                         _dumps(asdict(fresh[0])))
            elif fresh:
                key = self._batch_key(partition, fresh)
                data = _dumps({"records": [asdict(r) for r in fresh]})
                if not self.objects.create(key, data):
                    raise StatusLogError(f"batch object {key} exists")  # a random name: never
                self._cache.put(key, len(data), {r.instance_id: r for r in fresh})
                ok = True
            for i in new:
                written[i] = ok

        list(self._outer.map(submit, sorted(asked)))
        return written

    def _known_ids(self, partition: int, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` have a committed or a pending record (reading only their
        index shards, not the whole partition's)."""
        def read(view: _View) -> set[str]:
            batched = self._batched(view, view.batches, set(ids))
            return {iid for iid in ids
                    if _hex(iid) in view.pending or iid in batched
                    or self._records(partition, view, iid)}

        return self._retrying(partition, ids, read)  # type: ignore[no-any-return]

    def publish(self, records: Sequence[StatusRecord], health: PartitionHealth) -> None:
        """One segment for the commit; nothing at all when the commit changed no status
        and nothing the schedule or an operator acts on (next due timer, dead letters,
        live instances, held messages) changed for ``health_interval`` seconds."""
        if health.number <= 0:
            raise ValueError(f"partition {health.partition}: a publish needs the commit's "
                             f"number, got {health.number}")
        partition = health.partition
        # whether messages are held, not how many: a gap appearing or closing is news, a
        # reordering broker moving the count up and down is not worth a write each time
        signature = (health.next_due, health.dead_letters, health.live_runs, health.held > 0)
        now = self.clock()
        with self._lock:
            written = self._health_written.get(partition)
        if (not records and written is not None and written[1] == signature
                and now - written[0] < self.health_interval):
            return
        latest = list({r.instance_id: r for r in records}.values())
        data = _dumps({"records": [asdict(r) for r in latest], "health": asdict(health)})
        key = self._segment_key(partition, health.number)
        if self.objects.create(key, data):  # else published before: that one stands
            self._cache.put(key, len(data), (latest, health))
        with self._lock:
            self._health_written[partition] = (now, signature)
        with self._lock:
            unfolded = self._unfolded.get(partition)
        if unfolded is None:
            unfolded = len(self._view(partition, ()).segments)
        else:
            unfolded += 1
        if unfolded >= self.fold_every:
            self.fold_due(partition)
            unfolded = 0
        with self._lock:
            self._unfolded[partition] = unfolded

    def purge(self, instance_id: str) -> bool:
        """A tombstone hides the instance's records up to its last commit; a record of a
        later commit (the id started again) is not hidden."""
        partition = self.owner(instance_id)

        def read(view: _View) -> tuple[Entry | None, list[str], list[str]]:
            entry = self._records(partition, view, instance_id).get(instance_id)
            batches = [k for k in view.batches if instance_id in self._batch(k)]
            return entry, view.pending.get(_hex(instance_id), []), batches

        entry, pending, batches = self._retrying(partition, [instance_id], read)
        if entry is None or entry[1].status not in DONE:
            return False
        # The batches that started it stay until their other instances are committed:
        # hide its entries in them (before the tombstone hides its committed record, so
        # that it never reads as pending again). A start after the purge is in a later
        # batch, which nothing hides.
        for key in batches:
            self.objects.create(self._hide_key(partition, instance_id, key), b"")
        tomb = self._tombstone_key(partition, instance_id, entry[0])
        if not self.objects.create(tomb, b""):
            return False
        self.objects.delete(pending)  # submitted before the purged commits: theirs
        return True

    # -- folding ---------------------------------------------------------------------------

    def fold_due(self, partition: int) -> None:
        """Called by :meth:`publish` once ``fold_every`` segments wait: folds now. A store
        may fold later on a thread of its own instead (a fold is only a reader's saving)."""
        self.fold(partition)

    def fold(self, partition: int) -> bool:
        """Merge the partition's segments into its index; False if there was nothing to
        fold or another writer folded the same commits first."""
        view = self._view(partition, None)
        if not view.segments:
            return False
        upto = view.segments[-1]
        try:
            manifest: dict[str, Any] = (
                {"shards": self.shards, "keys": {}, "health": None}
                if view.manifest_key is None else self._manifest(view.manifest_key)
            )
            segments = list(self._pool.map(lambda n: self._segment(partition, n),
                                           view.segments))
            batches = dict(zip(view.batches, self._pool.map(self._batch, view.batches),
                               strict=True))
            batched = self._batched(view, view.batches, None)
        except _Missing:
            return False  # another writer is folding these
        shards: int = manifest["shards"]
        changes: dict[int, dict[str, Entry]] = {}
        for n, (records, _) in zip(view.segments, segments, strict=True):
            for record in records:
                if n <= view.tombstones.get(_hex(record.instance_id), 0):
                    continue  # purged
                bucket = changes.setdefault(self.shard_of(record.instance_id, shards), {})
                bucket[record.instance_id] = _merge(bucket.get(record.instance_id),
                                                    (n, record))
        # pending records superseded by a committed one this fold keeps (not one purged)
        committed = {_hex(iid) for c in changes.values() for iid, (n, _) in c.items()
                     if view.tombstones.get(_hex(iid), 0) < n}
        folded_pending = [h for h in view.pending if h in committed]
        created = {h: _created(view.pending[h]) for h in folded_pending}
        for iid, record in batched.items():
            hexid = _hex(iid)
            if hexid in committed:
                created[hexid] = min(created.get(hexid, record.created), record.created)
        old_keys: dict[str, str] = manifest["keys"]
        new_keys = dict(old_keys)
        written: list[str] = []

        def rewrite(shard: int) -> tuple[int, str]:
            old = old_keys.get(str(shard))
            merged = _unpurged(dict(self._shard(old)) if old is not None else {},
                               view.tombstones)
            for iid, entry in changes[shard].items():
                merged[iid] = _merge(merged.get(iid), entry)
            for iid in list(merged):
                hexid = _hex(iid)
                if hexid in created:
                    n, record = merged[iid]
                    merged[iid] = (n, replace(record, created=min(record.created,
                                                                  created[hexid])))
            data = _dumps({iid: [n, asdict(r)] for iid, (n, r) in sorted(merged.items())})
            key = self._shard_key(partition, shard, upto)
            if not self.objects.create(key, data):
                raise StatusLogError(f"index object {key} exists")  # a random name: never
            self._cache.put(key, len(data), merged)
            return shard, key

        try:
            for shard, key in self._pool.map(rewrite, sorted(changes)):
                new_keys[str(shard)] = key
                written.append(key)
        except _Missing:
            self.objects.delete(written)
            return False
        # Index objects this manifest replaced and tombstones it applied are deleted by
        # the next fold, not this one: a fold from the same base racing this one (a
        # writer that stalled) may make a manifest that still needs them. Tombstones are
        # applied only to shards rewritten for their records, for the same reason.
        done = self._covered_batches(view, batches, shards, new_keys)
        replaced = [old_keys[s] for s in old_keys if new_keys[s] != old_keys[s]]
        applied = [k for h, k in view.tombstone_keys
                   if self.shard_of(_unhex(h), shards) in changes
                   and view.tombstones.get(h, 0) <= upto]
        body = {"shards": shards, "keys": new_keys, "health": asdict(segments[-1][1]),
                "upto": upto, "retired": replaced + applied}
        if not self.objects.create(self._manifest_key(partition, upto), _dumps(body)):
            self.objects.delete(written)  # another writer folded the same commits
            return False
        # what the new manifest covers; a reader still holding it lists again
        garbage = (
            [self._segment_key(partition, n) for n in view.segments + view.stale_segments]
            + ([view.manifest_key] if view.manifest_key else []) + view.old_manifests
            + [k for h in folded_pending for k in view.pending[h]]
            + list(manifest.get("retired", []))
            + done
        )
        self.objects.delete(garbage)
        # the marks hiding purged instances in batches now gone, after them: a reader
        # that misses a mark has missed its batch too
        live = {_name(k) for k in view.batches} - {_name(k) for k in done}
        self.objects.delete([key for name, key in view.hide_keys if name not in live])
        return True

    def _covered_batches(self, view: _View, batches: dict[str, dict[str, StatusRecord]],
                         shards: int, index: dict[str, str]) -> list[str]:
        """The batches whose every instance has a committed record in the index
        ``index`` (shard -> key) or was purged: no reader of it needs them."""
        def committed(iid: str) -> bool:
            key = index.get(str(self.shard_of(iid, shards)))
            entry = None if key is None else self._shard(key).get(iid)
            return entry is not None and entry[0] > view.tombstones.get(_hex(iid), 0)

        try:
            return [key for key, entries in batches.items()
                    if all(_name(key) in view.hidden.get(_hex(iid), ()) or committed(iid)
                           for iid in entries)]
        except _Missing:
            return []  # a racing fold replaced the index: the next fold decides


def _earliest(old: StatusRecord | None, new: StatusRecord) -> StatusRecord:
    """Of two pending records of one instance, the one submitted first."""
    if old is None:
        return new
    return min(old, new, key=lambda r: (r.created, r.updated))


def _name(key: str) -> str:
    """A batch's name (the last part of its key)."""
    return key.rsplit("/", 1)[1]


def _key_created(key: str) -> float:
    """The creation time a pending record's key holds."""
    return float.fromhex(key.rsplit("/", 1)[1].partition("_")[0])


def _created(keys: Sequence[str]) -> float:
    """The creation time of the earliest of an instance's pending records."""
    return min(_key_created(key) for key in keys)


def _unpurged(found: dict[str, Entry], tombstones: dict[str, int]) -> dict[str, Entry]:
    """``found`` without the records that tombstones hide."""
    for hexid, upto in tombstones.items():
        iid = _unhex(hexid)
        entry = found.get(iid)
        if entry is not None and entry[0] <= upto:
            del found[iid]
    return found
