"""Corrupt snapshots are refused, loudly and without being touched; timers pending in a
partition are reported as ``next_due`` and fire at an invocation at a later clock."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from hosts.emulator.local import LocalHost, VirtualClock
from reactive.errors import CorruptSnapshotError
from reactive.hosting.loop import decode_snapshot, encode_snapshot
from reactive.hosting.memory import MemoryStore

from .harness import ACTIVITY_RUNS, FLAKY_VALUE, Pipeline, app, big_workload, drive, new_host

WORKLOAD = big_workload()


def start_workload(host: LocalHost) -> None:
    client = host.client()
    for iid, orchestration in WORKLOAD.instances().items():
        client.start(orchestration, instance_id=iid)


def flip(data: bytes, rng: random.Random) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + bytes([data[i] ^ rng.randint(1, 255)]) + data[i + 1 :]


def assert_refused(host: LocalHost, partition: int) -> str:
    with pytest.raises(CorruptSnapshotError) as info:
        host.invoke(partition)
    message = str(info.value)
    assert f"partition {partition}" in message, message
    return message


def memory_snapshots(store: object) -> dict[int, tuple[bytes, str]]:
    assert isinstance(store, MemoryStore)
    snapshots: dict[int, tuple[bytes, str]] = store._snapshots
    return snapshots


@pytest.mark.parametrize("seed", range(6))
def test_a_flipped_byte_in_a_memory_snapshot_is_refused(seed: int) -> None:
    rng = random.Random(seed)
    ACTIVITY_RUNS.clear()
    host = new_host(3)
    start_workload(host)
    host.run()
    p = rng.randrange(3)
    snapshots = memory_snapshots(host.store)
    data, version = snapshots[p]
    corrupt = flip(data, rng)
    snapshots[p] = (corrupt, version)
    host.loop.forget()  # a cold start: the partition must come from the store
    message = assert_refused(host, p)
    assert "checksum" in message and "left as it is" in message, message
    assert host.store.load(p) == (corrupt, version)
    # new input for the partition changes nothing: still refused, still untouched
    host.client().start(Pipeline(tag="late", n=1, delay=1.0), instance_id="late")
    for _ in range(2):
        assert_refused(host, p)
    assert host.store.load(p) == (corrupt, version)
    # the other partitions carry on
    for q in range(3):
        if q != p:
            host.invoke(q)


@pytest.mark.parametrize("seed", range(4))
def test_a_flipped_byte_in_a_snapshot_file_is_refused(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    ACTIVITY_RUNS.clear()
    host = LocalHost(app, partitions=3, state_dir=tmp_path, clock=VirtualClock())
    start_workload(host)
    drive(host, random.Random(seed))
    p = rng.randrange(3)
    path = tmp_path / f"snapshot-{p}.bin"
    raw = path.read_bytes()
    version_line, _, data = raw.partition(b"\n")
    corrupt = version_line + b"\n" + flip(data, rng)
    path.write_bytes(corrupt)
    fresh = LocalHost(app, partitions=3, state_dir=tmp_path, clock=VirtualClock())
    assert_refused(fresh, p)
    with pytest.raises(CorruptSnapshotError):
        fresh.partition(p)  # status queries are refused too
    assert path.read_bytes() == corrupt
    assert not list(tmp_path.glob("*.tmp"))


def test_an_unknown_snapshot_format_is_refused() -> None:
    host = new_host(2)
    start_workload(host)
    host.run()
    snapshots = memory_snapshots(host.store)
    data, version = snapshots[1]
    body = decode_snapshot(1, data)
    body["format"] = 99
    snapshots[1] = (encode_snapshot(body), version)
    host.loop.forget()
    assert "unknown format 99" in assert_refused(host, 1)
    assert snapshots[1] == (encode_snapshot(body), version)


@pytest.mark.parametrize("cut", [0, 1, 64, -1])
def test_a_truncated_snapshot_is_refused(cut: int) -> None:
    host = new_host(2)
    start_workload(host)
    host.run()
    snapshots = memory_snapshots(host.store)
    data, version = snapshots[0]
    snapshots[0] = (data[:cut], version)
    host.loop.forget()
    assert_refused(host, 0)
    assert snapshots[0] == (data[:cut], version)


# -- timers -------------------------------------------------------------------------------


def settle(host: LocalHost) -> dict[int, float | None]:
    """Invoke every partition until none makes progress, without moving the clock; the
    ``next_due`` each reported last."""
    due: dict[int, float | None] = {}
    while True:
        busy = False
        for p in range(host.count):
            report = host.invoke(p)
            due[p] = report.next_due
            busy = busy or bool(report.processed or report.sent or report.activities)
        if not busy:
            return due


def test_next_due_reports_a_pending_timer_that_fires_later() -> None:
    ACTIVITY_RUNS.clear()
    host = new_host(3)
    clock = host.clock
    assert isinstance(clock, VirtualClock)
    start = clock.now
    client = host.client()
    client.start(Pipeline(tag="t", n=2, delay=30.0), instance_id="pipe")
    owner = host.schema.instance_owner("pipe", host.count)
    due = settle(host)
    assert due[owner] == start + 30.0  # the sleep, started at `start`
    assert all(due[p] is None for p in range(3) if p != owner)
    assert client.status("pipe").status == "running"  # type: ignore[union-attr]
    assert ACTIVITY_RUNS["flaky t attempt 1"] == 0

    clock.now = start + 29.9  # not yet due: nothing happens
    report = host.invoke(owner)
    assert (report.processed, report.next_due) == (0, start + 30.0)
    assert ACTIVITY_RUNS["flaky t attempt 1"] == 0

    clock.now = start + 30.0  # due: the timer fires, Flaky's first attempt fails and
    report = host.invoke(owner)  # its retry waits on a timer 5 s later
    assert report.processed >= 2 and report.activities == 1
    assert ACTIVITY_RUNS["flaky t attempt 1"] == 1
    assert report.next_due == start + 35.0
    assert client.status("pipe").status == "running"  # type: ignore[union-attr]

    clock.now = start + 100.0  # long after: the retry fires and the pipeline completes
    report = host.invoke(owner)
    assert report.next_due is None
    assert ACTIVITY_RUNS["flaky t attempt 2"] == 1
    status = client.status("pipe")
    assert status is not None and status.result == 1 + 4 + FLAKY_VALUE
    assert settle(host) == {0: None, 1: None, 2: None}
    assert host.app_lines() == [f"pipeline t finished with {1 + 4 + FLAKY_VALUE}"]


def test_next_due_survives_a_cold_start() -> None:
    """The timer is part of the snapshot: a cold loop reports it and fires it."""
    host = new_host(2)
    clock = host.clock
    assert isinstance(clock, VirtualClock)
    start = clock.now
    host.client().start(Pipeline(tag="c", n=1, delay=10.0), instance_id="cold")
    owner = host.schema.instance_owner("cold", host.count)
    settle(host)
    host.loop.forget()
    clock.now = start + 10.0
    report = host.invoke(owner)
    assert report.next_due == start + 15.0  # fired, and Flaky's retry is pending
