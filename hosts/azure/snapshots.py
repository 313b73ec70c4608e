"""Partition snapshots in Blob Storage: a base blob plus an append blob of deltas.

A partition's history is a chain of *generations*. Generation ``g`` has

- ``g.base``: a block blob with the base snapshot (absent if the generation began with a
  delta rather than a compaction), written once and never changed;
- ``g.log``: an append blob of framed records: deltas (inline, or by reference to a blob
  when too large for one append block), and at most one final *forward* record naming
  the next generation, written by the compaction that sealed ``g``.

The version that fences writes is ``"<generation>:<length of its log>"``. Every write is
one ``append_block`` on the current log with an append-position condition equal to that
length: a delta appends itself, a compaction appends the forward record (after creating
the new generation's base and empty log). Of several writers holding the same version one
wins; the others get ``412 AppendPositionConditionNotMet`` (or ``404`` once the log is
gone) and raise :class:`StaleSnapshotError`. A sealed log never accepts an append again,
because its length moved on.

``p<partition>/head`` names a generation of the chain; loads start there and follow
forward records, so a head that lags (it is moved in the background after a compaction;
a crash or a lost race leaves it behind) costs one more read, never correctness. The head
moves only by ``If-Match`` on the ETag its writer read, so it never moves backwards, and
only its writer removes the generations before the one it compacted. The first write of
a partition creates the head with ``If-None-Match: *``: that create is the fence for a
partition nothing was stored for.

The last transport position a commit covers (an Event Hubs sequence number) travels in
the commit's own append: a *position* record framed before the delta, in the same block
(:meth:`BlobSnapshotStore.stage_position`), so a commit costs no extra request for it.

``mark_delivered`` sets metadata on the current log (which changes its ETag, not its
length, so it fences nothing), written by :meth:`BlobSnapshotStore.flush` in the
background once the partition has been quiet for ``mark_delay`` (0.25 s): only the mark
of a partition's *last* commit matters (a load resends the outbox of the last commit
unless the mark names it), so a busy partition's marks are superseded by its next commit
and never written. Positions that advanced without a commit (wake-ups, duplicates) go to
the same metadata.

Warm loads re-read only the log's tail (one ranged GET); the base is immutable and
cached.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobClient, ContainerClient

from hosts.azure.deadletters import BlobDeadLetters
from reactive.hosting import CorruptSnapshotError
from reactive.hosting.seams import StaleSnapshotError, Stored

log = logging.getLogger("reactive.azure.snapshots")

DELTA = b"D"  # payload: the delta
REFERENCE = b"R"  # payload: name of a blob holding the delta
FORWARD = b"F"  # payload: name of the next generation; the log is sealed
POSITION = b"P"  # payload: the transport position the next delta's commit covers
HEADER = 12  # kind (1 byte) + length (10 digits) + newline
# one append block holds at most 4 MiB: a delta's frame, and a position record before it
MAX_INLINE = 4 * 1024 * 1024 - 2 * HEADER - 20
LOAD_ATTEMPTS = 5  # restarts when a generation is deleted under a load
# seconds a partition must be quiet before its delivery mark is written: the marks of a
# busy partition are superseded by its next commit (a lagging mark costs only resends or
# re-read events after a crash, never correctness)
MARK_DELAY = 0.25
BLOB_CLIENTS = 256  # blob clients kept for reuse (making one builds a whole SDK pipeline)


def frame(kind: bytes, payload: bytes) -> bytes:
    return kind + b"%010d\n" % len(payload) + payload


def parse_frames(data: bytes, where: str) -> list[tuple[bytes, bytes]]:
    records, pos = [], 0
    while pos < len(data):
        head = data[pos : pos + HEADER]
        kind, digits = head[:1], head[1:11]
        if (len(head) < HEADER or kind not in (DELTA, REFERENCE, FORWARD, POSITION)
                or not digits.isdigit()):
            raise CorruptSnapshotError(f"{where}: unreadable record at byte {pos}")
        end = pos + HEADER + int(digits)
        if end > len(data):
            raise CorruptSnapshotError(f"{where}: record at byte {pos} is cut short")
        records.append((kind, data[pos + HEADER : end]))
        pos = end
    return records


def _generation_number(name: str) -> int:
    return int(name.split("-", 1)[0])


def _new_generation(number: int) -> str:
    return f"{number:010d}-{uuid.uuid4().hex[:12]}"


def _is_stale_write(exc: HttpResponseError) -> bool:
    return exc.status_code in (404, 409, 412)


@dataclass
class _View:
    """What this process knows about a partition's current generation."""

    generation: str
    base: bytes | None
    deltas: list[bytes]
    length: int  # of the current generation's log
    metadata: dict[str, str] = field(default_factory=dict)
    position: int | None = None  # the last position record read in the chain

    def stored_position(self) -> int | None:
        """The position the log and its metadata show, whichever is later."""
        text = self.metadata.get("position")
        marked = int(text) if text and text.lstrip("-").isdigit() else None
        known = [p for p in (marked, self.position) if p is not None]
        return max(known) if known else None

    @property
    def version(self) -> str:
        return f"{self.generation}:{self.length}"


@dataclass
class _Marks:
    """A partition's delivery mark and position, queued for the marks thread."""

    generation: str
    metadata: dict[str, str]
    position_dirty: bool  # the position advanced without a commit carrying it


@dataclass
class _Head:
    """What this process knows about a partition's head (changed under the store's lock)."""

    chain: list[str]  # generations from the head's to the newest known
    etag: str | None  # of the head as last read or written here
    behind: list[str] = field(default_factory=list)  # superseded, not removed yet

    def extend(self, generation: str) -> None:
        if generation not in self.chain:
            self.chain.append(generation)


class BlobSnapshotStore:
    """Implements :class:`reactive.hosting.seams.SnapshotStore` on Blob Storage.

    Thread-safe; one instance per process serves every partition.
    """

    def __init__(
        self, container: ContainerClient, prefix: str = "snapshots/",
        mark_delay: float = MARK_DELAY,
    ) -> None:
        self.container = container
        self.prefix = prefix
        self.mark_delay = mark_delay
        self.dead_letters = BlobDeadLetters(container)
        self._views: dict[int, _View] = {}
        self._heads: dict[int, _Head] = {}
        self._positions: dict[int, int] = {}
        self._staged: dict[int, int] = {}  # positions for the next commit's append
        self._position_unwritten: set[int] = set()  # advanced without a commit
        self._clients: dict[str, BlobClient] = {}
        self._delivered: dict[int, str] = {}
        self._dirty: set[int] = set()
        # marks waiting for the marks thread: a later flush replaces what an earlier one
        # queued, so a busy partition writes its latest marks, not every one
        self._unwritten: dict[int, _Marks] = {}
        self._queued_at: dict[int, float] = {}  # when a partition's marks are due
        self._lock = threading.Lock()
        self._marks_changed = threading.Condition(self._lock)
        self._marks_thread: threading.Thread | None = None
        self._hurry = 0  # drains waiting: write every queued mark now
        self._writing = 0  # batches of marks being written
        self._closing = False
        # one thread: background writes land in the order they were made
        self._background = ThreadPoolExecutor(1, thread_name_prefix="snapshots-bg")
        self._io = ThreadPoolExecutor(4, thread_name_prefix="snapshots-io")
        self.calls = 0  # storage requests made, for the benchmark's accounting

    # -- names ---------------------------------------------------------------------------

    def _path(self, partition: int, name: str) -> str:
        return f"{self.prefix}p{partition:04d}/{name}"

    def _blob(self, partition: int, name: str) -> BlobClient:
        # reused: a new client builds the SDK's pipeline objects again, a few per cent
        # of the host's CPU when made per request
        path = self._path(partition, name)
        client = self._clients.get(path)
        if client is None:
            client = self.container.get_blob_client(path)
            if len(self._clients) >= BLOB_CLIENTS:
                self._clients.clear()  # generations move on; old names are not used again
            self._clients[path] = client
        return client

    # -- load ----------------------------------------------------------------------------

    def load(self, partition: int) -> Stored:
        for _ in range(LOAD_ATTEMPTS):
            with self._lock:
                cached = self._views.get(partition)
            try:
                view = self._refresh(partition, cached) if cached else self._load_cold(partition)
            except ResourceNotFoundError:
                with self._lock:
                    self._views.pop(partition, None)
                continue  # a generation was deleted under us: start again from the head
            if view is None:
                return Stored()
            with self._lock:
                self._views[partition] = view
                delivered = view.metadata.get("delivered")
                if delivered:
                    self._delivered[partition] = delivered
                position = view.stored_position()
                if position is not None:
                    self._positions[partition] = max(
                        position, self._positions.get(partition, -1)
                    )
            return Stored(view.base, tuple(view.deltas), view.version, delivered or None)
        raise CorruptSnapshotError(
            f"partition {partition}: its snapshot chain kept changing under {LOAD_ATTEMPTS} loads"
        )

    def _load_cold(self, partition: int) -> _View | None:
        head = self._blob(partition, "head")
        try:
            self.calls += 1
            downloaded = head.download_blob()
            name = downloaded.readall().decode()
            etag = downloaded.properties.etag
        except ResourceNotFoundError:
            return None
        with self._lock:
            self._heads[partition] = _Head([name], etag)
        view = _View(name, None, [], 0)
        self._read_base(partition, view)
        return self._refresh(partition, view)

    def _read_base(self, partition: int, view: _View) -> None:
        try:
            self.calls += 1
            view.base = self._blob(partition, f"{view.generation}.base").download_blob().readall()
        except ResourceNotFoundError:
            view.base = None  # this generation began with a delta

    def _refresh(self, partition: int, view: _View) -> _View:
        """Read the current log's tail and follow forward records; returns a new view."""
        view = _View(
            view.generation, view.base, list(view.deltas), view.length, dict(view.metadata),
            view.position,
        )
        while True:
            log = self._blob(partition, f"{view.generation}.log")
            # start one byte early so that the reply carries the metadata even when
            # nothing was appended
            offset = max(view.length - 1, 0)
            self.calls += 1
            downloaded = log.download_blob(offset=offset) if offset else log.download_blob()
            data = downloaded.readall()[view.length - offset :]
            view.metadata = dict(downloaded.properties.metadata or {})
            forward = None
            where = f"partition {partition} generation {view.generation}"
            for kind, payload in parse_frames(data, where):
                if kind == DELTA:
                    view.deltas.append(payload)
                elif kind == REFERENCE:
                    self.calls += 1
                    blob = self._blob(partition, payload.decode())
                    view.deltas.append(blob.download_blob().readall())
                elif kind == POSITION:
                    view.position = int(payload)
                else:
                    forward = payload.decode()
            view.length += len(data)
            if forward is None:
                return view
            with self._lock:
                head = self._heads.get(partition)
                if head is not None:
                    head.extend(forward)
            view.generation = forward
            view.deltas, view.length, view.metadata = [], 0, {}
            self._read_base(partition, view)

    # -- writes --------------------------------------------------------------------------

    def _expect(self, partition: int, expected: str | None) -> _View | None:
        with self._lock:
            view = self._views.get(partition)
        if view is not None and view.version == expected:
            return view
        if expected is None:
            return None
        # a version this process did not load: trust only what the store says
        loaded = self.load(partition)
        with self._lock:
            view = self._views.get(partition)
        if loaded.version != expected or view is None:
            raise StaleSnapshotError(
                f"partition {partition}: snapshot version {expected} is stale "
                f"(the store holds {loaded.version})"
            )
        return view

    def _stale(self, partition: int, expected: str | None, why: str) -> StaleSnapshotError:
        with self._lock:
            self._views.pop(partition, None)
        return StaleSnapshotError(f"partition {partition}: version {expected} lost: {why}")

    def _record(self, partition: int, generation: str, delta: bytes) -> bytes:
        if len(delta) <= MAX_INLINE:
            return frame(DELTA, delta)
        name = f"{generation}.{uuid.uuid4().hex[:12]}.delta"
        self.calls += 1
        self._blob(partition, name).upload_blob(delta)
        return frame(REFERENCE, name.encode())

    def append(self, partition: int, delta: bytes, expected: str | None) -> str:
        view = self._expect(partition, expected)
        if view is None:
            return self._create(partition, None, delta)
        staged = self._take_staged(partition)
        record = self._record(partition, view.generation, delta)
        if staged is not None:
            record = frame(POSITION, b"%d" % staged) + record
        log = self._blob(partition, f"{view.generation}.log")
        try:
            self.calls += 1
            log.append_block(record, appendpos_condition=view.length)
        except HttpResponseError as exc:
            if _is_stale_write(exc):
                raise self._stale(partition, expected, exc.reason or str(exc)) from None
            raise
        new = _View(
            view.generation, view.base, [*view.deltas, delta], view.length + len(record),
            view.metadata, view.position if staged is None else staged,
        )
        with self._lock:
            self._views[partition] = new
            self._committed_position(partition, staged)
        return new.version

    def compact(self, partition: int, base: bytes, expected: str | None) -> str:
        view = self._expect(partition, expected)
        if view is None:
            return self._create(partition, base, None)
        generation = _new_generation(_generation_number(view.generation) + 1)
        staged = self._take_staged(partition)
        self._start_generation(partition, generation, base, staged)
        log = self._blob(partition, f"{view.generation}.log")
        try:
            self.calls += 1
            log.append_block(frame(FORWARD, generation.encode()), appendpos_condition=view.length)
        except HttpResponseError as exc:
            if _is_stale_write(exc):
                self._background.submit(self._remove_generation, partition, generation)
                raise self._stale(partition, expected, exc.reason or str(exc)) from None
            raise
        new = _View(generation, base, [], 0, position=self._start_position(partition, staged))
        with self._lock:
            self._views[partition] = new
            self._committed_position(partition, staged)
            head = self._heads.get(partition)
            if head is not None:
                head.extend(generation)
        self._background.submit(self._housekeep, partition)
        return new.version

    def _start_position(self, partition: int, staged: int | None) -> int | None:
        with self._lock:
            known = [p for p in (self._positions.get(partition), staged) if p is not None]
        return max(known) if known else None

    def _start_generation(
        self, partition: int, generation: str, base: bytes | None, staged: int | None
    ) -> None:
        """The new generation's base and empty log (its metadata holding the position),
        written in parallel."""
        position = self._start_position(partition, staged)
        log = self._blob(partition, f"{generation}.log")
        metadata = {} if position is None else {"position": str(position)}
        self.calls += 1 if base is None else 2
        creating = self._io.submit(
            log.create_append_blob, metadata=metadata, match_condition=MatchConditions.IfMissing
        )
        if base is not None:
            self._blob(partition, f"{generation}.base").upload_blob(
                base, match_condition=MatchConditions.IfMissing
            )
        creating.result()

    def _remove_generation(self, partition: int, generation: str) -> None:
        prefix = self._path(partition, generation + ".")
        for blob in self.container.list_blobs(name_starts_with=prefix):
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(blob.name)

    def _housekeep(self, partition: int) -> None:
        """In the background: point the head at the newest generation, unless someone
        moved it since this process read it, then remove the generations before the one
        compacted last (that one is kept until the next time, so that loads under way
        rarely restart). Nothing depends on it for correctness: loads follow forwards."""
        for _ in range(2):
            with self._lock:
                head = self._heads.get(partition)
                if head is None or len(head.chain) < 2:
                    return
                chain, etag = list(head.chain), head.etag
            if etag is not None:
                try:
                    self.calls += 1
                    reply = self._blob(partition, "head").upload_blob(
                        chain[-1].encode(), overwrite=True, etag=etag,
                        match_condition=MatchConditions.IfNotModified,
                    )
                except (ResourceModifiedError, ResourceNotFoundError):
                    pass
                except HttpResponseError as exc:
                    if exc.status_code != 412:
                        raise
                else:
                    with self._lock:
                        removable = [*head.behind, *chain[:-2]]
                        head.chain = head.chain[len(chain) - 1 :]
                        head.etag = str(reply["etag"])
                        head.behind = [chain[-2]]
                    for previous in removable:
                        self._remove_generation(partition, previous)
                    return
            # someone else moved the head: go on from where it points now, if known here
            try:
                downloaded = self._blob(partition, "head").download_blob()
                name, etag = downloaded.readall().decode(), downloaded.properties.etag
            except ResourceNotFoundError:
                return
            with self._lock:
                if name not in head.chain:
                    return
                head.chain = head.chain[head.chain.index(name) :]
                head.etag = etag

    def drain(self) -> None:
        """Write the queued marks now and wait for the background work submitted so far
        (head moves, removals)."""
        self._drain_marks()
        self._background.submit(lambda: None).result()

    def close(self) -> None:
        """Writes the queued marks (a clean stop leaves nothing to resend)."""
        self._drain_marks()
        with self._lock:
            self._closing = True
            self._marks_changed.notify_all()
            thread = self._marks_thread
        if thread is not None:
            thread.join(30)
        self._background.shutdown(wait=True)
        self._io.shutdown(wait=True)

    def _create(self, partition: int, base: bytes | None, delta: bytes | None) -> str:
        """The first write of a partition; the head's conditional create is the fence."""
        generation = _new_generation(1)
        staged = self._take_staged(partition)
        self._start_generation(partition, generation, base, staged)
        deltas: list[bytes] = []
        length = 0
        if delta is not None:
            record = self._record(partition, generation, delta)
            self.calls += 1
            self._blob(partition, f"{generation}.log").append_block(record, appendpos_condition=0)
            deltas, length = [delta], len(record)
        try:
            self.calls += 1
            reply = self._blob(partition, "head").upload_blob(
                generation.encode(), match_condition=MatchConditions.IfMissing
            )
        except ResourceExistsError:
            self._background.submit(self._remove_generation, partition, generation)
            raise self._stale(partition, None, "the partition was created meanwhile") from None
        view = _View(generation, base, deltas, length, position=staged)
        with self._lock:
            self._views[partition] = view
            self._heads[partition] = _Head([generation], str(reply["etag"]))
            self._committed_position(partition, staged)
        return view.version

    # -- delivery marks and positions ----------------------------------------------------

    def stage_position(self, partition: int, position: int | None) -> None:
        """The transport position that the partition's next commit covers, written in
        that commit's append (``None`` forgets a staged one). It counts as committed only
        once that write succeeds: a lost or failed commit drops it."""
        with self._lock:
            if position is None:
                self._staged.pop(partition, None)
            else:
                self._staged[partition] = position

    def _take_staged(self, partition: int) -> int | None:
        with self._lock:
            return self._staged.pop(partition, None)

    def _committed_position(self, partition: int, staged: int | None) -> None:
        # under the lock, after the write that carried ``staged`` succeeded
        if staged is not None and staged > self._positions.get(partition, -1):
            self._positions[partition] = staged

    def mark_delivered(self, partition: int, version: str) -> None:
        """Recorded now, written by :meth:`flush` once the partition is quiet; a crash
        before that only makes the next load resend an outbox, which receivers drop."""
        with self._lock:
            self._delivered[partition] = version
            self._dirty.add(partition)

    def set_position(self, partition: int, position: int) -> None:
        """The host's last transport position (an Event Hubs sequence number) that the
        partition's state covers, when no commit carried it (the batch changed nothing);
        written by :meth:`flush`."""
        with self._lock:
            if position > self._positions.get(partition, -1):
                self._positions[partition] = position
                self._dirty.add(partition)
                self._position_unwritten.add(partition)

    def position(self, partition: int) -> int | None:
        """The last committed transport position known (from a load or this process)."""
        with self._lock:
            return self._positions.get(partition)

    def flush(self, partition: int) -> None:
        """Queue the delivery mark and position for the marks thread, which writes them
        once the partition has had no flush for ``mark_delay`` seconds, only the latest,
        and not at all if a newer commit superseded the mark by then (a crash before they
        land only makes the next load resend an outbox, which receivers drop, or re-read
        events it then skips)."""
        with self._lock:
            if partition not in self._dirty:
                return
            self._dirty.discard(partition)
            view = self._views.get(partition)
            if view is None:
                return
            metadata = {}
            if partition in self._delivered:
                metadata["delivered"] = self._delivered[partition]
            if partition in self._positions:
                metadata["position"] = str(self._positions[partition])
            position_dirty = partition in self._position_unwritten
            self._position_unwritten.discard(partition)
            view.metadata = metadata
            queued = self._unwritten.get(partition)
            if queued is not None:
                position_dirty |= queued.position_dirty
            self._unwritten[partition] = _Marks(view.generation, metadata, position_dirty)
            # trailing: every flush pushes the write back, so a busy partition's marks
            # wait until it pauses (its later commits supersede them meanwhile)
            self._queued_at[partition] = time.monotonic() + self.mark_delay
            if self._marks_thread is None:
                self._marks_thread = threading.Thread(
                    target=self._write_marks, name="snapshots-marks", daemon=True
                )
                self._marks_thread.start()
            self._marks_changed.notify_all()

    def _write_marks(self) -> None:
        """The marks thread: writes each partition's latest marks when they are due (all
        at once while someone drains), in the order they became due."""
        with self._lock:
            while True:
                now = time.monotonic()
                ready = [
                    p for p, due in self._queued_at.items() if due <= now or self._hurry
                ]
                if not ready:
                    if self._closing and not self._queued_at:
                        return
                    wait = min(self._queued_at.values(), default=now + 60.0) - now
                    self._marks_changed.wait(max(wait, 0.001))
                    continue
                batch = []
                for partition in sorted(ready, key=self._queued_at.__getitem__):
                    del self._queued_at[partition]
                    batch.append((partition, self._unwritten.pop(partition)))
                self._writing += 1
                self._lock.release()
                try:
                    for partition, marks in batch:
                        if self._needed(partition, marks):
                            self._write_metadata(partition, marks.generation, marks.metadata)
                finally:
                    self._lock.acquire()
                    self._writing -= 1
                    self._marks_changed.notify_all()

    def _needed(self, partition: int, marks: _Marks) -> bool:
        """False when only a delivery mark is due and a newer commit superseded it."""
        if marks.position_dirty:
            return True
        with self._lock:
            view = self._views.get(partition)
        return view is not None and marks.metadata.get("delivered") == view.version

    def _write_metadata(self, partition: int, generation: str, metadata: dict[str, str]) -> None:
        try:
            self.calls += 1
            self._blob(partition, f"{generation}.log").set_blob_metadata(metadata)
        except ResourceNotFoundError:
            pass  # compacted and removed meanwhile: the newer generation carries its own
        except Exception:
            # a lost mark costs only a resend or a re-read after a crash
            log.exception("partition %d: writing its delivery mark failed", partition)

    def _drain_marks(self) -> None:
        with self._lock:
            self._hurry += 1
            self._marks_changed.notify_all()
            try:
                while self._queued_at or self._writing:
                    self._marks_changed.wait(1.0)
            finally:
                self._hurry -= 1

    def dead_letter(self, partition: int, data: bytes, reason: str) -> None:
        self.dead_letters.put(str(partition), data, reason)
