"""Bad records in a partition's input: processing goes on, each bad record ends in the
store's dead letters exactly once (even when invocations crash and rerun) with a reason
naming the problem and where it came from, and messages of another epoch are ignored."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from hosts.emulator.folder import FolderStore
from hosts.emulator.local import LocalHost, VirtualClock
from reactive.core.messages import Start, to_wire
from reactive.hosting.loop import CLIENT, envelope
from reactive.hosting.memory import MemoryStore
from samples.counter.app import CounterKey, IncrementMany, UpdateCounter

from .harness import STEPS, Crash, app, crash_at, drive, state_of

PARTITIONS = 3
P = 1  # the partition that gets the bad records
OLD_EPOCH_COUNTER = 7


def instance_on(host: LocalHost, partition: int, prefix: str) -> str:
    return next(
        f"{prefix}-{i}"
        for i in range(1000)
        if host.schema.instance_owner(f"{prefix}-{i}", host.count) == partition
    )


def bad_records(host: LocalHost) -> dict[str, tuple[bytes, list[str]]]:
    """name -> (the record, words its dead-letter reason must contain besides its origin)."""
    epoch, schema = host.loop.options.epoch, host.schema
    good = to_wire(Start(P, "bad", IncrementMany(counter=0, times=1)), schema)
    return {
        "garbage": (b"\x00\xff{not json", ["not a message envelope"]),
        "unknown message type": (
            envelope(epoch, CLIENT, 0, {**good, "t": "Teleport"}),
            ["not a message", "Teleport"],
        ),
        "unknown operation": (
            envelope(epoch, CLIENT, 0, {**good, "op": ["NoSuchOperation", {}]}),
            ["no operation named", "NoSuchOperation"],
        ),
        "invalid operation": (
            envelope(epoch, 99, 1, {**good, "op": ["IncrementMany", {"counter": "x", "times": 1}]}),
            ["validation error", "IncrementMany", "sender 99"],
        ),
        "wrong partition": (
            envelope(epoch, CLIENT, 0, {**good, "dest": P + 1}),
            [f"addressed to partition {P + 1}"],
        ),
    }


def other_epoch_record(host: LocalHost) -> bytes:
    """A well-formed start of an orchestration, from another deployment epoch."""
    start = Start(P, "old-epoch", IncrementMany(counter=OLD_EPOCH_COUNTER, times=1))
    return envelope("0", CLIENT, 0, to_wire(start, host.schema))


def dead_letters(host: LocalHost) -> list[tuple[int, bytes, str]]:
    store = host.store
    if isinstance(store, MemoryStore):
        return list(store.dead_letters)
    assert isinstance(store, FolderStore)
    path = store.folder / "dead-letters.jsonl"
    if not path.exists():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    return [(e["partition"], e["data"].encode("utf-8", "replace"), e["reason"]) for e in entries]


def run_bad_input(host: LocalHost, step: str | None, seed: int) -> dict[str, Any]:
    bad = bad_records(host)
    client = host.client()
    host.transport.append(P, [record for record, _ in bad.values()])
    host.transport.append(P, [other_epoch_record(host)])
    iid = instance_on(host, P, "good")
    client.start(IncrementMany(counter=P + 1, times=2), instance_id=iid)  # after the bad ones
    if step is not None and step != "sent-one":  # P's first invocation dies at ``step``
        with pytest.raises(Crash):
            host.invoke(P, crash_at(step))
    drive(host, random.Random(seed), crash_steps=(step,) if step else (), crash_probability=0.5)
    status = client.status(iid)
    assert status is not None and status.status == "completed" and status.result == [1, 2]
    # the other epoch's start was ignored: never started, no effect, no dead letter
    assert client.status("old-epoch") is None
    assert state_of(host, UpdateCounter, CounterKey(counter=OLD_EPOCH_COUNTER)) is None
    letters = dead_letters(host)
    for name, (record, words) in bad.items():
        position = list(bad).index(name) + 1
        if isinstance(host.store, FolderStore):
            record = record.decode("utf-8", "replace").encode("utf-8", "replace")
        found = [(p, reason) for p, data, reason in letters if data == record]
        assert len(found) == 1, f"{name}: {len(found)} dead letters, expected exactly one"
        partition, reason = found[0]
        assert partition == P
        assert f"partition {P} position {position}" in reason, reason
        for word in words:
            assert word in reason, f"{name}: {word!r} not in {reason!r}"
    assert len(letters) == len(bad), letters
    return bad


@pytest.mark.parametrize("step", [None, *STEPS])
def test_bad_records_are_dead_lettered_once(step: str | None) -> None:
    for seed in (1, 2, 3):
        run_bad_input(LocalHost(app, partitions=PARTITIONS), step, seed)


def test_bad_records_in_a_folder(tmp_path: Path) -> None:
    host = LocalHost(app, partitions=PARTITIONS, state_dir=tmp_path, clock=VirtualClock())
    run_bad_input(host, None, 1)
    # a fresh host on the same folder agrees, and adds no dead letter
    again = LocalHost(app, partitions=PARTITIONS, state_dir=tmp_path, clock=VirtualClock())
    drive(again, random.Random(2))
    assert len(dead_letters(again)) == len(bad_records(again))


def test_a_bad_record_between_good_ones_stops_nothing() -> None:
    """Garbage interleaved with the traffic of a running workload, with small batches."""
    host = LocalHost(app, partitions=PARTITIONS, batch_size=1)
    client = host.client()
    ids = [instance_on(host, P, f"inc{n}") for n in range(3)]
    for n, iid in enumerate(ids):
        client.start(IncrementMany(counter=n, times=2, parallel=True), instance_id=iid)
        host.transport.append(P, [b"garbage %d" % n])
        host.invoke(P)
    drive(host, random.Random(0), crash_steps=STEPS[:3], crash_probability=0.3)
    for iid in ids:
        status = client.status(iid)
        assert status is not None and status.result == [1, 2]
    assert sorted(data for _, data, _ in dead_letters(host)) == [b"garbage 0", b"garbage 1",
                                                                 b"garbage 2"]
