"""Group commit in the state folder: the driver's invocations share one transaction, so
one fsync, while more input waits; what they wrote stays invisible to clients and other
processes until it is durable, and a lone invocation or a client's write is durable when
it returns. (That a crash loses nothing is the kill -9 test's and the crash matrix's.)"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from hosts.local import LocalHost
from hosts.local.folder import FolderState
from reactive.hosting.memory import MemoryStore
from reactive.hosting.seams import StaleSnapshotError
from samples.counter.app import CounterKey, IncrementMany

from .harness import Pipeline, app, pipeline_total


def test_a_driver_run_shares_fsyncs_between_invocations(tmp_path: Path) -> None:
    grouped = LocalHost(app, partitions=4, state_dir=tmp_path / "grouped")
    alone = LocalHost(app, partitions=4, state_dir=tmp_path / "alone")
    try:
        for host, interval in ((grouped, 3600.0), (alone, 0.0)):
            assert host.folder is not None
            host.folder.commit_interval = interval
            client = host.client()
            with host.batch():
                ids = [client.start(IncrementMany(counter=i % 3, times=5)) for i in range(12)]
            before = host.folder.durable_commits, host.folder.partition_commits
            host.run()
            fsyncs = host.folder.durable_commits - before[0]
            commits = host.folder.partition_commits - before[1]
            if interval:
                assert fsyncs < commits / 2, (fsyncs, commits)
            else:
                assert fsyncs >= commits, (fsyncs, commits)
            # each counter's 20 increments, each answered once, whatever the schedule
            got: dict[int, list[int]] = {0: [], 1: [], 2: []}
            for i, iid in enumerate(ids):
                status = client.status(iid)
                assert status is not None and status.status == "completed"
                got[i % 3] += status.result
            assert {c: sorted(ns) for c, ns in got.items()} == {
                c: list(range(1, 21)) for c in range(3)
            }
    finally:
        grouped.close()
        alone.close()



def _counter_elsewhere(host: LocalHost, owner: int) -> int:
    """A counter whose state lives on another partition than ``owner``."""
    schema = host.schema
    return next(
        c for c in range(100)
        if schema.owner(schema.states_by_name["UpdateCounter"].affinity.pkey(
            CounterKey(counter=c)), host.count) != owner
    )

def test_a_held_commit_is_invisible_until_durable(tmp_path: Path) -> None:
    host = LocalHost(app, partitions=4, state_dir=tmp_path / "s")
    assert host.folder is not None
    host.folder.commit_interval = 3600.0
    other = FolderState(tmp_path / "s", app.name, driver=False)  # another process's view
    try:
        client = host.client()
        schema = host.schema
        iid = "inc"
        owner = schema.instance_owner(iid, host.count)
        counter = _counter_elsewhere(host, owner)
        client.start(IncrementMany(counter=counter, times=2), instance_id=iid)
        assert other.get(iid).status == "pending"  # type: ignore[union-attr]

        # the start runs and sends its first increment elsewhere: input waits, so the
        # commit is held for the next invocations
        outcome = host.invoke(owner, group_commit=True)
        assert outcome.committed is not None
        assert other.get(iid).status == "pending"  # type: ignore[union-attr]
        assert host.folder.backlog() == 1  # the driver itself sees what it sent

        host.folder.commit_held()
        assert other.get(iid).status == "running"  # type: ignore[union-attr]

        # an invocation without group commit is durable when it returns
        host.invoke(schema.owner(
            schema.states_by_name["UpdateCounter"].affinity.pkey(CounterKey(counter=counter)),
            host.count,
        ))
        assert other.backlog() == 1  # the increment's answer, durable

        host.run()
        record = other.get(iid)
        assert record is not None and record.status == "completed" and record.result == [1, 2]
    finally:
        other.close()
        host.close()


def test_a_store_with_another_flush_is_not_taken_for_group_commit() -> None:
    """The worker asks a group-committing store to commit what it holds before it runs
    activities; a store with some other flush (the Blob store's takes a partition) must
    not be called for it."""

    class OtherFlush(MemoryStore):
        def flush(self, partition: int) -> None:
            raise AssertionError("not a group commit")

    host = LocalHost(app, partitions=2)
    host.store = OtherFlush()
    host.workers = [host.new_worker(i) for i in range(host.count)]
    assert host.client().perform(Pipeline(tag="t", n=2, delay=1.0)) == pipeline_total(2)


def test_instances_finishing_along_the_way_do_not_end_a_held_commit(tmp_path: Path) -> None:
    """Under load an invocation finishes an instance almost every time; committing at each
    finish made one fsync per one or two invocations. A waiting client waits at most the
    commit interval; what the run finished is durable, and visible, when it ends."""
    host = LocalHost(app, partitions=4, state_dir=tmp_path / "s")
    assert host.folder is not None
    host.folder.commit_interval = 3600.0
    other = FolderState(tmp_path / "s", app.name, driver=False)  # another process's view
    try:
        client = host.client()
        with host.batch():  # instances that finish in different rounds of the driver
            ids = {client.start(IncrementMany(counter=t, times=t)): t for t in range(1, 7)}
        before = host.folder.durable_commits
        host.run()
        # no activities run and nothing else flushes: the input running out ends it
        assert host.folder.durable_commits - before == 1
        for iid, times in ids.items():
            record = other.get(iid)
            assert record is not None and record.status == "completed"
            assert record.result == list(range(1, times + 1))
    finally:
        other.close()
        host.close()


def test_a_commit_in_a_block_is_fenced_and_marks_its_delivery_with_it(tmp_path: Path) -> None:
    """Inside a block the append's fence, the new head and the delivered mark are one
    statement: a stale append still fails, and a block that fails takes its append, its
    delivered mark and its health row back with it."""
    host = LocalHost(app, partitions=2, state_dir=tmp_path / "s")
    folder = host.folder
    assert folder is not None
    try:
        client = host.client()
        client.start(IncrementMany(counter=1, times=2))
        host.run()
        health = {h.partition: h for h in folder.health()}
        for p in range(2):
            stored = folder.load(p)
            assert stored.version is not None and stored.delivered == stored.version
            assert health[p].commit == stored.version  # the latest, written at the commit
        version = folder.load(0).version
        assert version is not None
        generation, count = version.split(".")
        stale = f"{generation}.{int(count) - 1}"
        with pytest.raises(StaleSnapshotError), folder.group():
            folder.append(0, b"late", stale)
        assert folder.load(0).version == version

        class Crash(Exception):
            pass

        worker = host.workers[0]
        with pytest.raises(Crash), folder.group():
            new = folder.append(0, b"lost", version)
            folder.publish([], dataclasses.replace(health[0], commit=new, number=999))
            folder.mark_delivered(0, new)
            raise Crash
        stored = folder.load(0)
        assert (stored.version, stored.delivered) == (version, version)
        assert len(stored.deltas) == int(count)
        assert {h.partition: h for h in folder.health()}[0] == health[0]
        worker.forget()  # the store is as before: the partition loads and runs on
        client.start(IncrementMany(counter=1, times=1))
        host.run()
        assert folder.load(0).delivered == folder.load(0).version
    finally:
        host.close()


def test_an_invocation_that_writes_nothing_costs_no_savepoint_and_keeps_the_held_commit(
    tmp_path: Path,
) -> None:
    """An invocation inside a held transaction takes its savepoint at its first write: one
    with nothing to do runs no SAVEPOINT or RELEASE, and if it fails, the held commit's
    writes stay and become durable with the next commit."""
    host = LocalHost(app, partitions=4, state_dir=tmp_path / "s")
    assert host.folder is not None
    folder = host.folder
    folder.commit_interval = 3600.0
    other = FolderState(tmp_path / "s", app.name, driver=False)  # another process's view
    try:
        client = host.client()
        host.run()  # every partition's first commit
        iid = "inc"
        owner = host.schema.instance_owner(iid, host.count)
        client.start(IncrementMany(counter=1, times=2), instance_id=iid)
        assert host.invoke(owner, group_commit=True).committed is not None
        held = folder.durable_commits
        idle = next(p for p in range(host.count) if not folder.backlog(p))
        statements: list[str] = []
        folder._db.set_trace_callback(statements.append)
        outcome = host.invoke(idle, group_commit=True)
        assert outcome.committed is None
        assert not [s for s in statements if s.split()[0] in ("SAVEPOINT", "RELEASE")]

        class Crash(Exception):
            pass

        with pytest.raises(Crash), folder.group(group_commit=True):
            raise Crash
        folder._db.set_trace_callback(None)
        assert folder.durable_commits == held
        assert other.get(iid).status == "pending"  # type: ignore[union-attr]
        folder.commit_held()
        assert other.get(iid).status == "running"  # type: ignore[union-attr]
        host.run()
        record = other.get(iid)
        assert record is not None and record.status == "completed" and record.result == [1, 2]
    finally:
        other.close()
        host.close()


def _last_outbox(folder: FolderState, partition: int) -> list[Any]:
    stored = folder.load(partition)
    assert stored.deltas and stored.delivered == stored.version
    outbox: list[Any] = json.loads(stored.deltas[-1].partition(b"\n")[2])["host"]["outbox"]
    return outbox


def test_a_commit_delivered_in_its_own_transaction_stores_no_outbox(tmp_path: Path) -> None:
    """Inside a block the delivery lands with the commit and is marked with it, so the
    commit does not store its outbox; outside a block (a worker driven on the folder
    directly, which delivers after a durable commit) it still does."""
    host = LocalHost(app, partitions=4, state_dir=tmp_path / "s")
    folder = host.folder
    assert folder is not None
    try:
        client = host.client()
        host.run()  # every partition's first commit
        schema = host.schema
        results = []
        for n, in_block in enumerate((True, False)):
            iid = f"inc{n}"
            owner = schema.instance_owner(iid, host.count)
            counter = _counter_elsewhere(host, owner)
            client.start(IncrementMany(counter=counter, times=2), instance_id=iid)
            if in_block:
                outcome = host.invoke(owner)
            else:
                batch = folder.read(owner, 10)
                outcome = host.workers[owner].handle(batch)
                folder.acknowledge(owner, outcome.acknowledged)
            assert outcome.sent == 1
            assert len(_last_outbox(folder, owner)) == (0 if in_block else 1)
            host.run()
            results.append(client.status(iid))
        assert [r.result if r else None for r in results] == [[1, 2], [1, 2]]
    finally:
        host.close()


def test_a_sweep_of_an_idle_host_invokes_no_partition(tmp_path: Path) -> None:
    """An idle driver (``reactive serve`` between requests) skips partitions with no input,
    nothing to deliver and no timer due, instead of invoking each one empty; the next
    input is still processed, and a held commit still ends when the input runs out."""
    host = LocalHost(app, partitions=4, state_dir=tmp_path / "state")
    try:
        assert host.folder is not None
        host.folder.commit_interval = 3600.0
        client = host.client()
        first = client.start(IncrementMany(counter=1, times=3))
        host.run()
        invocations, commits = host.invocations, host.folder.durable_commits
        host.run()
        host.run()
        assert (host.invocations, host.folder.durable_commits) == (invocations, commits)
        second = client.start(IncrementMany(counter=1, times=2))
        host.run()
        assert host.invocations > invocations
        # read through the reader connection: only what is durable
        results = [client.status(iid) for iid in (first, second)]
        assert [(s.status, s.result) for s in results if s is not None] == [
            ("completed", [1, 2, 3]), ("completed", [4, 5]),
        ]
    finally:
        host.close()
