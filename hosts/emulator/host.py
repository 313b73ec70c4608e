"""The emulator: all partitions in one process, driven by a seeded random schedule.

Messages travel over FIFO channels, one per (sender, receiver) pair, each message stamped
with a per-channel sequence number that receivers use to drop duplicates. Every step the
scheduler picks a non-empty channel at random (seeded), so a run is reproducible. Faults
are drawn from a separate random generator, so that injecting them never changes the
schedule: a faulty run must give exactly the results of the fault-free run.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

from hosts.emulator.options import Clock, Faults
from reactive import App
from reactive.hosting import (
    ActivityTask,
    Effects,
    Message,
    Partition,
    Tick,
    apply_delta,
    describe_waits,
    execute_activity,
    from_wire,
    to_wire,
)
from reactive.hosting.client import HostClient

CLIENT = -1  # the channel source of client requests
ACTIVITIES = -2  # the channel source of activity tasks
VIRTUAL_EPOCH = 1_767_225_600.0  # 2026-01-01T00:00:00Z: virtual time starts here
VIRTUAL_STEP = 0.001  # virtual seconds per delivery

log = logging.getLogger("reactive.emulator")


class Emulator:
    """Runs a compiled application in-process. ``clock="virtual"`` (the default) makes
    timers fire as soon as nothing else can run; ``"real"`` waits for them."""

    def __init__(
        self,
        app: App,
        partitions: int = 4,
        seed: int = 0,
        faults: Faults | None = None,
        clock: Clock = "virtual",
        on_unhandled: Callable[[str], None] | None = None,
    ) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {partitions}")
        self.app = app
        self.schema = app.compile()
        self.count = partitions
        self.faults = faults or Faults()
        self.clock = clock
        self.on_unhandled = on_unhandled
        self.app_log = logging.getLogger(f"reactive.app.{app.name}")
        self.parts = [Partition(self.schema, i, partitions) for i in range(partitions)]
        # what a store would hold: a base snapshot per partition that every restore brings
        # forward by the partition's delta, as the hosts do, so a change a delta misses shows
        self._stored = [_roundtrip(p.snapshot()) for p in self.parts]
        self._stored_for = list(self.parts)  # a partition replaced from outside starts over
        self._rng = random.Random(seed)
        self._ids = random.Random(f"instance-ids-{seed}")  # reproducible client instance ids
        self._fault_rng = random.Random(self.faults.seed * 7919 + 17)
        self._channels: dict[tuple[int, int], deque[Any]] = {}
        self._next_seq: dict[tuple[int, int], int] = {}
        self._seen: list[dict[int, int]] = [{} for _ in range(partitions)]
        self._virtual_now = VIRTUAL_EPOCH
        # what happened, for tests and the CLI
        self.logs: list[tuple[int, int, str]] = []
        self.unhandled: list[str] = []
        self.deliveries = 0
        self.activity_runs = 0
        self.restores = 0
        self.duplicates_dropped = 0
        self._apply(0, self.parts[0].first_start(self.now()))

    # -- time ------------------------------------------------------------------------------

    def now(self) -> float:
        return self._virtual_now if self.clock == "virtual" else time.time()

    def next_due(self) -> float | None:
        dues = [d for d in (p.next_due() for p in self.parts) if d is not None]
        return min(dues) if dues else None

    # -- driving ---------------------------------------------------------------------------

    def has_pending_input(self) -> bool:
        return any(self._channels.values())

    def new_instance_id(self) -> str:
        return uuid.UUID(int=self._ids.getrandbits(128), version=4).hex

    def submit(self, msg: Message) -> None:
        """Post a client request to its partition."""
        self._enqueue(CLIENT, msg.dest, msg)

    def run(
        self,
        until: Callable[[], bool] | None = None,
        progress: Callable[[Emulator], None] | None = None,
    ) -> bool:
        """Deliver messages until ``until()`` holds or nothing is left to do (quiescence,
        with no timer pending). Returns whether ``until`` holds (True if none given)."""
        while True:
            if until is not None and until():
                return True
            if self.step():
                if progress is not None and self.deliveries % 1000 == 0:
                    progress(self)
                continue
            due = self.next_due()
            if due is None:
                return until() if until is not None else True
            if self.clock == "virtual":
                self._virtual_now = max(self._virtual_now, due)
            else:
                time.sleep(max(0.0, due - time.time()))
            self._fire_timers()

    def step(self) -> bool:
        """Deliver one message or run one activity; False if every channel is empty."""
        active = [key for key, queue in self._channels.items() if queue]
        if not active:
            return False
        src, dst = active[self._rng.randrange(len(active))]
        item = self._channels[(src, dst)].popleft()
        if src == ACTIVITIES:
            self._run_activity(item)
        else:
            seq, msg = item
            self._deliver(src, dst, seq, msg)
        self._fire_timers()
        return True

    # -- delivery --------------------------------------------------------------------------

    def _enqueue(self, src: int, dst: int, msg: Message) -> None:
        key = (src, dst)
        seq = self._next_seq.get(key, 0) + 1
        self._next_seq[key] = seq
        self._channels.setdefault(key, deque()).append((seq, msg))

    def _deliver(
        self, src: int, dst: int, seq: int | None, msg: Message, duplicate: bool = False
    ) -> None:
        if seq is not None:
            seen = self._seen[dst]
            if seq <= seen.get(src, 0):
                self.duplicates_dropped += 1
                return
            seen[src] = seq
        if self.faults.roundtrip:
            msg = from_wire(json.loads(json.dumps(to_wire(msg, self.schema))), self.schema)
        if not duplicate:  # an injected copy must not move the clock: results stay identical
            self.deliveries += 1
            self._virtual_now += VIRTUAL_STEP
        self._apply(dst, self.parts[dst].process(msg, self.now()))
        if duplicate:
            return
        faults, dice = self.faults, self._fault_rng
        if faults.duplicate_probability and dice.random() < faults.duplicate_probability:
            self._deliver(src, dst, seq, msg, duplicate=True)
        if faults.restore_probability and dice.random() < faults.restore_probability:
            self._restore(dst)

    def _apply(self, src: int, effects: Effects) -> None:
        for msg in effects.sends:
            self._enqueue(src, msg.dest, msg)
        for task in effects.activities:
            self._channels.setdefault((ACTIVITIES, src), deque()).append(task)
        for level, text in effects.logs:
            self._log(src, level, text)
        for error in effects.errors:
            self.unhandled.append(error)
            log.error("unhandled error: %s", error)
            if self.on_unhandled is not None:
                self.on_unhandled(error)

    def _log(self, partition: int, level: int, text: str) -> None:
        self.logs.append((partition, level, text))
        self.app_log.log(level, text)

    def _run_activity(self, task: ActivityTask) -> None:
        self.activity_runs += 1
        result = execute_activity(
            self.schema, task, lambda level, text: self._log(task.partition, level, text)
        )
        self._deliver(ACTIVITIES, task.partition, None, result)

    def _fire_timers(self) -> None:
        now = self.now()
        for part in self.parts:
            due = part.next_due()
            if due is not None and due <= now:
                self._apply(part.index, part.process(Tick(part.index), now))

    def _restore(self, index: int) -> None:
        """Replace a partition by a copy restored from its stored base plus its delta."""
        part = self.parts[index]
        if part is not self._stored_for[index]:
            self._stored[index] = _roundtrip(part.snapshot())
        apply_delta(self._stored[index], _roundtrip(part.take_delta()))
        restored = Partition.restore(self.schema, _roundtrip(self._stored[index]))
        self.parts[index] = self._stored_for[index] = restored
        self.restores += 1
        self._apply(index, restored.take_effects())
        # at least once: a restored partition's host reruns its pending activities; this
        # copy's result is dropped as if its worker had crashed, the queued run still counts
        for task in restored.pending_activities():
            self.activity_runs += 1
            execute_activity(self.schema, task, lambda level, text: None)

    # -- inspection ------------------------------------------------------------------------

    def describe(self, instance_id: str) -> list[str] | None:
        """What a live instance waits for (None if it is not live)."""
        owner = self.schema.instance_owner(instance_id, self.count)
        return describe_waits(self.parts[owner], instance_id)

    def app_lines(self) -> list[str]:
        return [text for _, _, text in self.logs]

    def partition(self, index: int) -> Partition:
        return self.parts[index]

    def client(self) -> HostClient:
        return HostClient(self)


def _roundtrip(data: dict[str, Any]) -> dict[str, Any]:
    """Through JSON bytes and back, as a store keeps it."""
    result: dict[str, Any] = json.loads(json.dumps(data).encode())
    return result
