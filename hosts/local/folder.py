"""The durable local mode: every seam in one SQLite database in a folder.

``DIR/state.db`` holds the partitions' input logs, their base snapshots and deltas, the
instance statuses, partition health and dead letters. SQLite gives what a hand-made log
did not: records are blobs (any bytes are safe, nothing can be torn or split), a
transaction per invocation (commit, send, publish and acknowledge land together, with one
fsync: group commit), logs trimmed as they are acknowledged, and safe concurrent access
for clients in other processes. One process at a time may drive the partitions: it holds
an exclusive lock on ``DIR/driver.lock``; clients (another terminal's ``reactive
raise-event --state DIR``) only add input and read statuses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO, TypeVar

from reactive import ReactiveError
from reactive.hosting.memory import DONE
from reactive.hosting.seams import (
    Inbound,
    Outgoing,
    PartitionHealth,
    StaleSnapshotError,
    StatusQuery,
    StatusRecord,
    Stored,
)

FORMAT = "4"
_T = TypeVar("_T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, partition INTEGER NOT NULL,
    time REAL NOT NULL, data BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS inbox_by_partition ON inbox (partition, id);
CREATE TABLE IF NOT EXISTS snapshots (
    partition INTEGER PRIMARY KEY, generation INTEGER NOT NULL,
    deltas INTEGER NOT NULL, delivered TEXT);
CREATE TABLE IF NOT EXISTS bases (partition INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS deltas (
    partition INTEGER NOT NULL, generation INTEGER NOT NULL, n INTEGER NOT NULL,
    data BLOB NOT NULL, PRIMARY KEY (partition, generation, n));
CREATE TABLE IF NOT EXISTS status (
    instance_id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL,
    partition INTEGER NOT NULL, created REAL NOT NULL, updated REAL NOT NULL,
    result TEXT, error TEXT, custom_status TEXT);
CREATE INDEX IF NOT EXISTS status_by_status ON status (status, instance_id);
CREATE INDEX IF NOT EXISTS status_by_created ON status (created);
CREATE TABLE IF NOT EXISTS health (partition INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY AUTOINCREMENT, partition INTEGER NOT NULL, time REAL NOT NULL,
    reason TEXT NOT NULL, data BLOB NOT NULL);
"""


class FolderError(ReactiveError):
    """A state folder that cannot be used as asked; the message says why, in one line."""


def _holder(lock_path: Path) -> str:
    try:
        text = lock_path.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


class FolderState:
    """Sender, snapshot store, status store and input logs of one state folder."""

    def __init__(
        self,
        folder: Path | str,
        app_name: str,
        partitions: int | None = None,
        *,
        driver: bool = True,
        fsync: bool = True,
        clock: Callable[[], float] = time.time,
        commit_interval: float = 0.01,
    ) -> None:
        """Open (or create) the folder. ``partitions=None`` adopts the folder's count.
        ``driver`` takes the folder's exclusive lock (a second driver gets FolderError).
        ``commit_interval``: how long a commit may wait to share its fsync (group
        commit, see :meth:`group`); 0 commits every invocation alone."""
        self.folder = Path(folder)
        self.clock = clock  # stamps input records and dead letters
        if self.folder.exists() and not self.folder.is_dir():
            raise FolderError(f"state folder {self.folder} is a file, not a folder")
        if any(self.folder.glob("inbox-*.log")) and not (self.folder / "state.db").exists():
            raise FolderError(
                f"state folder {self.folder} was written by an older version of reactive "
                "(inbox-*.log files); use a new folder"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_file: TextIO | None = None
        if driver:
            self._take_lock()
        self._mutex = threading.RLock()
        self._db = sqlite3.connect(
            self.folder / "state.db", timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
        self._db.executescript(_SCHEMA)
        # reads of committed data (statuses, input, snapshots) on a connection of their
        # own: in WAL mode they never wait for the writer's transaction and fsync
        self._reader = sqlite3.connect(
            self.folder / "state.db", timeout=30, isolation_level=None, check_same_thread=False
        )
        self._read_mutex = threading.Lock()
        self.commit_interval = commit_interval
        self.durable_commits = 0  # transactions committed (each one fsync)
        self._commit_listeners: list[Callable[[bool], None]] = []
        self.partition_commits = 0  # snapshot appends and compactions
        self._grouping = False
        self._savepoint = False  # the current block is a savepoint in an open transaction
        # the current block began in an open transaction and has not written yet: its
        # savepoint is taken at its first write, so a block that writes nothing (an
        # invocation with no input) costs no SAVEPOINT and RELEASE statements
        self._block_pending = False
        self._may_defer = False  # the current block may leave its transaction open
        self._wrote = False  # the current block wrote
        self._committed_partition = False  # ... and appended or compacted
        self._opened = 0.0  # when the open transaction began (time.monotonic)
        # partitions whose append or compaction in the current block also marked it
        # delivered: the block is all or nothing, so its delivery is part of the commit.
        # This needs no commit_held() between a block's append and its delivery: the
        # worker calls it only before it runs activities, which come before its commit
        self._marked: dict[int, str] = {}
        # health published in the open transaction, encoded and written once at its
        # commit (every invocation publishes one; a group commit holds several)
        self._health: dict[int, PartitionHealth] = {}
        self._health_before: dict[int, PartitionHealth] = {}  # ... when the block began
        # messages sent inside the open transaction, per partition, not written yet: a
        # message that the driver reads and acknowledges before the transaction commits
        # (most hops between partitions under load) never costs an INSERT and a DELETE.
        # Written at the commit, in the order sent; only this connection writes while
        # the transaction is open (BEGIN IMMEDIATE), so nobody else can miss them. Refs
        # are negative (the table's ids are positive)
        self._fresh: dict[int, dict[int, Inbound]] = {}
        self._fresh_before: dict[int, dict[int, Inbound]] = {}  # ... when the block began
        self._fresh_refs = 0
        # fresh refs written by a commit since the block began (commit_held() before its
        # activities) -> their ids in the table: the block acknowledges by the old ref
        self._moved: dict[int, int] = {}
        self.partitions = self._check_meta(app_name, partitions)

    # -- opening -----------------------------------------------------------------------------

    def _take_lock(self) -> None:
        path = self.folder / "driver.lock"
        f = path.open("a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.close()
            raise FolderError(
                f"state folder {self.folder} is in use by {_holder(path)}; stop it first "
                "(or talk to it through its server with --url)"
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} ({' '.join(sys.argv)[:200]})\n")
        f.flush()
        self._lock_file = f

    def _check_meta(self, app_name: str, partitions: int | None) -> int:
        with self._mutex:
            meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
            if not meta:
                count = partitions or 4
                with self._write() as db:  # all three or none: a kill -9 may come here too
                    db.executemany(
                        "INSERT OR IGNORE INTO meta VALUES (?, ?)",
                        [("format", FORMAT), ("app", app_name), ("partitions", str(count))],
                    )
                meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if meta.get("format") != FORMAT:
            raise FolderError(f"state folder {self.folder} has format {meta.get('format')!r}, "
                              f"this version reads {FORMAT!r}")
        if meta["app"] != app_name:
            raise FolderError(f"state folder {self.folder} holds application {meta['app']!r}, "
                              f"not {app_name!r}; use another folder")
        count = int(meta["partitions"])
        if partitions is not None and partitions != count:
            raise FolderError(
                f"state folder {self.folder} has {count} partitions, not {partitions}; "
                f"leave --partitions out (or give {count}), or use a new folder"
            )
        return count

    def close(self) -> None:
        with self._mutex, self._read_mutex:
            if self._db.in_transaction:
                self._commit()
            self._db.close()
            self._reader.close()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # -- transactions: one per invocation, group commit ------------------------------------
    #
    # A block of ``group()`` is all or nothing, durable when it ends. Group commit: a
    # driver's invocation (``group(group_commit=True)``) that committed a partition
    # (append or compact), or wrote nothing, while more input is waiting, leaves the
    # transaction open for at most ``commit_interval`` seconds, so that the invocations
    # right after it share one fsync. An invocation that finished an instance holds it
    # too: a client waiting for that instance waits at most ``commit_interval`` longer,
    # and under load (where finishes come in every invocation) committing at each finish
    # made one fsync per one or two invocations. Each later block is a savepoint in it, so a block
    # that fails rolls back alone. Nothing in an open transaction is visible to clients
    # or other processes (their reads see only what is durable). Any other block (a
    # client's batch, acknowledgements alone), a write outside a block, no input left,
    # commit_held() and close() commit at once. A crash loses the open transaction whole:
    # every invocation in it is redone from what is durable, its input still in the log.

    @contextlib.contextmanager
    def group(self, group_commit: bool = False) -> Iterator[None]:
        """Group every write until the end of the block into one transaction (begun at
        the first write, so that reads and activities before it hold no lock), durable
        when the block ends; with ``group_commit`` (a driver's invocation) it may stay
        open for the next blocks, as described above."""
        with self._mutex:
            if self._grouping:  # nested: part of the enclosing block
                yield
                return
            self._grouping = True
            self._committed_partition = self._wrote = False
            self._may_defer = group_commit
            self._marked.clear()
            self._moved.clear()
            self._health_before = dict(self._health)
            self._fresh_before = {p: dict(rows) for p, rows in self._fresh.items() if rows}
            self._savepoint = False
            self._block_pending = self._db.in_transaction
            try:
                yield
            except BaseException:
                self._abort()
                raise
            else:
                if self._savepoint:
                    self._db.execute("RELEASE block")
                if self._db.in_transaction and not self._may_wait():
                    self._commit()
            finally:
                self._savepoint = self._block_pending = False
                self._grouping = False

    def on_commit(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(True)`` after each durable commit and ``listener(False)`` after
        a rollback of any part of the open transaction (what was published in it may be
        gone), on the writing thread, with this folder's mutex held."""
        self._commit_listeners.append(listener)

    def _tell(self, committed: bool) -> None:
        for listener in self._commit_listeners:
            with contextlib.suppress(Exception):  # a listener must never fail a commit
                listener(committed)

    def _commit(self) -> None:
        self._write_fresh()
        if self._health:
            self._db.executemany("INSERT OR REPLACE INTO health VALUES (?, ?)",
                                 [(p, _health_row(h)) for p, h in self._health.items()])
            self._health.clear()
        self._db.execute("COMMIT")  # with fsync on, the one fsync of the transaction
        self.durable_commits += 1
        self._tell(True)

    def _abort(self) -> None:
        self._marked.clear()
        if not self._db.in_transaction:
            self._health.clear()
            self._fresh.clear()
            self._tell(False)
            return  # SQLite already rolled it back (an I/O error): the fence sorts it out
        if self._savepoint:  # keep the blocks before this one
            self._db.execute("ROLLBACK TO block")
            self._db.execute("RELEASE block")
            self._health = self._health_before
            self._fresh = self._fresh_before
        elif self._block_pending:  # it wrote nothing: the blocks before it stay whole
            self._health = self._health_before
            self._fresh = self._fresh_before
        else:
            self._db.execute("ROLLBACK")
            self._health.clear()
            self._fresh.clear()
        self._tell(False)

    def _write_fresh(self) -> None:
        """Write the messages sent in the open transaction into the table, in the order
        sent, under ids that follow every id the table has given (as AUTOINCREMENT
        would), remembering each one's id for the block's acknowledgements."""
        if not any(self._fresh.values()):
            return
        rows = sorted(((-ref, p, record) for p, fresh in self._fresh.items()
                       for ref, record in fresh.items()), key=lambda row: row[0])
        (last,) = self._db.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'inbox'), 0),"
            " coalesce((SELECT max(id) FROM inbox), 0))"
        ).fetchone()
        self._db.executemany(
            "INSERT INTO inbox (id, partition, time, data) VALUES (?, ?, ?, ?)",
            [(last + n, p, record.time, record.data) for n, (_, p, record) in enumerate(rows, 1)],
        )
        self._moved.update({-order: last + n for n, (order, _, _) in enumerate(rows, 1)})
        self._fresh.clear()

    def _may_wait(self) -> bool:
        """Whether the open transaction may wait for the next invocations' commits."""
        if not self._may_defer or self.commit_interval <= 0:
            return False
        if self._wrote and not self._committed_partition:
            return False
        if time.monotonic() - self._opened >= self.commit_interval:
            return False
        if any(self._fresh.values()):
            return True
        return self._db.execute("SELECT 1 FROM inbox LIMIT 1").fetchone() is not None

    def commit_held(self) -> None:
        """Make every write so far durable now (the worker calls this before it runs
        activities: user code of any duration must not hold commits back)."""
        with self._mutex:
            if self._db.in_transaction:
                self._commit()
                # a block's later writes begin a new transaction
                self._savepoint = self._block_pending = False

    def _do(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``work`` as a write: inside a block directly in its transaction (the hot
        path of every invocation, so without a context manager per call), else as
        :meth:`_write` does."""
        with self._mutex:
            if self._grouping:
                return work(self._grouped())
            with self._write() as db:
                return work(db)

    def _grouped(self) -> sqlite3.Connection:
        """The connection for a write inside a block, its transaction begun."""
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._opened = time.monotonic()
        elif self._block_pending:  # the first write of a block in an open transaction
            self._db.execute("SAVEPOINT block")
            self._savepoint = True
        self._block_pending = False
        self._wrote = True
        return self._db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._mutex:
            if self._grouping:
                yield self._grouped()
                return
            # a write of its own (a client's): durable when it returns, with whatever
            # an open transaction holds
            pending = self._db.in_transaction
            if pending:  # what the driver sent goes first: it was sent first
                self._write_fresh()
            self._db.execute("SAVEPOINT single" if pending else "BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if pending and self._db.in_transaction:
                    self._db.execute("ROLLBACK TO single")
                    self._db.execute("RELEASE single")
                elif self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                self._tell(False)
                raise
            if pending:
                self._db.execute("RELEASE single")
            self._commit()

    def _read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Read what is durable (clients: statuses, health, dead letters)."""
        with self._read_mutex:
            return self._reader.execute(sql, args).fetchall()

    def _driver_read(self, sql: str, args: Sequence[Any] = ()) -> list[Any]:
        """Read as the driver: with a transaction open, through it (the driver's next
        invocations must see the input and snapshots its earlier ones wrote)."""
        if self._db.in_transaction:  # only while the driver is busy: skip the mutex else
            with self._mutex:
                if self._db.in_transaction:
                    return self._db.execute(sql, args).fetchall()
        return self._read(sql, args)

    # -- input logs and the sender ------------------------------------------------------------

    def send(self, messages: Sequence[Outgoing]) -> None:
        if not messages:
            return
        now = self.clock()
        with self._mutex:
            if self._grouping:  # kept in memory until the commit (see _fresh)
                self._grouped()
                for m in messages:
                    self._fresh_refs -= 1
                    self._fresh.setdefault(m.dest, {})[self._fresh_refs] = Inbound(
                        m.data, now, self._fresh_refs)
                return
            rows = [(m.dest, now, m.data) for m in messages]
            with self._write() as db:
                db.executemany("INSERT INTO inbox (partition, time, data) VALUES (?, ?, ?)",
                               rows)

    def append_raw(self, partition: int, data: bytes) -> None:
        """Put any bytes into a partition's input (for poison tests and tools)."""
        with self._write() as db:
            db.execute("INSERT INTO inbox (partition, time, data) VALUES (?, ?, ?)",
                       (partition, self.clock(), data))

    def read(self, partition: int, limit: int) -> list[Inbound]:
        sql = "SELECT id, time, data FROM inbox WHERE partition = ? ORDER BY id LIMIT ?"
        if self._db.in_transaction:  # as the driver: its own writes and fresh messages
            with self._mutex:
                if self._db.in_transaction:
                    rows = self._db.execute(sql, (partition, limit)).fetchall()
                    records = [Inbound(bytes(data), stamp, ref) for ref, stamp, data in rows]
                    fresh = self._fresh.get(partition)
                    if fresh and len(records) < limit:  # sent after everything in the table
                        records += list(fresh.values())[: limit - len(records)]
                    return records
        rows = self._read(sql, (partition, limit))
        return [Inbound(bytes(data), stamp, ref) for ref, stamp, data in rows]

    def acknowledge(self, partition: int, refs: Sequence[Hashable]) -> None:
        if not refs:
            return
        with self._mutex:
            fresh = self._fresh.get(partition)
            rows = []
            for ref in refs:
                if isinstance(ref, int) and ref < 0:  # sent in the open transaction
                    # taken back out of memory: nothing to write (a block that fails
                    # restores the fresh messages as they were when it began)
                    if fresh is not None and fresh.pop(ref, None) is not None:
                        continue
                    ref = self._moved.get(ref)  # written by a commit since it was read
                    if ref is None:
                        continue
                rows.append((ref,))
            if rows:
                self._do(lambda db: db.executemany("DELETE FROM inbox WHERE id = ?", rows))

    def backlog(self, partition: int | None = None) -> int:
        sql, args = "SELECT COUNT(*) FROM inbox", tuple[int, ...]()
        if partition is not None:
            sql, args = sql + " WHERE partition = ?", (partition,)
        if self._db.in_transaction:  # only while the driver is busy: skip the mutex else
            with self._mutex:
                if self._db.in_transaction:
                    fresh = (sum(len(rows) for rows in self._fresh.values()) if partition is None
                             else len(self._fresh.get(partition, ())))
                    return fresh + int(self._db.execute(sql, args).fetchone()[0])
        return int(self._read(sql, args)[0][0])

    # -- the snapshot store ----------------------------------------------------------------------

    def load(self, partition: int) -> Stored:
        if self._db.in_transaction:  # as the driver: see its own open transaction
            with self._mutex:
                if self._db.in_transaction:
                    return self._load(self._db, partition)
        with self._read_mutex:
            self._reader.execute("BEGIN")  # one consistent view for both reads
            try:
                return self._load(self._reader, partition)
            finally:
                self._reader.execute("COMMIT")

    @staticmethod
    def _load(db: sqlite3.Connection, partition: int) -> Stored:
        # the base lives in a table of its own: updating the small snapshots row (every
        # commit) must not rewrite a base of megabytes
        row = db.execute(
            "SELECT generation, data, deltas, delivered FROM snapshots JOIN bases"
            " USING (partition) WHERE partition = ?",
            (partition,),
        ).fetchone()
        if row is None:
            return Stored()
        generation, base, count, delivered = row
        deltas = [bytes(d) for (d,) in db.execute(
            "SELECT data FROM deltas WHERE partition = ? AND generation = ? ORDER BY n",
            (partition, generation),
        )]
        return Stored(bytes(base), tuple(deltas), f"{generation}.{count}", delivered)

    def _version(self, db: sqlite3.Connection, partition: int) -> tuple[int, int] | None:
        row = db.execute("SELECT generation, deltas FROM snapshots WHERE partition = ?",
                         (partition,)).fetchone()
        return None if row is None else (row[0], row[1])

    def _fence(self, partition: int, current: tuple[int, int] | None, expected: str | None) -> None:
        have = None if current is None else f"{current[0]}.{current[1]}"
        if have != expected:
            raise StaleSnapshotError(
                f"partition {partition}: version {expected} is stale (the folder has {have})"
            )

    def append(self, partition: int, delta: bytes, expected: str | None) -> str:
        return self._do(lambda db: self._append(db, partition, delta, expected))

    def _append(self, db: sqlite3.Connection, partition: int, delta: bytes,
                expected: str | None) -> str:
        try:
            generation, count = (int(n) for n in (expected or "").split("."))
        except ValueError:  # no version (or not one of ours): the fence says what is wrong
            self._fence(partition, self._version(db, partition), expected)
            raise StaleSnapshotError(
                f"partition {partition}: cannot append to version {expected}"
            ) from None
        version = f"{generation}.{count + 1}"
        # the fence and the new head in one statement: it matches only the expected head.
        # Inside a block the delivered mark goes with it (see _marked)
        grouped = self._grouping
        cursor = db.execute(
            "UPDATE snapshots SET deltas = deltas + 1, delivered = CASE WHEN ? THEN ?"
            " ELSE delivered END WHERE partition = ? AND generation = ? AND deltas = ?",
            (grouped, version, partition, generation, count),
        )
        if cursor.rowcount != 1:
            self._fence(partition, self._version(db, partition), expected)
            raise StaleSnapshotError(f"partition {partition}: version {expected} is stale")
        db.execute("INSERT INTO deltas VALUES (?, ?, ?, ?)",
                   (partition, generation, count + 1, delta))
        if grouped:
            self._marked[partition] = version
        self._committed_partition = True
        self.partition_commits += 1
        return version

    def compact(self, partition: int, base: bytes, expected: str | None) -> str:
        with self._write() as db:
            current = self._version(db, partition)
            self._fence(partition, current, expected)
            generation = 1 if current is None else current[0] + 1
            db.execute("DELETE FROM deltas WHERE partition = ?", (partition,))
            db.execute("INSERT OR REPLACE INTO bases VALUES (?, ?)", (partition, base))
            version = f"{generation}.0"
            delivered = version if self._grouping else None  # see _marked
            db.execute(
                "INSERT INTO snapshots (partition, generation, deltas, delivered)"
                " VALUES (?, ?, 0, ?) ON CONFLICT (partition) DO UPDATE SET"
                " generation = excluded.generation, deltas = 0,"
                " delivered = coalesce(excluded.delivered, delivered)",
                (partition, generation, delivered),
            )
            if delivered is not None:
                self._marked[partition] = version
            self._committed_partition = True
            self.partition_commits += 1
        return version

    def delivers_with_commit(self) -> bool:
        """Whether an append or compaction now marks its delivery with it (inside a
        block, which lands whole or not at all; see ``_marked``)."""
        return self._grouping

    def mark_delivered(self, partition: int, version: str) -> None:
        with self._mutex:
            if self._grouping and self._marked.get(partition) == version:
                return  # marked by its commit in this block, which lands whole or not at all
            with self._write() as db:
                db.execute("UPDATE snapshots SET delivered = ? WHERE partition = ?",
                           (version, partition))

    def dead_letter(self, partition: int, data: bytes, reason: str) -> None:
        with self._write() as db:
            db.execute("INSERT INTO dead_letters (partition, time, reason, data) "
                       "VALUES (?, ?, ?, ?)", (partition, self.clock(), reason, data))

    def dead_letters(self) -> list[tuple[int, str, bytes]]:
        rows = self._read("SELECT partition, reason, data FROM dead_letters ORDER BY id")
        return [(p, reason, bytes(data)) for p, reason, data in rows]

    # -- the status store ------------------------------------------------------------------------

    def publish(self, records: Sequence[StatusRecord], health: PartitionHealth) -> None:
        with self._mutex:
            if records:
                self._do(lambda db: self._publish(db, records))
            if self._grouping:  # encoded and written once when the transaction commits
                self._grouped()
                self._health[health.partition] = health
            else:
                with self._write() as db:
                    db.execute("INSERT OR REPLACE INTO health VALUES (?, ?)",
                               (health.partition, _health_row(health)))

    @staticmethod
    def _publish(db: sqlite3.Connection, records: Sequence[StatusRecord]) -> None:
        db.executemany(
            "INSERT INTO status VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (instance_id)"
            " DO UPDATE SET name = excluded.name, status = excluded.status,"
            " partition = excluded.partition, updated = excluded.updated,"
            " result = excluded.result, error = excluded.error,"
            " custom_status = excluded.custom_status"
            " WHERE excluded.updated >= status.updated OR status.status = 'pending'",
            [(r.instance_id, r.name, r.status, r.partition, r.created, r.updated,
              _json(r.result), _json(r.error), _json(r.custom_status))
             for r in records],
        )

    def put_pending(self, record: StatusRecord) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO status VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.instance_id, record.name, record.status, record.partition,
                 record.created, record.updated, "null", "null", "null"),
            )
            return cursor.rowcount == 1

    def get(self, instance_id: str) -> StatusRecord | None:
        rows = self._read("SELECT * FROM status WHERE instance_id = ?", (instance_id,))
        return _record(rows[0]) if rows else None

    def query(self, query: StatusQuery) -> list[StatusRecord]:
        where, args = [], []
        for column, op, value in (
            ("status", "=", query.status), ("name", "=", query.name),
            ("created", ">=", query.since), ("created", "<", query.until),
            ("instance_id", ">", query.after),
        ):
            if value is not None:
                where.append(f"{column} {op} ?")
                args.append(value)
        sql = "SELECT * FROM status"
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._read(sql + " ORDER BY instance_id LIMIT ?", (*args, query.limit))
        return [_record(row) for row in rows]

    def health(self) -> list[PartitionHealth]:
        rows = self._read("SELECT data FROM health ORDER BY partition")
        return [PartitionHealth(**json.loads(data)) for (data,) in rows]

    def purge(self, instance_id: str) -> bool:
        with self._write() as db:
            cursor = db.execute(
                f"DELETE FROM status WHERE instance_id = ? AND status IN {DONE!r}",
                (instance_id,),
            )
            return cursor.rowcount == 1


_HEALTH_FIELDS = tuple(f.name for f in dataclasses.fields(PartitionHealth))


def _health_row(health: PartitionHealth) -> str:
    # by hand: dataclasses.asdict() copies deeply and costs more than the write
    return json.dumps({name: getattr(health, name) for name in _HEALTH_FIELDS})


def _json(value: Any) -> str:
    return "null" if value is None else json.dumps(value)


def _record(row: Sequence[Any]) -> StatusRecord:
    iid, name, status, partition, created, updated, result, error, custom = row
    return StatusRecord(iid, name, status, partition, created, updated,
                        json.loads(result), json.loads(error), json.loads(custom or "null"))
