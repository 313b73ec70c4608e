"""The bench's ``azure-local`` host: an app on the Azure host driven by the local runner,
against the storage account and namespace the environment names, or Azurite and the
Event Hubs stand-in started for the run. Implements the bench's ``Host`` protocol
(``client()``, ``run(until)``, ``batch()``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hosts.azure.local import LocalServices, serve, wait_until
from hosts.azure.settings import EVENTHUBS, STORAGE, AzureSettings
from reactive import App, Orchestration
from reactive.hosting.client import SeamClient
from reactive.hosting.seams import Outgoing, StatusQuery, StatusRecord

# seconds without invocations before the run asks the status store whether any instance
# is still pending or running (only a debounce: the answer decides, and a busy run resets
# it); every run ends with this wait, so it is kept short
IDLE_FOR = 0.5
POLL = 0.1  # seconds between looks at the runner's invocation count


class _BatchingClient(SeamClient):
    def __init__(self, bench: AzureLocalBench) -> None:
        host = bench.served.host
        super().__init__(host.schema, host.settings.partitions, host.sender, host.status,
                         host.settings.epoch)
        self.bench = bench

    def start(self, orchestration: Orchestration[Any], instance_id: str | None = None) -> str:
        if not self.bench.batching:
            return super().start(orchestration, instance_id)
        record, out = self.pending_start(orchestration, instance_id)
        self.bench.buffer.append((record, out))
        return record.instance_id


class AzureLocalBench:
    def __init__(self, app: App, partitions: int) -> None:
        self.services: LocalServices | None = None
        if os.environ.get(STORAGE) and os.environ.get(EVENTHUBS):
            settings = AzureSettings.from_env(
                {**os.environ, "REACTIVE_PARTITIONS": str(partitions)}
            )
        else:
            self.services = LocalServices(partitions)
            settings = self.services.start()
        # the wake timer on the app's schedule (every 10 s by default), as deployed: each
        # run reads every partition's health, a listing per partition
        self.served = serve(app, partitions, settings, timer_interval=None)
        self.batching = False
        self.buffer: list[tuple[StatusRecord, Outgoing]] = []
        self._warm_up(partitions)

    def _warm_up(self, partitions: int) -> None:
        """Ring every partition and wait for its first invocation, so that the clock
        starts on a running host: the sender's producers connected (the SDK takes up to
        a second or two to open a producer's links) and every partition loaded."""
        self.served.host.sender.wake(list(range(partitions)))
        stats = self.served.runner.stats

        def every_partition_ran() -> bool:
            with stats.lock:
                ran = {i.partition for i in stats.recent if i.function == "partitions"}
            return len(ran) >= partitions

        if not wait_until(every_partition_ran, 120):
            self.close()
            raise RuntimeError("the Azure host's partitions did not start within 120 s")

    def client(self) -> SeamClient:
        return _BatchingClient(self)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Starts made inside are submitted together: their pending records in parallel,
        their messages in one send (batches per partition)."""
        self.batching = True
        try:
            yield
        finally:
            self.batching = False
            buffered, self.buffer = self.buffer, []
            host = self.served.host
            host.status.put_pending_all([record for record, _ in buffered])
            host.sender.send([out for _, out in buffered])

    def run(self, until: Callable[[], bool] | None = None) -> bool:
        if until is not None:
            return wait_until(until, 3600, poll=0.05)
        stats = self.served.runner.stats
        status = self.served.host.status
        last, since = -1, time.monotonic()
        while True:
            time.sleep(POLL)
            if stats.invocations != last:
                last, since = stats.invocations, time.monotonic()
                continue
            if time.monotonic() - since < IDLE_FOR:
                continue
            busy = any(status.query(StatusQuery(status=s, limit=1))
                       for s in ("pending", "running"))
            if not busy:
                return True
            since = time.monotonic()

    def close(self) -> None:
        self.served.stop()
        if self.services is not None:
            self.services.stop()
