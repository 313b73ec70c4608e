"""Messages sent inside the folder's open transaction stay in memory until it commits:
one that the driver takes and acknowledges before then is never written to the input
table. What a user relies on is unchanged: every message arrives once, in its sender's
order, a block that fails gives back what it took, and what is durable is exactly what a
commit wrote (the crash matrix, the kill -9 test and the seeded schedules cover the rest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosts.local import LocalHost
from hosts.local.folder import FolderState
from reactive.hosting.seams import Outgoing
from samples.counter.app import IncrementMany

from .harness import app


class Crash(Exception):
    pass


def _folder(path: Path) -> FolderState:
    folder = FolderState(path, app.name, 2)
    folder.commit_interval = 3600.0  # held until the input runs out or commit_held()
    return folder


def _hop(folder: FolderState, messages: list[Outgoing]) -> None:
    """What an invocation writes: a commit of its partition (0), then its sends."""
    with folder.group(group_commit=True):
        folder.compact(0, b"base", folder.load(0).version)
        folder.send(messages)


def _payloads(folder: FolderState, partition: int) -> list[bytes]:
    return [record.data for record in folder.read(partition, 100)]


def test_a_message_taken_in_the_open_transaction_is_never_written(tmp_path: Path) -> None:
    host = LocalHost(app, partitions=4, state_dir=tmp_path / "s")
    folder = host.folder
    assert folder is not None
    folder.commit_interval = 3600.0
    try:
        client = host.client()
        host.run()  # every partition's first commit
        with host.batch():
            ids = [client.start(IncrementMany(counter=c, times=3)) for c in range(8)]
        inserts: list[str] = []
        folder._db.set_trace_callback(
            lambda sql: inserts.append(sql) if sql.startswith("INSERT INTO inbox") else None)
        host.run()
        folder._db.set_trace_callback(None)
        # the increments of counters on other partitions and their answers travel
        # between partitions, each taken in the transaction that sent it (it is held
        # until the input runs out)
        assert host.deliveries > 8 + 8
        assert inserts == []
        results = {iid: client.status(iid) for iid in ids}
        assert all(r is not None and r.status == "completed" and r.result == [1, 2, 3]
                   for r in results.values()), results
        assert folder.backlog() == 0
    finally:
        host.close()


def test_a_failing_block_gives_back_the_fresh_messages_it_took(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "s")
    try:
        _hop(folder, [Outgoing(1, b"a", ""), Outgoing(1, b"b", "")])
        assert folder._db.in_transaction  # held: input is waiting
        with pytest.raises(Crash), folder.group(group_commit=True):
            taken = folder.read(1, 10)
            assert [r.data for r in taken] == [b"a", b"b"]
            folder.acknowledge(1, [r.ref for r in taken])
            folder.send([Outgoing(1, b"c", "")])
            assert _payloads(folder, 1) == [b"c"]
            raise Crash
        assert _payloads(folder, 1) == [b"a", b"b"]
        assert folder.backlog(1) == 2 and folder.backlog() == 2
        folder.commit_held()
        other = FolderState(tmp_path / "s", app.name, driver=False)
        try:
            assert _payloads(other, 1) == [b"a", b"b"]  # durable, in the order sent
        finally:
            other.close()
    finally:
        folder.close()


def test_a_rolled_back_transaction_takes_its_fresh_messages_with_it(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "s")
    try:
        with pytest.raises(Crash), folder.group(group_commit=True):
            folder.send([Outgoing(0, b"lost", "")])
            raise Crash
        assert not folder._db.in_transaction
        assert folder.backlog() == 0 and _payloads(folder, 0) == []
    finally:
        folder.close()


def test_fresh_messages_follow_the_table_and_a_client_write_keeps_the_order(
    tmp_path: Path,
) -> None:
    folder = _folder(tmp_path / "s")
    try:
        folder.send([Outgoing(0, b"old", "")])  # durable before the transaction
        _hop(folder, [Outgoing(0, b"fresh1", "")])
        assert folder._db.in_transaction
        folder.send([Outgoing(0, b"client", "")])  # a write of its own: durable at once
        assert not folder._db.in_transaction
        _hop(folder, [Outgoing(0, b"fresh2", "")])
        assert _payloads(folder, 0) == [b"old", b"fresh1", b"client", b"fresh2"]
        assert [r.data for r in folder.read(0, 3)] == [b"old", b"fresh1", b"client"]
        folder.commit_held()
        refs = [r.ref for r in folder.read(0, 10)]
        assert refs == sorted(refs) and all(isinstance(r, int) and r > 0 for r in refs)
    finally:
        folder.close()


def test_messages_written_by_a_commit_inside_the_block_are_acknowledged_by_their_old_refs(
    tmp_path: Path,
) -> None:
    """The worker commits what is held before it runs activities, inside its block: the
    fresh messages it already took are written then, and its acknowledgement (by the refs
    it read) must delete those rows, or they would be delivered again."""
    folder = _folder(tmp_path / "s")
    try:
        _hop(folder, [Outgoing(1, b"a", ""), Outgoing(1, b"b", ""), Outgoing(0, b"x", "")])
        assert folder._db.in_transaction
        with folder.group(group_commit=True):
            taken = folder.read(1, 10)
            folder.commit_held()  # as before activities
            folder.acknowledge(1, [r.ref for r in taken])
        assert not folder._db.in_transaction
        other = FolderState(tmp_path / "s", app.name, driver=False)
        try:
            assert _payloads(other, 1) == [] and _payloads(other, 0) == [b"x"]
        finally:
            other.close()
    finally:
        folder.close()
