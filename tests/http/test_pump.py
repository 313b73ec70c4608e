"""The writer that groups client requests into one batch, and the watcher that answers
waits by polling or as commits are reported."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hosts.bench import workloads as bench
from hosts.http.pump import GroupWriter, Watcher, observe_publish, settle_from_thread
from hosts.local import LocalHost
from reactive import Activity, ActivityContext, App, Orchestration, OrchestrationContext
from reactive.hosting.memory import MemoryStatusStore
from reactive.hosting.seams import PartitionHealth, StatusRecord


def record(iid: str, status: str, updated: float = 1.0) -> StatusRecord:
    return StatusRecord(iid, "Job", status, 0, 0.0, updated)  # type: ignore[arg-type]


def test_writer_groups_queued_calls_and_keeps_failures_apart() -> None:
    batches: list[list[str]] = []
    gate = threading.Event()
    current: list[str] = []

    @contextlib.contextmanager
    def batch() -> Iterator[None]:
        current.clear()
        yield
        batches.append(list(current))

    def job(name: str) -> str:
        gate.wait(10)
        if name == "bad":
            raise ValueError("bad job")
        current.append(name)
        return name.upper()

    async def main() -> list[object]:
        writer = GroupWriter(batch)
        calls = [writer.call(job, n) for n in ("a", "b", "bad", "c")]
        tasks = [asyncio.ensure_future(c) for c in calls]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        return list(results)

    results = asyncio.run(main())
    assert results[:2] == ["A", "B"] and results[3] == "C"
    assert isinstance(results[2], ValueError)
    assert sum(len(b) for b in batches) == 3 and len(batches) <= 2


def test_writer_fails_every_call_of_a_batch_that_does_not_commit() -> None:
    @contextlib.contextmanager
    def batch() -> Iterator[None]:
        yield
        raise OSError("disk full")

    async def main() -> None:
        writer = GroupWriter(batch)
        with pytest.raises(OSError, match="disk full"):
            await writer.call(lambda: 1)
        writer.close()

    asyncio.run(main())


@pytest.mark.parametrize("told", [False, True])
def test_watcher_answers_by_polling_or_when_told(told: bool) -> None:
    store = MemoryStatusStore()
    store.put_pending(record("w", "pending", 0.0))

    async def main() -> tuple[StatusRecord | None, StatusRecord | None]:
        watcher = Watcher(store)
        if told:
            assert observe_publish(store, watcher.published)
            watcher.notified(poll=3600)  # only a report can answer in time
        waiting = asyncio.ensure_future(watcher.wait("w", 30))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        store.publish([record("w", "completed", 2.0)], PartitionHealth(0, "1", 2.0))
        done = await waiting
        late = await watcher.wait("w", 0)
        watcher.close()
        return done, late

    done, late = asyncio.run(main())
    assert done is not None and done.status == "completed"
    assert late is not None and late.status == "completed"


def test_watcher_times_out_with_the_latest_record() -> None:
    store = MemoryStatusStore()
    store.put_pending(record("slow", "pending", 0.0))

    async def main() -> StatusRecord | None:
        watcher = Watcher(store)
        found = await watcher.wait("slow", 0.05)
        watcher.close()
        return found

    found = asyncio.run(main())
    assert found is not None and found.status == "pending"


def test_watcher_following_commits_answers_only_what_committed() -> None:
    store = MemoryStatusStore()
    store.put_pending(record("c", "pending", 0.0))

    async def main() -> tuple[bool, bool, StatusRecord | None]:
        watcher = Watcher(store)
        watcher.follow(poll=3600)  # only a reported commit can answer in time
        entry = watcher.register("c")
        waiting = asyncio.ensure_future(watcher.wait("c", 30, entry, fresh=True))
        watcher.published([record("c", "completed", 2.0)])
        watcher.committed(False)  # rolled back: that finish never happened
        await asyncio.sleep(0.05)
        after_rollback = waiting.done()
        watcher.published([record("c", "failed", 3.0)])
        await asyncio.sleep(0.05)
        before_commit = waiting.done()
        watcher.committed(True)
        found = await waiting
        watcher.close()
        return after_rollback, before_commit, found

    after_rollback, before_commit, found = asyncio.run(main())
    assert not after_rollback and not before_commit
    assert found is not None and found.status == "failed"


def test_futures_settled_from_a_thread_share_wake_ups_of_their_loop() -> None:
    """A commit that ends many requests settles each with its own value (or error),
    and wakes their event loop once rather than once per request."""

    async def scenario() -> tuple[list[Any], int]:
        loop = asyncio.get_running_loop()
        wake_ups = [0]
        original = loop.call_soon_threadsafe

        def counted(*args: Any, **kwargs: Any) -> Any:
            wake_ups[0] += 1
            return original(*args, **kwargs)

        loop.call_soon_threadsafe = counted  # type: ignore[method-assign,assignment]
        futures = [loop.create_future() for _ in range(200)]

        def settle_all() -> None:
            for i, future in enumerate(futures):
                if i == 7:
                    settle_from_thread(future, False, ValueError("seven"))
                else:
                    settle_from_thread(future, True, i)

        # the loop is busy in this coroutine while the thread settles them all
        thread = threading.Thread(target=settle_all)
        thread.start()
        thread.join()
        results = await asyncio.gather(*futures, return_exceptions=True)
        return results, wake_ups[0]

    results, wake_ups = asyncio.run(scenario())
    assert [r for i, r in enumerate(results) if i != 7] == [i for i in range(200) if i != 7]
    assert isinstance(results[7], ValueError)
    assert wake_ups == 1


# -- requests run by a LocalHost's driver ------------------------------------------------------


def test_submitted_starts_commit_with_their_processing(tmp_path: Path) -> None:
    """Starts submitted together share the driver's transactions with the invocations that
    run them: once a start is reported, its instance has durably finished, and a job that
    fails fails alone."""
    host = LocalHost(bench.app, partitions=2, state_dir=tmp_path, fsync=False)
    commits: list[bool] = []
    host.on_commit(commits.append)
    client = host.client()
    host.start_background()
    results: list[tuple[bool, Any]] = []
    seen: list[int] = []  # the number of commits when each start was reported
    finished = threading.Event()

    def done(ok: bool, value: Any) -> None:
        results.append((ok, value))
        seen.append(commits.count(True))
        if len(results) == 21:
            finished.set()

    def broken() -> None:
        raise ValueError("bad request")

    try:
        with host._mutex:  # the driver waits: the jobs queue up together
            for i in range(20):
                host.submit(functools.partial(client.start, bench.HelloSequence(), f"s{i}"),
                            done)
            host.submit(broken, done)
        assert finished.wait(60)
        statuses = {i: host.status.get(f"s{i}") for i in range(20)}
    finally:
        host.close()
    ok = [value for good, value in results if good]
    errors = [value for good, value in results if not good]
    assert sorted(ok) == sorted(f"s{i}" for i in range(20))
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    # one transaction for the lot (two if the driver took the first job before the rest)
    assert len(set(seen)) <= 2
    for status in statuses.values():
        assert status is not None and status.status == "completed"
        assert status.result == bench.expected_sequence(3)


def test_a_submitted_start_and_its_short_activities_take_one_commit(tmp_path: Path) -> None:
    """A start run by the driver commits once, with the activities it ran: the start
    is not made durable alone before them (that was a second fsync per request)."""
    # one partition: the warm-up start creates it, and nothing else is left to commit
    host = LocalHost(bench.app, partitions=1, state_dir=tmp_path, fsync=False)
    commits: list[bool] = []
    host.on_commit(commits.append)
    client = host.client()
    host.start_background()
    reported: list[tuple[bool, Any, int]] = []
    finished = threading.Event()

    def done(ok: bool, value: Any) -> None:
        reported.append((ok, value, commits.count(True)))
        finished.set()

    try:
        # the first start also creates the partition: only the later ones are counted
        host.submit(functools.partial(client.start, bench.HelloSequence(), "warm"), done)
        assert finished.wait(60)
        counts = []
        for i in range(3):
            finished.clear()
            with host._mutex:  # the driver is between invocations
                before = commits.count(True)
                host.submit(functools.partial(client.start, bench.HelloSequence(), f"s{i}"),
                            done)
            assert finished.wait(60)
            counts.append(reported[-1][2] - before)
        statuses = [host.status.get(f"s{i}") for i in range(3)]
    finally:
        host.close()
    assert [ok for ok, _, _ in reported] == [True] * 4
    assert counts == [1, 1, 1]
    for status in statuses:
        assert status is not None and status.status == "completed"
        assert status.result == bench.expected_sequence(3)


# an activity that runs until the test lets it go (module level: the app needs the class)
_gate_app = App("held-commit-tests")
_activity_running = threading.Event()
_activity_gate = threading.Event()


@_gate_app.register
class WaitForGate(Activity[str]):
    def execute(self, ctx: ActivityContext) -> str:
        _activity_running.set()
        _activity_gate.wait(60)
        return "let go"


@_gate_app.register
class Gated(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        return await ctx.perform(WaitForGate())


def test_a_long_activity_does_not_keep_the_requests_transaction_open(tmp_path: Path) -> None:
    """Short activities may share their start's commit, but one that runs on must not
    hold the folder's write lock: other processes add input to the folder meanwhile."""
    _activity_running.clear()
    _activity_gate.clear()
    host = LocalHost(_gate_app, partitions=1, state_dir=tmp_path, fsync=False)
    client = host.client()
    host.start_background()
    finished = threading.Event()
    try:
        host.submit(functools.partial(client.start, Gated(), "g"), lambda ok, v: finished.set())
        assert _activity_running.wait(60)
        other = sqlite3.connect(tmp_path / "state.db", timeout=5.0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # "database is locked" while a commit is held
            other.execute("ROLLBACK")
        finally:
            other.close()
        _activity_gate.set()
        assert finished.wait(60)
        assert client.wait("g", timeout=60) == "let go"
    finally:
        _activity_gate.set()
        host.close()


def test_submit_needs_a_driven_host(tmp_path: Path) -> None:
    host = LocalHost(bench.app, partitions=1, state_dir=tmp_path, fsync=False)
    try:
        with pytest.raises(RuntimeError, match="start_background"):
            host.submit(lambda: None, lambda ok, value: None)
    finally:
        host.close()


# activities that note the thread they ran on
_threads_app = App("burst-tests")
_ran_on: list[str] = []


@_threads_app.register
class NoteThread(Activity[int]):
    n: int

    def execute(self, ctx: ActivityContext) -> int:
        _ran_on.append(threading.current_thread().name)
        return self.n


@_threads_app.register
class Noted(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return sum([await ctx.perform(NoteThread(n=n)) for n in range(3)])


def test_a_burst_of_starts_runs_its_activities_without_a_hand_over_each(
    tmp_path: Path,
) -> None:
    """Many starts taken together commit once before their activities, which then run on
    the driver's thread (a hand-over per activity cost more than that commit); a lone
    start still holds its commit for its short activities (the test above)."""
    _ran_on.clear()
    host = LocalHost(_threads_app, partitions=1, state_dir=tmp_path, fsync=False)
    commits: list[bool] = []
    host.on_commit(commits.append)
    client = host.client()
    host.start_background()
    reported: list[tuple[bool, Any]] = []
    count = 40
    all_done = threading.Event()

    def done(ok: bool, value: Any) -> None:
        reported.append((ok, value))
        if len(reported) == count:
            all_done.set()

    try:
        with host._mutex:  # the driver waits: the starts queue up and are taken together
            for i in range(count):
                host.submit(functools.partial(client.start, Noted(), f"b{i}"), done)
        assert all_done.wait(60)
        statuses = [host.status.get(f"b{i}") for i in range(count)]
    finally:
        host.close()
    assert all(ok for ok, _ in reported)
    for status in statuses:
        assert status is not None and status.status == "completed" and status.result == 3
    assert len(_ran_on) == 3 * count
    # the driver may have taken the first start alone, before the rest were queued
    assert sum(name == "reactive-driver" for name in _ran_on) >= 3 * (count - 1)
    assert commits.count(True) <= 6


def test_a_burst_whose_processing_fails_after_its_commit_still_runs(tmp_path: Path) -> None:
    """A burst commits its starts before running their activities: if its invocation
    then fails (a crash there), the committed starts are not lost but run from the input
    log, without being sent again."""
    host = LocalHost(_threads_app, partitions=1, state_dir=tmp_path, fsync=False)
    client = host.client()
    worker = host.workers[0]
    commit = worker._commit
    failed: list[int] = []

    def fail_a_burst_once(warm: Any, effects: Any, dead: Any, outcome: Any) -> None:
        if len(outcome.acknowledged) > 4 and not failed:
            failed.append(len(outcome.acknowledged))
            raise RuntimeError("crash after the burst's first commit")
        commit(warm, effects, dead, outcome)

    worker._commit = fail_a_burst_once  # type: ignore[method-assign]
    host.start_background()
    count = 40
    reported: list[bool] = []
    all_done = threading.Event()

    def done(ok: bool, value: Any) -> None:
        reported.append(ok)
        if len(reported) == count + 1:
            all_done.set()

    try:
        host.submit(functools.partial(client.start, Noted(), "warm"), done)
        with host._mutex:  # the driver waits: the starts queue up and are taken together
            for i in range(count):
                host.submit(functools.partial(client.start, Noted(), f"c{i}"), done)
        assert all_done.wait(60)
        assert failed, "no burst was taken"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the driver runs what the log holds
            statuses = [host.status.get(f"c{i}") for i in range(count)]
            if all(s is not None and s.status == "completed" for s in statuses):
                break
            time.sleep(0.05)
    finally:
        host.close()
    assert False in reported  # the failed burst's requests were answered with the error
    assert [s.status if s else None for s in statuses] == ["completed"] * count
    assert all(s is not None and s.result == 3 for s in statuses)
