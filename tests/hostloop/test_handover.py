"""Messages between the partitions of one local host are handed over as the sender's
message objects (``envelope.Recent``) instead of being parsed and validated again from
the bytes the sender wrote; anything else is parsed as always."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hosts.local import LocalHost
from reactive.hosting import envelope
from reactive.hosting.memory import MemoryStore
from reactive.hosting.seams import Outgoing
from samples.counter.app import CounterKey, IncrementMany

from .harness import Pipeline, app, pipeline_total


@pytest.fixture(params=["memory", "folder"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalHost]:
    state = tmp_path / "s" if request.param == "folder" else None
    local = LocalHost(app, partitions=4, state_dir=state)
    try:
        yield local
    finally:
        local.close()


def test_messages_between_partitions_are_handed_over_without_parsing(
    host: LocalHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[bytes] = []
    parse = envelope.parse

    def counting(data: bytes, partitions: int) -> envelope.Envelope:
        parsed.append(data)
        return parse(data, partitions)

    monkeypatch.setattr(envelope, "parse", counting)
    client = host.client()
    # each instance lives on another partition than its counter (an increment a partition
    # sends to itself never leaves it, so it is neither handed over nor parsed)
    schema = host.schema
    increment = schema.states_by_name["UpdateCounter"].affinity

    def elsewhere(c: int) -> str:
        target = schema.owner(increment.pkey(CounterKey(counter=c)), host.count)
        return next(iid for iid in (f"inc-{c}-{n}" for n in range(100))
                    if schema.instance_owner(iid, host.count) != target)

    with host.batch():
        ids = [client.start(IncrementMany(counter=c, times=3), instance_id=elsewhere(c))
               for c in range(8)]
        ids.append(client.start(Pipeline(tag="p", n=3, delay=1.0)))
    host.run()
    results = [client.status(iid) for iid in ids]
    assert [r.result if r else None for r in results[:8]] == [[1, 2, 3]] * 8
    assert results[8] is not None and results[8].result == pipeline_total(3)
    # the increments travel between partitions: every one of them was handed over, and
    # only the client's requests (and nothing a partition wrote) were parsed
    assert host.recent.hits >= 8 * 3
    assert len(parsed) == len(ids)
    assert all(parse(data, host.count).sender == envelope.CLIENT for data in parsed)
    assert len(host.recent) == 0  # each handed over once


def test_a_copy_addressed_elsewhere_is_parsed_and_dead_lettered(host: LocalHost) -> None:
    """The hand-over is keyed by the record's bytes; a copy of a partition's message in
    another partition's input (an edited or misrouted record) is still checked there."""
    client = host.client()
    schema = host.schema
    iid = "inc"
    owner = schema.instance_owner(iid, host.count)
    target = next(
        schema.owner(schema.states_by_name["UpdateCounter"].affinity.pkey(
            CounterKey(counter=c)), host.count)
        for c in range(100)
        if schema.owner(schema.states_by_name["UpdateCounter"].affinity.pkey(
            CounterKey(counter=c)), host.count) != owner
    )
    counter = next(
        c for c in range(100)
        if schema.owner(schema.states_by_name["UpdateCounter"].affinity.pkey(
            CounterKey(counter=c)), host.count) == target
    )
    client.start(IncrementMany(counter=counter, times=1), instance_id=iid)
    host.invoke(owner)  # the start runs and sends its increment to ``target``
    sent = host.inbox.read(target, 10)
    assert len(sent) == 1 and len(host.recent) >= 1
    elsewhere = next(p for p in range(host.count) if p not in (owner, target))
    host.inbox.send([Outgoing(elsewhere, sent[0].data, "copy")])
    host.invoke(elsewhere)  # takes the handed-over message, which is not for it
    if host.folder is not None:
        reasons = [reason for _, reason, _ in host.folder.dead_letters()]
    else:
        assert isinstance(host.store, MemoryStore)
        reasons = [reason for _, _, reason in host.store.dead_letters]
    assert reasons == [
        f"partition {elsewhere} from partition {owner}: addressed to partition {target}"
    ]
    host.run()  # the real one is parsed at its destination and applied once
    record = client.status(iid)
    assert record is not None and record.status == "completed" and record.result == [1]
