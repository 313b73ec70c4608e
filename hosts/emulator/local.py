"""The emulator in serverless shape: every partition runs through the shared host loop,
against in-memory logs and snapshots or, with ``state_dir``, a durable folder."""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from hosts.emulator.folder import FolderStore, FolderTransport
from hosts.emulator.options import Faults
from reactive import App
from reactive.core.messages import Message
from reactive.core.partition import Partition
from reactive.hosting.client import HostClient
from reactive.hosting.loop import Hook, HostLoop, InvocationReport, LoopOptions
from reactive.hosting.memory import MemoryStore, MemoryTransport
from reactive.hosting.seams import LegacySnapshotStore as SnapshotStore
from reactive.hosting.seams import Transport


class VirtualClock:
    """Time that only moves when the host is idle and a timer is due."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


class LocalHost:
    """Runs an application's partitions, one invocation at a time, until quiescence."""

    def __init__(
        self,
        app: App,
        partitions: int = 4,
        state_dir: Path | None = None,
        seed: int = 0,
        clock: Callable[[], float] | None = None,
        batch_size: int = 256,
        time_budget: float | None = None,
        epoch: str = "1",
        on_unhandled: Callable[[str], None] | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        self.schema = app.compile()
        self.count = partitions
        self.clock = clock or (time.time if state_dir is not None else VirtualClock())
        self.transport: Transport
        self.store: SnapshotStore
        if state_dir is None:
            self.transport = MemoryTransport(partitions, self.clock)
            self.store = MemoryStore()
        else:
            self.transport = FolderTransport(Path(state_dir), partitions, self.clock)
            self.store = FolderStore(Path(state_dir))
        self.logs: list[tuple[int, int, str]] = []
        self.unhandled: list[str] = []
        self.app_log = logging.getLogger(f"reactive.app.{app.name}")
        self._on_unhandled = on_unhandled
        self.loop = HostLoop(
            self.schema,
            self.transport,
            self.store,
            LoopOptions(partitions, epoch=epoch, batch_size=batch_size, time_budget=time_budget),
            clock=self.clock,
            on_log=self._log,
            on_unhandled=self._unhandled,
        )
        self._rng = random.Random(seed)
        self._ids = random.Random(f"instance-ids-{seed}")
        self._due: dict[int, float | None] = {}
        self.invocations = 0
        # the counters the emulator also keeps (the CLI prints them)
        self.deliveries = 0
        self.activity_runs = 0
        self.restores = 0
        self.duplicates_dropped = 0
        self.faults = Faults()

    def _log(self, partition: int, level: int, text: str) -> None:
        self.logs.append((partition, level, text))
        self.app_log.log(level, text)

    def _unhandled(self, error: str) -> None:
        self.unhandled.append(error)
        if self._on_unhandled is not None:
            self._on_unhandled(error)

    # -- the client backend ------------------------------------------------------------

    def submit(self, msg: Message) -> None:
        self.loop.post(msg)

    def partition(self, index: int) -> Partition:
        return self.loop.partition(index)

    def has_pending_input(self) -> bool:
        return any(self.loop.has_input(p) for p in range(self.count))

    def new_instance_id(self) -> str:
        return uuid.UUID(int=self._ids.getrandbits(128), version=4).hex

    def client(self) -> HostClient:
        return HostClient(self)

    # -- driving -----------------------------------------------------------------------

    def invoke(self, index: int, hook: Hook | None = None) -> InvocationReport:
        self.invocations += 1
        report = self.loop.invoke(index, hook)
        self._due[index] = report.next_due
        self.deliveries += report.processed
        self.activity_runs += report.activities
        return report

    @property
    def parts(self) -> list[Partition]:
        return [self.loop.partition(i) for i in range(self.count)]

    def run(
        self,
        until: Callable[[], bool] | None = None,
        progress: Callable[[LocalHost], None] | None = None,
    ) -> bool:
        """Invoke partitions (in a seeded random order) until ``until()`` holds or every
        partition is idle with no timer pending."""
        while True:
            if until is not None and until():
                return True
            order = list(range(self.count))
            self._rng.shuffle(order)
            busy = False
            for index in order:
                report = self.invoke(index)
                progressed = report.processed or report.sent or report.activities
                busy = busy or bool(progressed or report.backlog)
                if until is not None and until():
                    return True
            if progress is not None:
                progress(self)
            if busy:
                continue
            dues = [d for d in self._due.values() if d is not None]
            if not dues:
                return until() if until is not None else True
            wait = min(dues) - self.clock()
            if isinstance(self.clock, VirtualClock):
                self.clock.now += max(0.0, wait)
            elif wait > 0:
                time.sleep(wait)

    def app_lines(self) -> list[str]:
        return [text for _, _, text in self.logs]
