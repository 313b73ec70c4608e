"""A deterministic stand-in for the Functions host in tests: a receiver per hub partition
buffers events in the background, and the test's own thread delivers them to a function as
``azure.functions.EventHubEvent`` batches (with the trigger metadata), one partition at a
time, when it chooses. Like the Functions host, a batch counts as checkpointed after the
call whether the call raised or not."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import azure.functions as func
from azure.eventhub import EventData, EventHubConsumerClient, PartitionContext

from hosts.azure.events import number, trigger_batch
from hosts.azure.settings import AzureSettings

Function = Callable[[list[func.EventHubEvent]], object]


class Pump:
    def __init__(self, settings: AzureSettings, partitions: int = 4, hub: str | None = None
                 ) -> None:
        self.settings = settings
        self.hub = hub or settings.partition_hub
        self.partitions = partitions
        self.failures: list[BaseException] = []
        self.delivered: dict[int, list[int]] = {p: [] for p in range(partitions)}
        self._buffers: dict[int, list[EventData]] = {p: [] for p in range(partitions)}
        self._lock = threading.Lock()
        self._clients: list[EventHubConsumerClient] = []
        self._threads: list[threading.Thread] = []
        for p in range(partitions):
            client = settings.consumer(self.hub)
            thread = threading.Thread(target=self._receive, args=(client, p), daemon=True)
            self._clients.append(client)
            self._threads.append(thread)
            thread.start()

    def _receive(self, client: EventHubConsumerClient, partition: int) -> None:
        def on_batch(_: PartitionContext, events: list[EventData]) -> None:
            with self._lock:
                self._buffers[partition].extend(events)

        client.receive_batch(on_batch, partition_id=str(partition), starting_position="-1",
                             max_batch_size=1000)

    def close(self) -> None:
        for client in self._clients:
            client.close()
        for thread in self._threads:
            thread.join(10)

    def buffered(self, partition: int) -> int:
        with self._lock:
            return len(self._buffers[partition])

    def drop(self, partition: int, count: int) -> None:
        """Forget events as if a checkpoint had passed them (the test handed them over)."""
        assert wait_for(lambda: self.buffered(partition) >= count)
        with self._lock:
            del self._buffers[partition][:count]

    def take(self, partition: int, limit: int | None = None) -> list[func.EventHubEvent]:
        with self._lock:
            buffer = self._buffers[partition]
            events = buffer[:limit] if limit is not None else list(buffer)
            del buffer[: len(events)]
        if not events:
            return []
        return trigger_batch(events, self.hub, self.settings.consumer_group, str(partition))

    def step(self, partition: int, call: Function, limit: int | None = None) -> int:
        """Deliver the partition's buffered events (at most ``limit``) to ``call``."""
        batch = self.take(partition, limit)
        if not batch:
            return 0
        try:
            call(batch)
        except Exception as exc:
            self.failures.append(exc)
        self.delivered[partition].extend(e.sequence_number or 0 for e in batch)
        return len(batch)

    def run(
        self, call: Function, until: Callable[[], bool], timeout: float = 60.0,
        idle: Callable[[], object] | None = None,
    ) -> bool:
        """Step every partition round-robin until ``until()``; ``idle`` (the timer
        function) is called when nothing was delivered for a while."""
        deadline = time.monotonic() + timeout
        quiet = 0
        while time.monotonic() < deadline:
            if until():
                return True
            delivered = sum(self.step(p, call) for p in range(self.partitions))
            quiet = 0 if delivered else quiet + 1
            if not delivered:
                if idle is not None and quiet % 20 == 0:
                    idle()
                time.sleep(0.02)
        return until()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


__all__ = ["Pump", "number", "wait_for"]
