"""The stock azure-eventhub SDK (sync and aio) against the Event Hubs stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

import pytest
from azure.eventhub import (
    EventData,
    EventDataBatch,
    EventHubConsumerClient,
    EventHubProducerClient,
    PartitionContext,
)
from azure.eventhub.aio import EventHubConsumerClient as AioConsumer
from azure.eventhub.aio import EventHubProducerClient as AioProducer
from azure.eventhub.amqp import AmqpAnnotatedMessage, AmqpMessageBodyType
from azure.eventhub.exceptions import ConnectionLostError, EventHubError

from tests.standins.eventhubs import StandIn, start_standin

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parents[2]


def producer(standin: StandIn, hub: str) -> EventHubProducerClient:
    return EventHubProducerClient.from_connection_string(standin.connection_string(hub))


def collect(
    standin: StandIn,
    hub: str,
    count: int,
    *,
    starting_position: Any = "-1",
    inclusive: bool = False,
    partition_id: str | None = None,
    consumer_group: str = "$Default",
    timeout: float = 30,
    prefetch: int = 300,
    contexts: list[PartitionContext] | None = None,
) -> list[EventData]:
    """Receive with EventHubConsumerClient.receive_batch until ``count`` events have arrived."""
    got: list[EventData] = []
    client = EventHubConsumerClient.from_connection_string(
        standin.connection_string(hub), consumer_group=consumer_group
    )

    def on_batch(ctx: PartitionContext, events: list[EventData]) -> None:
        got.extend(events)
        if contexts is not None and events:
            contexts.append(ctx)
        if len(got) >= count:
            client.close()

    timer = threading.Timer(timeout, client.close)
    timer.start()
    try:
        with client:
            client.receive_batch(
                on_batch,
                partition_id=partition_id,
                starting_position=starting_position,
                starting_position_inclusive=inclusive,
                max_batch_size=300,
                prefetch=prefetch,
                track_last_enqueued_event_properties=contexts is not None,
            )
    finally:
        timer.cancel()
    assert len(got) >= count, f"received {len(got)} of {count} events from {hub}"
    return got


def bodies(events: list[EventData]) -> list[str]:
    return [e.body_as_str() for e in events]


def send_to(standin: StandIn, hub: str, texts: list[str], **batch_kwargs: Any) -> None:
    with producer(standin, hub) as p:
        batch = p.create_batch(**batch_kwargs)
        for text in texts:
            batch.add(EventData(text))
        p.send_batch(batch)


# --- management --------------------------------------------------------------------------------


def test_hub_and_partition_properties(eventhubs: StandIn) -> None:
    with producer(eventhubs, "orders") as p:
        props = p.get_eventhub_properties()
        assert props["eventhub_name"] == "orders"
        assert props["partition_ids"] == ["0", "1", "2", "3"]
        assert isinstance(props["created_at"], datetime.datetime)
        assert p.get_partition_ids() == ["0", "1", "2", "3"]

        empty = p.get_partition_properties("3")
        assert empty["id"] == "3" and empty["eventhub_name"] == "orders"
        assert empty["is_empty"] is True
        assert empty["beginning_sequence_number"] == 0
        assert empty["last_enqueued_sequence_number"] == -1
        assert empty["last_enqueued_offset"] == "-1"

        before = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=1)
        p.send_event(EventData("a"), partition_id="3")
        p.send_event(EventData("b"), partition_id="3")
        full = p.get_partition_properties("3")
        assert full["is_empty"] is False
        assert full["last_enqueued_sequence_number"] == 1
        assert int(full["last_enqueued_offset"]) > 0
        assert full["last_enqueued_time_utc"] >= before

    with producer(eventhubs, "results") as p:
        assert p.get_eventhub_properties()["partition_ids"] == ["0", "1"]


def test_unknown_hub_and_partition_fail(eventhubs: StandIn) -> None:
    with (
        EventHubProducerClient.from_connection_string(
            eventhubs.connection_string("no-such-hub"), retry_total=0
        ) as p,
        pytest.raises(EventHubError),
    ):
        p.get_eventhub_properties()
    with (
        EventHubProducerClient.from_connection_string(
            eventhubs.connection_string("results"), retry_total=0
        ) as p,
        pytest.raises(EventHubError),
    ):
        p.get_partition_properties("7")


# --- sending -----------------------------------------------------------------------------------


def test_batch_to_partition_keeps_properties(eventhubs: StandIn) -> None:
    with producer(eventhubs, "orders") as p:
        batch = p.create_batch(partition_id="2")
        for i in range(5):
            event = EventData(f"order-{i}")
            event.properties = {"index": i, "kind": "order", "flag": True}
            event.content_type = "text/plain"
            event.correlation_id = f"corr-{i}"
            event.message_id = f"msg-{i}"
            batch.add(event)
        p.send_batch(batch)
    got = collect(eventhubs, "orders", 5, partition_id="2")
    assert bodies(got) == [f"order-{i}" for i in range(5)]
    assert [e.sequence_number for e in got] == list(range(5))
    offsets = [int(e.offset or "") for e in got]
    assert offsets == sorted(offsets) and len(set(offsets)) == 5
    for i, e in enumerate(got):
        assert e.properties == {b"index": i, b"kind": b"order", b"flag": True}
        assert e.content_type == "text/plain"
        assert e.correlation_id == f"corr-{i}"
        assert e.message_id == f"msg-{i}"
        assert e.partition_key is None
        assert e.enqueued_time is not None
        assert e.system_properties[b"x-opt-sequence-number"] == i


def test_partition_key_is_stable(eventhubs: StandIn) -> None:
    with producer(eventhubs, "keys") as p:
        for i in range(3):
            p.send_event(EventData(f"single-{i}"), partition_key="customer-42")
        batch = p.create_batch(partition_key="customer-42")
        for i in range(3):
            batch.add(EventData(f"batched-{i}"))
        p.send_batch(batch)
        p.send_batch([EventData("listed")], partition_key="customer-42")
        counts = {
            pid: p.get_partition_properties(pid)["last_enqueued_sequence_number"] for pid in "0123"
        }
    assert sorted(counts.values()) == [-1, -1, -1, 6], counts
    pid = next(k for k, v in counts.items() if v == 6)
    got = collect(eventhubs, "keys", 7, partition_id=pid)
    assert bodies(got) == [f"single-{i}" for i in range(3)] + [f"batched-{i}" for i in range(3)] + [
        "listed"
    ]
    assert {e.partition_key for e in got} == {b"customer-42"}


def test_amqp_bodies_annotations_and_buffered_mode(eventhubs: StandIn) -> None:
    cs = eventhubs.connection_string("misc")
    with producer(eventhubs, "misc") as p:
        message = AmqpAnnotatedMessage(
            value_body={"a": 1, "b": [1, 2]}, annotations={"x-custom": "kept"}
        )
        p.send_event(message, partition_id="0")
    sent: list[int] = []
    with EventHubProducerClient.from_connection_string(
        cs,
        buffered_mode=True,
        max_wait_time=0.5,
        on_success=lambda events, pid: sent.append(len(events)),
        on_error=lambda events, pid, error: None,
    ) as buffered:
        for i in range(10):
            buffered.send_event(EventData(f"buffered-{i}"), partition_id="1")
        buffered.flush()
    assert sum(sent) == 10
    first = collect(eventhubs, "misc", 1, partition_id="0")[0].raw_amqp_message
    assert first.body_type == AmqpMessageBodyType.VALUE
    assert first.body == {b"a": 1, b"b": [1, 2]}
    assert first.annotations is not None and first.annotations[b"x-custom"] == b"kept"
    rest = collect(eventhubs, "misc", 10, partition_id="1")
    assert bodies(rest) == [f"buffered-{i}" for i in range(10)]


def test_different_keys_use_different_partitions(eventhubs: StandIn) -> None:
    with producer(eventhubs, "spread") as p:
        for i in range(24):
            p.send_event(EventData(f"k{i}"), partition_key=f"key-{i}")
        used = [p.get_partition_properties(pid)["last_enqueued_sequence_number"] for pid in "0123"]
    assert sum(n + 1 for n in used) == 24
    assert sum(1 for n in used if n >= 0) >= 3, used


def test_send_to_hub_spreads_over_partitions(eventhubs: StandIn) -> None:
    with producer(eventhubs, "results") as p:
        for i in range(6):
            p.send_event(EventData(f"rr-{i}"))
        counts = [
            p.get_partition_properties(pid)["last_enqueued_sequence_number"] + 1 for pid in "01"
        ]
    assert sum(counts) == 6 and min(counts) >= 1, counts


# --- receiving from a position -----------------------------------------------------------------


def test_receive_from_sequence_number_offset_and_time(eventhubs: StandIn) -> None:
    send_to(eventhubs, "positions", [f"e{i}" for i in range(5)], partition_id="1")
    time.sleep(0.05)
    middle = datetime.datetime.now(datetime.UTC)
    time.sleep(0.05)
    send_to(eventhubs, "positions", [f"e{i}" for i in range(5, 10)], partition_id="1")
    everything = collect(eventhubs, "positions", 10, partition_id="1")
    assert bodies(everything) == [f"e{i}" for i in range(10)]

    def seqs(**kw: Any) -> list[int]:
        want = kw.pop("expect")
        events = collect(eventhubs, "positions", want, partition_id="1", **kw)
        return [e.sequence_number or 0 for e in events]

    assert seqs(starting_position=3, inclusive=True, expect=7) == list(range(3, 10))
    assert seqs(starting_position=3, inclusive=False, expect=6) == list(range(4, 10))
    offset = everything[6].offset
    assert seqs(starting_position=offset, inclusive=True, expect=4) == list(range(6, 10))
    assert seqs(starting_position=offset, inclusive=False, expect=3) == list(range(7, 10))
    assert seqs(starting_position=middle, expect=5) == list(range(5, 10))
    by_partition: dict[str, Any] = {"1": 8, "0": "-1"}
    assert seqs(starting_position=by_partition, inclusive=True, expect=2) == [8, 9]


def test_receive_from_latest_sees_only_new_events(eventhubs: StandIn) -> None:
    send_to(eventhubs, "latest", ["old-1", "old-2"])
    got: list[EventData] = []
    arrived = threading.Event()
    client = EventHubConsumerClient.from_connection_string(
        eventhubs.connection_string("latest"), consumer_group="$Default"
    )

    def on_event(ctx: PartitionContext, event: EventData | None) -> None:
        if event is not None:
            got.append(event)
            arrived.set()

    worker = threading.Thread(
        target=client.receive,
        kwargs={"on_event": on_event, "partition_id": "0", "starting_position": "@latest"},
    )
    worker.start()
    try:
        with producer(eventhubs, "latest") as p:
            for i in range(100):  # keep sending until the receiver, attached at the end, sees one
                p.send_event(EventData(f"new-{i}"))
                if arrived.wait(0.2):
                    break
    finally:
        client.close()
        worker.join(10)
    assert got and all(t.startswith("new-") for t in bodies(got)), bodies(got)


# --- consumer groups and exclusive receivers ---------------------------------------------------


def test_two_consumer_groups_see_the_same_events(eventhubs: StandIn) -> None:
    send_to(eventhubs, "groups", [f"g{i}" for i in range(10)], partition_id="0")
    first = collect(eventhubs, "groups", 10, partition_id="0", consumer_group="$Default")
    contexts: list[PartitionContext] = []
    # a prefetch of 3 makes the SDK grant credit four times over
    second = collect(
        eventhubs,
        "groups",
        10,
        partition_id="0",
        consumer_group="audit",
        prefetch=3,
        contexts=contexts,
    )
    assert bodies(first) == bodies(second) == [f"g{i}" for i in range(10)]
    assert [e.offset for e in first] == [e.offset for e in second]
    last = contexts[-1].last_enqueued_event_properties
    assert last is not None
    assert last["sequence_number"] == 9
    assert last["offset"] == first[-1].offset


class _Receiver:
    """EventHubConsumerClient.receive on one partition in a thread, with an owner level."""

    def __init__(self, standin: StandIn, owner_level: int | None, partition_id: str = "0") -> None:
        self.events: list[str] = []
        self.errors: list[Exception] = []
        self.client = EventHubConsumerClient.from_connection_string(
            standin.connection_string("epochs"), consumer_group="$Default"
        )
        self.thread = threading.Thread(
            target=self.client.receive,
            kwargs={
                "on_event": self._on_event,
                "on_error": self._on_error,
                "partition_id": partition_id,
                "owner_level": owner_level,
                "starting_position": "-1",
            },
        )
        self.thread.start()

    def _on_event(self, ctx: PartitionContext, event: EventData | None) -> None:
        if event is not None:
            self.events.append(event.body_as_str())

    def _on_error(self, ctx: PartitionContext | None, error: Exception) -> None:
        self.errors.append(error)

    def close(self) -> None:
        self.client.close()
        self.thread.join(10)


def wait_for(predicate: Callable[[], bool], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_higher_owner_level_disconnects_lower(eventhubs: StandIn) -> None:
    send_to(eventhubs, "epochs", ["before"], partition_id="0")
    low = _Receiver(eventhubs, owner_level=1)
    high: _Receiver | None = None
    try:
        assert wait_for(lambda: "before" in low.events)
        high = _Receiver(eventhubs, owner_level=2)
        assert wait_for(lambda: bool(low.errors)), "the lower owner level was not disconnected"
        error = low.errors[0]
        assert isinstance(error, ConnectionLostError)
        assert "amqp:link:stolen" in str(error)
        assert wait_for(lambda: "before" in high.events)
        seen_by_low = len(low.events)
        send_to(eventhubs, "epochs", ["after"], partition_id="0")
        assert wait_for(lambda: "after" in high.events)
        time.sleep(0.5)
        assert "after" not in low.events[seen_by_low:]
        for late_level in (0, None):  # lower, or no owner level at all: refused while high reads
            late = _Receiver(eventhubs, owner_level=late_level)
            try:
                assert wait_for(lambda: bool(late.errors))  # noqa: B023
                assert "amqp:link:stolen" in str(late.errors[0])
                assert late.events == []
            finally:
                late.close()
    finally:
        low.close()
        if high is not None:
            high.close()


def test_equal_owner_level_takes_over(eventhubs: StandIn) -> None:
    """What a load-balancing processor does when it steals a partition (owner level 0 for all)."""
    send_to(eventhubs, "epochs", ["equal"], partition_id="1")
    first = _Receiver(eventhubs, owner_level=0, partition_id="1")
    second: _Receiver | None = None
    try:
        assert wait_for(lambda: "equal" in first.events)
        second = _Receiver(eventhubs, owner_level=0, partition_id="1")
        assert wait_for(lambda: bool(first.errors))
        assert "amqp:link:stolen" in str(first.errors[0])
        assert wait_for(lambda: "equal" in second.events)
    finally:
        first.close()
        if second is not None:
            second.close()


# --- volume and size ---------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_thousand_events_round_trip_in_order(eventhubs: StandIn) -> None:
    total, partitions, size = 1000, 4, 50
    per_partition = total // partitions
    server_cpu = _cpu_seconds(eventhubs.pid)
    with producer(eventhubs, "bulk") as p:

        def send(pid: int, start: int) -> None:
            batch = p.create_batch(partition_id=str(pid))
            for i in range(start, start + size):
                batch.add(EventData(f"{pid}:{i}:" + "x" * 64))
            p.send_batch(batch)

        for pid in range(partitions):  # the first batch per partition also opens its link
            send(pid, 0)
        started = time.perf_counter()
        for pid in range(partitions):
            for start in range(size, per_partition, size):
                send(pid, start)
        send_seconds = time.perf_counter() - started

    got: list[EventData] = []
    first: list[float] = []
    client = EventHubConsumerClient.from_connection_string(
        eventhubs.connection_string("bulk"), consumer_group="$Default"
    )

    def on_batch(ctx: PartitionContext, events: list[EventData]) -> None:
        if not first:
            first.append(time.perf_counter())
        got.extend(events)
        if len(got) >= total:
            client.close()

    timer = threading.Timer(60, client.close)
    timer.start()
    with client:
        client.receive_batch(on_batch, starting_position="-1", max_batch_size=300)
    timer.cancel()
    receive_seconds = time.perf_counter() - first[0]
    server_cpu = _cpu_seconds(eventhubs.pid) - server_cpu
    sent_timed = total - partitions * size
    print(
        f"\n{total} events: send {sent_timed / send_seconds:.0f} events/s (batches of {size},"
        f" links open), receive {total / receive_seconds:.0f} events/s (4 partitions, after the"
        f" first batch); stand-in CPU {server_cpu * 1e6 / total:.0f} us per event in and out"
    )
    assert len(got) == total
    by_partition: dict[str, list[EventData]] = {}
    for e in got:
        by_partition.setdefault(e.body_as_str().split(":")[0], []).append(e)
    assert sorted(by_partition) == ["0", "1", "2", "3"]
    for key, events in by_partition.items():
        assert [int(e.body_as_str().split(":")[1]) for e in events] == list(range(per_partition))
        assert [e.sequence_number for e in events] == list(range(per_partition)), key


def test_900_kb_event(eventhubs: StandIn) -> None:
    payload = os.urandom(900 * 1024)
    with producer(eventhubs, "large") as p:
        p.send_event(EventData(payload), partition_id="0")
    got = collect(eventhubs, "large", 1, partition_id="0")
    assert b"".join(cast("Iterable[bytes]", got[0].body)) == payload


def test_small_frames_split_large_deliveries(eventhubs: StandIn) -> None:
    """The SDK's AMQP layer with a 4 KiB max frame size and SASL PLAIN: the stand-in splits."""
    from azure.eventhub._pyamqp import ReceiveClient
    from azure.eventhub._pyamqp.authentication import SASLPlainAuth
    from azure.eventhub._pyamqp.endpoints import Source

    payload = os.urandom(300_000)
    with producer(eventhubs, "large") as p:
        seq = p.get_partition_properties("0")["last_enqueued_sequence_number"]
        p.send_event(EventData(payload), partition_id="0")
    selector = f"amqp.annotation.x-opt-sequence-number > '{seq}'".encode()
    source = Source(  # type: ignore[call-arg]  # the SDK gives the other fields defaults
        address=f"amqp://127.0.0.1:{eventhubs.port}/large/ConsumerGroups/$Default/Partitions/0",
        filters={
            b"apache.org:selector-filter:string": (b"apache.org:selector-filter:string", selector)
        },
    )
    client = ReceiveClient(  # type: ignore[no-untyped-call]
        f"127.0.0.1:{eventhubs.port}",
        source,
        auth=SASLPlainAuth("RootManageSharedAccessKey", "SAS_KEY_VALUE"),
        use_tls=False,
        max_frame_size=4096,
        link_credit=10,
    )
    try:
        messages = client.receive_message_batch(max_batch_size=1, timeout=20)
    finally:
        client.close()  # type: ignore[no-untyped-call]
    assert len(messages) == 1
    assert b"".join(messages[0].data) == payload


def test_heartbeats_keep_an_idle_connection_open(eventhubs: StandIn) -> None:
    """A client that announces a 1 s idle timeout gets empty frames and keeps its connection."""
    from azure.eventhub._pyamqp import ReceiveClient
    from azure.eventhub._pyamqp.authentication import SASLPlainAuth
    from azure.eventhub._pyamqp.endpoints import Source

    source = Source(  # type: ignore[call-arg]  # the SDK gives the other fields defaults
        address=f"amqp://127.0.0.1:{eventhubs.port}/results/ConsumerGroups/idle/Partitions/1",
        filters={
            b"apache.org:selector-filter:string": (
                b"apache.org:selector-filter:string",
                b"amqp.annotation.x-opt-offset > '@latest'",
            )
        },
    )
    client = ReceiveClient(  # type: ignore[no-untyped-call]
        f"127.0.0.1:{eventhubs.port}",
        source,
        auth=SASLPlainAuth("RootManageSharedAccessKey", "SAS_KEY_VALUE"),
        use_tls=False,
        idle_timeout=1,
        link_credit=10,
    )
    try:
        assert client.receive_message_batch(max_batch_size=1, timeout=3) == []
        connection = client._connection
        assert connection is not None and connection.state.name == "OPENED"
    finally:
        client.close()  # type: ignore[no-untyped-call]


# --- aio clients -------------------------------------------------------------------------------


def test_async_producer_and_consumer(eventhubs: StandIn) -> None:
    async def scenario() -> list[EventData]:
        cs = eventhubs.connection_string("aio")
        async with AioProducer.from_connection_string(cs) as p:
            props = await p.get_eventhub_properties()
            assert props["partition_ids"] == ["0", "1"]
            batch: EventDataBatch = await p.create_batch(partition_id="1")
            for i in range(20):
                batch.add(EventData(f"aio-{i}"))
            await p.send_batch(batch)
            await p.send_event(EventData("keyed"), partition_key="k")
            assert (await p.get_partition_properties("1"))["last_enqueued_sequence_number"] >= 19
        got: list[EventData] = []
        consumer = AioConsumer.from_connection_string(cs, consumer_group="$Default")
        done = asyncio.Event()

        async def on_batch(ctx: Any, events: list[EventData]) -> None:
            got.extend(events)
            if len([e for e in got if e.body_as_str().startswith("aio-")]) >= 20:
                done.set()

        async with consumer:
            task = asyncio.create_task(
                consumer.receive_batch(on_batch, partition_id="1", starting_position="-1")
            )
            await asyncio.wait_for(done.wait(), 30)
            await consumer.close()
            # the SDK's load-balancing loop may sleep its 30 s interval before it notices the close
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return got

    got = asyncio.run(scenario())
    assert [t for t in bodies(got) if t.startswith("aio-")] == [f"aio-{i}" for i in range(20)]


# --- transport details and the CLI -------------------------------------------------------------


@pytest.mark.parametrize("mechanism", ["ANONYMOUS", "PLAIN"])
def test_sasl_mechanisms_are_accepted(eventhubs: StandIn, mechanism: str) -> None:
    from azure.eventhub._pyamqp.sasl import (
        SASLAnonymousCredential,
        SASLPlainCredential,
        SASLTransport,
    )

    credential: Any = (
        SASLAnonymousCredential()
        if mechanism == "ANONYMOUS"
        else SASLPlainCredential(  # type: ignore[no-untyped-call]
            "RootManageSharedAccessKey", "SAS_KEY_VALUE"
        )
    )
    # the SDK's own SASL client (untyped private module)
    transport = SASLTransport(  # type: ignore[no-untyped-call]
        "127.0.0.1", credential, port=eventhubs.port, use_tls=False, socket_timeout=5
    )
    transport.connect()  # type: ignore[no-untyped-call]
    try:
        transport.negotiate()  # type: ignore[no-untyped-call]  # raises unless the outcome is ok
        transport.write(b"AMQP\x00\x01\x00\x00")  # type: ignore[no-untyped-call]
        _, frame = transport.receive_frame()  # type: ignore[no-untyped-call]
        assert frame == (0, b"AMQP\x00\x01\x00\x00")
    finally:
        transport.close()  # type: ignore[no-untyped-call]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_ready_and_stops_on_signal(stop_signal: signal.Signals) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.standins.eventhubs",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--hub",
            "a:2",
            "--hub",
            "b:1",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[0] == "ready" and int(line[1]) > 0
        with socket.create_connection(("127.0.0.1", int(line[1])), timeout=5):
            pass
        proc.send_signal(stop_signal)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_in_thread_standin() -> None:
    with start_standin({"inproc": 3}, in_thread=True) as standin:
        with producer(standin, "inproc") as p:
            assert p.get_partition_ids() == ["0", "1", "2"]
            p.send_event(EventData("hello"), partition_id="2")
        got = collect(standin, "inproc", 1, partition_id="2")
        assert bodies(got) == ["hello"]
