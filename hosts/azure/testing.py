"""Test an application against Blob Storage (Azurite) and Event Hubs (a local emulator or
stand-in), in this process.

:class:`AzureTestHost` drives the real function code: the ``partitions`` and ``wake``
functions of the ``FunctionApp`` that ``function_app.py`` builds
(:func:`hosts.azure.functions.build_function_app`), called with
``azure.functions.EventHubEvent`` batches carrying the trigger metadata, over Blob snapshots
and statuses and the partition hub. It implements the one host interface
(:class:`reactive.hosting.Host`: ``client()``, ``run(until, progress)``, ``describe``,
``parts``, the counters, ``app_log``, ``unhandled``, ``now``, ``schema``), so a test written
for the emulator runs on it too::

    with azure_test_host(app, storage, eventhubs, hub="partitions-t1", partitions=4) as host:
        client = host.client()
        iid = client.start(Checkout(order="o-1"))
        host.run(until=lambda: client.status(iid).done)

The partition hub must be fresh (no events yet; its partition count the app's): the host
knows an event has arrived by its sequence number, which a fresh hub counts from 0.

Time is virtual, as on the local host: it stands still while anything is in flight and,
when every partition is quiet, jumps to the next due timer, and the timer function rings
the due partitions. Because it stands still while events are in flight, an event's enqueued
time (the broker stamps wall-clock time) is the virtual time at which it is delivered.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.eventhub import EventData, EventHubConsumerClient, PartitionContext
from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter
from azure.functions.timer import TimerRequest

from hosts.azure.events import event_bytes, number, trigger_metadata
from hosts.azure.functions import build_function_app
from hosts.azure.host import AzureHost
from hosts.azure.settings import AzureSettings
from hosts.local import VirtualClock
from reactive import App
from reactive.hosting import Partition, describe_waits
from reactive.hosting.client import SeamClient

BATCH = 256  # events per invocation at most (the local host's batch size)
ARRIVAL_TIMEOUT = 30.0  # seconds a sent event may take to reach its receiver


class _Receivers:
    """A receiver per partition of the hub buffering events in the background, as the
    Functions host's prefetch does; the host's thread takes batches when it chooses."""

    def __init__(self, settings: AzureSettings, sent: Callable[[int], int]) -> None:
        self.settings = settings
        self.sent = sent
        self.count = settings.partitions
        self.delivered = [-1] * self.count  # the last sequence number handed over
        self._buffers: list[list[EventData]] = [[] for _ in range(self.count)]
        self._arrived = threading.Condition()
        self._clients: list[EventHubConsumerClient] = []
        self._threads: list[threading.Thread] = []
        self._failures: list[BaseException] = []
        for p in range(self.count):
            client = settings.consumer(settings.partition_hub)
            thread = threading.Thread(target=self._receive, args=(client, p), daemon=True,
                                      name=f"feature-eh-{p}")
            self._clients.append(client)
            self._threads.append(thread)
            thread.start()

    def _receive(self, client: EventHubConsumerClient, partition: int) -> None:
        def on_batch(_: PartitionContext, events: list[EventData]) -> None:
            with self._arrived:
                self._buffers[partition].extend(events)
                self._arrived.notify_all()

        try:
            client.receive_batch(on_batch, partition_id=str(partition), starting_position="-1",
                                 max_batch_size=BATCH * 4, prefetch=BATCH * 4)
        except BaseException as exc:  # surfaced by the next take()
            self._failures.append(exc)

    def buffered(self) -> list[int]:
        """Partitions with events buffered."""
        with self._arrived:
            return [p for p in range(self.count) if self._buffers[p]]

    def pending(self) -> list[int]:
        """Partitions with events sent but not handed over yet, once they have arrived
        (every send has returned, so the hub has them; ``sent`` counts them per
        partition, and a fresh hub numbers events from 0)."""
        ready = self.buffered()
        if ready:
            return ready
        behind = [p for p in range(self.count) if self.sent(p) > self.delivered[p] + 1]
        if not behind:
            return []
        deadline = time.monotonic() + ARRIVAL_TIMEOUT
        with self._arrived:
            while not any(self._buffers[p] for p in behind):
                if self._failures:
                    raise self._failures[0]
                if not self._arrived.wait(max(0.0, deadline - time.monotonic())):
                    raise AssertionError(f"events sent to partitions {behind} did not "
                                         f"arrive within {ARRIVAL_TIMEOUT} s")
            return [p for p in range(self.count) if self._buffers[p]]

    def take(self, partition: int, limit: int) -> list[EventData]:
        with self._arrived:
            buffer = self._buffers[partition]
            events = buffer[:limit]
            del buffer[:limit]
        if events:
            self.delivered[partition] = number(events[-1])
        return events

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for thread in self._threads:
            thread.join(10)


class AzureTestHost:
    """The suites' view of an app on the Azure host (see the module docstring)."""

    def __init__(self, app: App, settings: AzureSettings, seed: int = 0) -> None:
        self.count = settings.partitions
        self.seed = seed  # the order is the brokers': events arrive as the hub delivers them
        self.clock = VirtualClock()
        # a timer is never awaited inside an invocation: the virtual clock moves only when
        # every partition is quiet
        self.settings = dataclasses.replace(settings, wait_limit=0.0)
        self.logs: list[tuple[int, int, str]] = []
        self.app_log = logging.getLogger(f"reactive.app.{app.name}")
        self.unhandled: list[str] = []
        self.host = AzureHost(app, self.settings, clock=self.clock, sleep=self._sleep,
                              output=_Output(self))
        self.schema = self.host.schema
        functions = build_function_app(app, host=lambda: self.host)
        by_name = _functions(functions)
        self._partitions, self._wake = by_name["partitions"], by_name["wake"]
        sender = self.host.sender
        self.receivers = _Receivers(self.settings, lambda p: sender.sent.get(p, 0))
        self.restores = 0  # nothing here injects restores
        self._started = False

    def _sleep(self, seconds: float) -> None:
        self.clock.now += max(0.0, seconds)

    # -- what the suites use -------------------------------------------------------------

    def client(self) -> SeamClient:
        return SeamClient(self.schema, self.count, self.host.sender, self.host.status,
                          self.settings.epoch, drive=self.run, clock=self.clock)

    def now(self) -> float:
        return self.clock()

    def next_due(self) -> float | None:
        dues = [d for d in (self.host.worker(p).next_due() for p in range(self.count))
                if d is not None]
        return min(dues) if dues else None

    def step(self) -> bool:
        """One invocation of a partition with events; False if none has any."""
        self._start()
        ready = self.receivers.pending()
        if not ready:
            return False
        self._invoke(ready[0])
        return True

    def run(
        self,
        until: Callable[[], bool] | None = None,
        progress: Callable[[AzureTestHost], None] | None = None,
    ) -> bool:
        """Deliver events until ``until()`` holds or nothing is in flight and no timer is
        pending; returns whether ``until`` holds (True when there is none)."""
        self._start()
        while True:
            if until is not None and until():
                return True
            ready = self.receivers.pending()
            for partition in ready:
                self._invoke(partition)
                if until is not None and until():
                    return True
            if progress is not None:
                progress(self)
            if ready:
                continue
            due = self.next_due()
            if due is None:
                return until() if until is not None else True
            self.clock.now = max(self.clock.now, due)
            self._ring_due()

    @property
    def parts(self) -> list[Partition]:
        return [self.host.worker(p).partition() for p in range(self.count)]

    def describe(self, instance_id: str) -> list[str] | None:
        owner = self.schema.instance_owner(instance_id, self.count)
        return describe_waits(self.host.worker(owner).partition(), instance_id)

    def app_lines(self) -> list[str]:
        return [text for _, _, text in self.logs]

    @property
    def invocations(self) -> int:
        return self.host.stats.invocations

    @property
    def deliveries(self) -> int:
        return self.host.stats.processed

    @property
    def activity_runs(self) -> int:
        return self.host.stats.activities

    @property
    def duplicates_dropped(self) -> int:
        return self.host.stats.duplicates

    def close(self) -> None:
        self.receivers.close()
        self.host.close()

    # -- driving the functions -----------------------------------------------------------

    def _start(self) -> None:
        """The first timer run: it rings partitions that never committed, so that
        startup orchestrations start (as the deployed app's timer does)."""
        if not self._started:
            self._started = True
            self._wake(timer=TimerRequest(past_due=False))

    def _ring_due(self) -> None:
        self._wake(timer=TimerRequest(past_due=False))
        if not self.receivers.pending():
            raise AssertionError(f"the timer function rang no partition, yet a timer is due "
                                 f"at {self.next_due()} (now {self.now()})")

    def _invoke(self, partition: int) -> None:
        events = self.receivers.take(partition, BATCH)
        if events:
            self._partitions(events=self._trigger_batch(events, partition))

    def _trigger_batch(self, events: Sequence[EventData], partition: int
                       ) -> list[func.EventHubEvent]:
        """The batch as the Python worker decodes it (``cardinality=many``, binary), with
        the virtual time as every event's enqueued time."""
        metadata = trigger_metadata(events, self.settings.partition_hub,
                                    self.settings.consumer_group, str(partition))
        system = json.loads(metadata["SystemPropertiesArray"].value)
        stamp = datetime.fromtimestamp(self.clock(), UTC).isoformat()
        for entry in system:
            entry["EnqueuedTimeUtc"] = stamp
        metadata["SystemPropertiesArray"] = meta.Datum(json.dumps(system), "json")
        data = meta.Datum(types.SimpleNamespace(bytes=[event_bytes(e) for e in events]),
                          "collection_bytes")
        decoded = EventHubTriggerConverter.decode(data, trigger_metadata=metadata)
        assert isinstance(decoded, list)
        return decoded


def _functions(functions: func.FunctionApp) -> dict[str, Callable[..., Any]]:
    """The app's user functions by name (indexed once: the library refuses a second
    indexing of the same app)."""
    return {f.get_function_name() or f.get_user_function().__name__: f.get_user_function()
            for f in functions.get_functions()}


class _Output:
    """The partitions' log lines and unhandled errors, kept for the suites."""

    def __init__(self, host: AzureTestHost) -> None:
        self.host = host
        self._lock = threading.Lock()

    def log(self, partition: int, level: int, text: str) -> None:
        with self._lock:
            self.host.logs.append((partition, level, text))
        self.host.app_log.log(level, text)

    def unhandled(self, partition: int, text: str) -> None:
        with self._lock:
            self.host.unhandled.append(text)


@contextlib.contextmanager
def azure_test_host(
    app: App, storage_connection: str, eventhubs_connection: str, hub: str,
    partitions: int = 4, seed: int = 0, catchup_group: str = "$Default",
) -> Iterator[AzureTestHost]:
    """An :class:`AzureTestHost` over a container of its own (deleted afterwards) and the
    fresh partition hub ``hub`` of ``partitions`` partitions; closed afterwards."""
    settings = AzureSettings(
        partitions,
        storage_connection=storage_connection,
        eventhubs_connection=eventhubs_connection,
        partition_hub=hub,
        container="t" + uuid.uuid4().hex[:20],
        catchup_group=catchup_group,
    )
    host = AzureTestHost(app, settings, seed)
    try:
        yield host
    finally:
        host.close()
        with contextlib.suppress(Exception):  # best effort: the test's outcome stands
            host.host.container.delete_container()


__all__ = ["AzureTestHost", "azure_test_host"]
