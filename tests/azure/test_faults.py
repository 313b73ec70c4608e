"""Faults on the Azure host lose and duplicate nothing: crashes before and after the
snapshot write, stale invocations holding an old version, two consumers of one partition
during a rebalance, redelivery from a checkpoint, client retries.

The workload: four ``IncrementMany`` instances, each incrementing a counter on (usually)
another partition three times; every start is sent twice, as a client retrying after a lost
acknowledgement would. Then each counter is incremented once more: the result is 4 only if
no increment was lost or applied twice."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import Any

import azure.functions as func
import pytest

from hosts.azure.host import AzureHost, BatchReport
from hosts.azure.sender import EventHubSender
from hosts.azure.settings import AzureSettings
from reactive.hosting import requests
from samples.counter import app as counter
from tests.azure.pump import Pump, wait_for

pytestmark = pytest.mark.timeout(240)

Call = Callable[[list[func.EventHubEvent]], Any]


class Crash(Exception):
    """A simulated crash at a chosen step."""


@pytest.fixture
def hosts(settings: AzureSettings) -> Iterator[Callable[[], AzureHost]]:
    made: list[AzureHost] = []

    def make() -> AzureHost:
        host = AzureHost(counter.app, settings)
        made.append(host)
        return host

    yield make
    for host in made:
        host.close()


def start_all(host: AzureHost, instances: dict[str, int], times: int) -> None:
    schema = host.schema
    sender = EventHubSender(
        lambda: host.settings.producer(host.settings.partition_hub), host.claims
    )  # the client's own, not the (perhaps crashing) host's
    try:
        for iid, k in instances.items():
            op = counter.IncrementMany(counter=k, times=times)
            start = requests.start(schema, 4, "1", iid, op)
            sender.send([start])
            sender.send([start])  # a client retry
    finally:
        sender.close()


def finished(host: AzureHost, ids: list[str]) -> Callable[[], bool]:
    def check() -> bool:
        records = [host.status.get(i) for i in ids]
        return all(r is not None and r.status == "completed" for r in records)

    return check


def run_workload(host: AzureHost, pump: Pump, call: Call, idle: Callable[[], object]) -> None:
    first = {f"first-{k}": k for k in range(4)}
    start_all(host, first, 3)
    assert pump.run(call, finished(host, list(first)), timeout=120, idle=idle)
    for iid in first:
        record = host.status.get(iid)
        assert record is not None and sorted(record.result) == [1, 2, 3], iid


def check_counts(host: AzureHost, pump: Pump, call: Call, idle: Callable[[], object]) -> None:
    again = {f"again-{k}": k for k in range(4)}
    start_all(host, again, 1)
    assert pump.run(call, finished(host, list(again)), timeout=120, idle=idle)
    for iid in again:
        record = host.status.get(iid)
        assert record is not None and record.result == [4], iid


@pytest.mark.parametrize("fresh_process", [False, True])
@pytest.mark.parametrize("where", ["before-write", "after-write"])
def test_crash_around_the_snapshot_write(
    settings: AzureSettings, hosts: Callable[[], AzureHost], where: str, fresh_process: bool
) -> None:
    calls = {"n": 0, "left": 3}
    plan = {2, 5, 9}  # which calls of the step crash

    def crashing(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls["n"] += 1
            if calls["n"] in plan:
                calls["left"] -= 1
                raise Crash(where)
            return original(*args, **kwargs)

        return wrapper

    def install(host: AzureHost) -> AzureHost:
        if where == "before-write":  # nothing is stored
            host.store.append = crashing(host.store.append)  # type: ignore[method-assign]
            host.store.compact = crashing(host.store.compact)  # type: ignore[method-assign]
        else:  # the commit is stored, its outbox not sent
            host.sender.send = crashing(host.sender.send)  # type: ignore[method-assign]
        return host

    host = install(hosts())
    current = {"host": host}

    reports: list[BatchReport] = []

    def call(events: list[func.EventHubEvent]) -> None:
        try:
            reports.append(current["host"].on_partition_events(events))
        except Crash:
            if fresh_process:  # the process died: the next invocation runs elsewhere
                current["host"] = install(hosts())
            raise

    pump = Pump(settings)
    try:
        run_workload(host, pump, call, lambda: current["host"].on_timer())
        assert calls["left"] == 0, "the test crashed less often than planned"
        assert all(isinstance(f, Crash) for f in pump.failures) and pump.failures
        # the failed batches were checkpointed: later invocations read them from the hub
        assert sum(r.caught_up for r in reports) > 0
        check_counts(current["host"], pump, call, lambda: current["host"].on_timer())
    finally:
        pump.close()


def test_stale_invocations_holding_an_old_version(
    settings: AzureSettings, hosts: Callable[[], AzureHost]
) -> None:
    a, b = hosts(), hosts()
    reports: list[BatchReport] = []
    chooser = random.Random(3)

    def call(events: list[func.EventHubEvent]) -> None:
        # each batch goes to one of two processes that both keep the partitions warm, so
        # one of them often commits from a version the other has moved past
        reports.append(chooser.choice([a, b]).on_partition_events(events))

    pump = Pump(settings)
    try:
        run_workload(a, pump, call, a.on_timer)
        check_counts(a, pump, call, a.on_timer)
    finally:
        pump.close()
    assert sum(r.stale for r in reports) > 0, "no invocation was stale: the test proved nothing"
    assert not any(r.gave_up for r in reports)
    assert pump.failures == []


def test_two_consumers_of_one_partition_during_a_rebalance(
    settings: AzureSettings, hosts: Callable[[], AzureHost]
) -> None:
    a, b = hosts(), hosts()
    reports: list[BatchReport] = []
    lock = threading.Lock()

    def both(events: list[func.EventHubEvent]) -> None:
        # the old owner and the new one both received the batch and run it at once
        def run(host: AzureHost) -> None:
            report = host.on_partition_events(events)
            with lock:
                reports.append(report)

        threads = [threading.Thread(target=run, args=(h,)) for h in (a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    pump = Pump(settings)
    try:
        run_workload(a, pump, both, a.on_timer)
        check_counts(a, pump, both, a.on_timer)
    finally:
        pump.close()
    assert sum(r.stale for r in reports) > 0
    assert not any(r.gave_up for r in reports)


@pytest.mark.parametrize("position_known", [True, False])
def test_redelivery_from_an_old_checkpoint(
    settings: AzureSettings, hosts: Callable[[], AzureHost], monkeypatch: pytest.MonkeyPatch,
    position_known: bool,
) -> None:
    host = hosts()
    pump = Pump(settings)
    try:
        run_workload(host, pump, host.on_partition_events, host.on_timer)
    finally:
        pump.close()
    # a new process whose checkpoints were lost: every event is delivered again
    again = hosts()
    if not position_known:  # so the worker's own de-duplication has to catch them all
        monkeypatch.setattr(again.store, "position", lambda partition: None)
    total = sum(len(seen) for seen in pump.delivered.values())
    replay = Pump(settings)
    try:
        assert wait_for(lambda: sum(replay.buffered(p) for p in range(4)) >= total)
        delivered = sum(replay.step(p, again.on_partition_events) for p in range(4))
        assert delivered >= total
        check_counts(again, replay, again.on_partition_events, again.on_timer)
    finally:
        replay.close()
    assert replay.failures == []
