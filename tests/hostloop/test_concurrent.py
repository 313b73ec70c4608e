"""Two invocations of one partition at once (two instances of the serverless function, or
a slow one whose lease expired): the snapshot write is fenced by the version each loaded,
so exactly one of them saves; the loser raises StaleSnapshotError and changes nothing."""

from __future__ import annotations

import random
import threading

import pytest

from reactive.hosting.loop import InvocationReport
from reactive.hosting.seams import StaleSnapshotError
from samples.counter.app import IncrementMany

from .harness import (
    ACTIVITY_RUNS,
    big_workload,
    check,
    drive,
    new_host,
    run_workload,
    second_loop,
)

WORKLOAD = big_workload()


def test_an_invocation_overtaken_at_sent_fails_to_save() -> None:
    """A's hook at "sent" runs a complete invocation B of the same partition on a second
    loop; A's save must then raise StaleSnapshotError, and B's work stands."""
    ACTIVITY_RUNS.clear()
    host = new_host(4)
    other = second_loop(host)
    client = host.client()
    iid = "inc-a"
    owner = host.schema.instance_owner(iid, host.count)
    # the counter lives on another partition: the invocation has messages to send
    counter = (owner + 1) % host.count
    client.start(IncrementMany(counter=counter, times=3, parallel=True), instance_id=iid)
    inner: list[InvocationReport] = []
    versions: list[str | None] = []

    def hook(step: str) -> None:
        if step == "sent" and not inner:
            versions.append(host.store.load(owner)[1])
            inner.append(other.invoke(owner))
            versions.append(host.store.load(owner)[1])

    with pytest.raises(StaleSnapshotError):
        host.loop.invoke(owner, hook)
    assert inner and inner[0].processed > 0 and inner[0].sent > 0
    assert versions[0] != versions[1]  # B saved
    assert host.store.load(owner)[1] == versions[1]  # A did not
    assert client.status(iid).status == "running"  # type: ignore[union-attr]
    stats = drive(host, random.Random(1), loops=[other])
    host.loop.forget()  # the last snapshot may be the other loop's
    assert client.status(iid).result == [1, 2, 3]  # type: ignore[union-attr]
    assert stats.invocations > 0


def test_the_later_invocation_loses_when_the_earlier_saves_first() -> None:
    """The reverse: A (started first) pauses at "sent"; B of the same partition starts,
    and at its own "sent" lets A finish and save. B's save must then raise
    StaleSnapshotError. A runs in a thread so that it can finish while B is paused."""
    ACTIVITY_RUNS.clear()
    host = new_host(4)
    other = second_loop(host)
    client = host.client()
    iid = "inc-b"
    owner = host.schema.instance_owner(iid, host.count)
    # the counter lives on another partition: the invocation has messages to send
    counter = (owner + 1) % host.count
    client.start(IncrementMany(counter=counter, times=3, parallel=True), instance_id=iid)
    a_paused, a_go = threading.Event(), threading.Event()
    a_result: list[InvocationReport | BaseException] = []

    def a_hook(step: str) -> None:
        if step == "sent" and not a_paused.is_set():
            a_paused.set()
            assert a_go.wait(10), "B never let A go on"

    def run_a() -> None:
        try:
            a_result.append(host.loop.invoke(owner, a_hook))
        except BaseException as exc:
            a_result.append(exc)

    thread = threading.Thread(target=run_a)
    thread.start()
    assert a_paused.wait(10), "A never reached 'sent'"
    loaded_by_b: list[str | None] = []

    def b_hook(step: str) -> None:
        if step == "sent" and not loaded_by_b:
            loaded_by_b.append(host.store.load(owner)[1])
            a_go.set()
            thread.join(10)

    with pytest.raises(StaleSnapshotError):
        other.invoke(owner, b_hook)
    thread.join(10)
    assert not thread.is_alive()
    assert len(a_result) == 1 and isinstance(a_result[0], InvocationReport), a_result
    assert a_result[0].processed > 0
    assert loaded_by_b == [None]  # neither had saved when B got to "sent"
    assert host.store.load(owner)[1] == "1"  # A's snapshot, and only A's
    drive(host, random.Random(2), loops=[other])
    host.loop.forget()  # the last snapshot may be the other loop's
    assert client.status(iid).result == [1, 2, 3]  # type: ignore[union-attr]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_overtaken_invocations_throughout_a_run(seed: int) -> None:
    """Invocations run on one of two loops at random (each keeping its partitions warm, so
    one may run on a stale copy), and a third of them are overtaken at "sent" by a whole
    invocation on the other loop. Every overtaken invocation must fail to save (the driver
    checks), and the results are those of the workload."""
    outcome = run_workload(
        WORKLOAD, partitions=4, seed=seed, extra_loops=1, overtake_probability=0.35
    )
    assert outcome.stats.overtaken > 0
    assert outcome.stats.stale >= outcome.stats.overtaken
    check(outcome, WORKLOAD)


@pytest.mark.parametrize("seed", [1, 2])
def test_three_loops_with_crashes(seed: int) -> None:
    outcome = run_workload(
        WORKLOAD,
        partitions=3,
        seed=seed,
        extra_loops=2,
        overtake_probability=0.25,
        crash_steps=("processed", "sent-one", "sent"),
        crash_probability=0.2,
        duplicate_probability=0.1,
    )
    assert outcome.stats.overtaken > 0
    check(outcome, WORKLOAD)


def test_a_stale_warm_loop_does_not_save() -> None:
    """Loop X keeps partition p warm; loop Y then processes p's newer input and saves. When
    X is invoked for p with more input, its warm copy is stale: it must not save over Y's
    snapshot, and the next invocation (restored from the store) finishes the work."""
    ACTIVITY_RUNS.clear()
    host = new_host(1)
    x, y = host.loop, second_loop(host)
    client = host.client()
    client.start(IncrementMany(counter=0, times=2), instance_id="inc-0")
    x.invoke(0)  # x is warm at version 1
    client.start(IncrementMany(counter=0, times=1), instance_id="inc-1")
    y.invoke(0)  # y loads version 1, processes inc-1's start, saves version 2
    assert host.store.load(0)[1] == "2"
    client.start(IncrementMany(counter=0, times=1), instance_id="inc-2")
    with pytest.raises(StaleSnapshotError):
        x.invoke(0)
    assert host.store.load(0)[1] == "2"
    drive(host, random.Random(0), loops=[y])
    host.loop.forget()  # the last snapshot may be y's
    results: list[int] = []
    for iid in ("inc-0", "inc-1", "inc-2"):
        status = client.status(iid)
        assert status is not None and status.status == "completed", status
        results.extend(status.result)
    assert sorted(results) == [1, 2, 3, 4]
