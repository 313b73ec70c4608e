"""Small stand-ins for the API's unit tests: a status store in a dict and a client that
runs the application on the emulator and publishes what it sees into that store."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from hosts.emulator import Emulator, EmulatorClient
from reactive import App
from reactive.client import InstanceStatus
from reactive.hosting.seams import PartitionHealth, StatusQuery, StatusRecord
from reactive.model import Operation, Orchestration

FINISHED = ("completed", "failed", "terminated")


class DictStatusStore:
    """A StatusStore in a dict."""

    def __init__(self) -> None:
        self.records: dict[str, StatusRecord] = {}
        self.partitions: dict[int, PartitionHealth] = {}
        self.lock = threading.Lock()

    def publish(self, records: Sequence[StatusRecord], health: PartitionHealth) -> None:
        with self.lock:
            for record in records:
                old = self.records.get(record.instance_id)
                if old is None or old.updated <= record.updated:
                    self.records[record.instance_id] = record
            self.partitions[health.partition] = health

    def put_pending(self, record: StatusRecord) -> bool:
        with self.lock:
            if record.instance_id in self.records:
                return False
            self.records[record.instance_id] = record
            return True

    def get(self, instance_id: str) -> StatusRecord | None:
        with self.lock:
            return self.records.get(instance_id)

    def query(self, query: StatusQuery) -> list[StatusRecord]:
        with self.lock:
            rows = sorted(self.records.values(), key=lambda r: r.instance_id)
        out = []
        for r in rows:
            if query.status is not None and r.status != query.status:
                continue
            if query.name is not None and r.name != query.name:
                continue
            if query.since is not None and r.created < query.since:
                continue
            if query.until is not None and r.created >= query.until:
                continue
            if query.after is not None and r.instance_id <= query.after:
                continue
            out.append(r)
            if len(out) >= query.limit:
                break
        return out

    def health(self) -> list[PartitionHealth]:
        with self.lock:
            return list(self.partitions.values())

    def purge(self, instance_id: str) -> bool:
        with self.lock:
            record = self.records.get(instance_id)
            if record is None or record.status not in FINISHED:
                return False
            del self.records[instance_id]
            return True


class EmulatorClient2:
    """A Client that runs each request to quiescence on the emulator, then publishes every
    top-level instance's status into a :class:`DictStatusStore`. ``hold`` keeps started
    instances pending (nothing runs) until :meth:`release`."""

    def __init__(self, app: App, status: DictStatusStore, partitions: int = 2) -> None:
        self.em = Emulator(app, partitions=partitions, seed=0)
        self.inner = EmulatorClient(self.em)
        self.status_store = status
        self.lock = threading.Lock()
        self.hold = False
        self.events: list[tuple[str, str, Any, str | None]] = []
        self._counter = 0
        self.published: set[tuple[str, str]] = set()
        self._run()

    def _run(self) -> None:
        if self.hold:
            return
        self.em.run()
        now = time.time()
        for index, part in enumerate(self.em.parts):
            records = []
            for iid in list(part.completed) + list(part.runs):
                info = part.instance_status(iid)
                if info is None:
                    continue
                if (iid, info["status"]) in self.published:
                    continue
                self.published.add((iid, info["status"]))
                old = self.status_store.get(iid)
                records.append(StatusRecord(
                    iid, info["name"], info["status"], index,
                    old.created if old else now, now, info.get("result"), info.get("error"),
                ))
            self.status_store.publish(records, PartitionHealth(index, str(now), now))

    def release(self) -> None:
        with self.lock:
            self.hold = False
            self._run()

    def start(self, orchestration: Orchestration[Any], instance_id: str | None = None) -> str:
        with self.lock:
            if instance_id is None:
                self._counter += 1
                instance_id = f"i{self._counter:04d}"
            name = type(orchestration).__name__
            self.status_store.put_pending(
                StatusRecord(instance_id, name, "pending", 0, time.time(), time.time())
            )
            self.inner.start(orchestration, instance_id)
            self._run()
            return instance_id

    def wait(self, instance_id: str, timeout: float | None = None) -> Any:
        return self.inner.wait(instance_id, timeout)

    def status(self, instance_id: str) -> InstanceStatus | None:
        return self.inner.status(instance_id)

    def raise_event(
        self, instance_id: str, name: str, value: Any = None, request_id: str | None = None
    ) -> None:
        with self.lock:
            self.events.append((instance_id, name, value, request_id))
            if request_id is not None and any(
                e[3] == request_id for e in self.events[:-1]
            ):
                return
            self.inner.raise_event(instance_id, name, value)
            self._run()

    def terminate(self, instance_id: str, reason: str = "") -> None:
        with self.lock:
            self.inner.terminate(instance_id, reason)
            self._run()

    def perform(self, op: Operation) -> Any:
        return self.inner.perform(op)

    def fork(self, op: Operation) -> None:
        self.inner.fork(op)
