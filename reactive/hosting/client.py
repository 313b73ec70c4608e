"""The client API for hosts that run in this process: requests are messages posted to a
partition's input; waiting drives the host until the instance is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from reactive import errors
from reactive.client import InstanceStatus
from reactive.core.builtin_ops import ClientFork, ClientPerform
from reactive.core.messages import Message, RaiseEvent, Start, Terminate
from reactive.core.partition import Partition
from reactive.core.results import decode_error
from reactive.hosting import requests
from reactive.hosting.memory import DONE
from reactive.hosting.seams import Outgoing, Sender, StatusRecord, StatusStore
from reactive.model import Operation, Orchestration
from reactive.schema import Schema


class Backend(Protocol):
    """What a host offers its in-process client."""

    schema: Schema
    count: int

    def submit(self, msg: Message) -> None: ...
    def partition(self, index: int) -> Partition: ...
    def run(self, until: Callable[[], bool] | None = None) -> bool: ...
    def new_instance_id(self) -> str: ...
    def has_pending_input(self) -> bool: ...


class HostClient:
    """Implements :class:`reactive.client.Client` on an in-process host."""

    def __init__(self, backend: Backend) -> None:
        self.host = backend
        self._submitted = {iid for iid, _ in backend.schema.startup_instances()}

    def _owner(self, instance_id: str) -> int:
        return self.host.schema.instance_owner(instance_id, self.host.count)

    def start(self, orchestration: Orchestration[Any], instance_id: str | None = None) -> str:
        self.host.schema.info(orchestration)  # unknown types fail here, clearly
        iid = instance_id or self.host.new_instance_id()
        self._submitted.add(iid)
        self.host.submit(Start(self._owner(iid), iid, orchestration))
        return iid

    def status(self, instance_id: str) -> InstanceStatus | None:
        record = self.host.partition(self._owner(instance_id)).instance_status(instance_id)
        if record is None:
            # submitted but unknown: not processed yet, or finished and forgotten
            # (App.keep_completed) once nothing is left to process
            if instance_id in self._submitted and self.host.has_pending_input():
                return InstanceStatus(instance_id, "pending")
            return None
        name, status = record["name"], record["status"]
        custom = record.get("custom_status")
        if status == "running":
            return InstanceStatus(instance_id, "running", name, custom_status=custom)
        if status == "completed":
            info = self.host.schema.by_name[name]
            result = info.result.validate_python(record["result"])
            return InstanceStatus(instance_id, "completed", name, result=result,
                                  custom_status=custom)
        error = decode_error(self.host.schema, record["error"])
        return InstanceStatus(instance_id, status, name, error=error, custom_status=custom)

    def wait(self, instance_id: str, timeout: float | None = None) -> Any:
        """Run the emulator until the instance is done; its result, or its error raised.
        ``timeout`` is accepted for API parity; the emulator stops at quiescence instead."""
        def done() -> bool:
            status = self.status(instance_id)
            return status is not None and status.done

        if self.status(instance_id) is None:
            raise errors.ReactiveError(
                f"no orchestration instance {instance_id!r} is known: it was never started, or "
                "it finished and was forgotten (see App.keep_completed)"
            )
        if not self.host.run(until=done):
            raise errors.ReactiveError(
                f"orchestration instance {instance_id!r} cannot make progress: the emulator "
                "is idle (is it waiting for an external event?)"
            )
        status = self.status(instance_id)
        assert status is not None
        if status.error is not None:
            raise status.error
        return status.result

    def raise_event(self, instance_id: str, name: str, value: Any = None) -> None:
        self.host.submit(RaiseEvent(self._owner(instance_id), instance_id, name, value))

    def terminate(self, instance_id: str, reason: str = "") -> None:
        self.host.submit(Terminate(self._owner(instance_id), instance_id, reason))

    def perform(self, op: Operation) -> Any:
        schema = self.host.schema
        info = schema.info(op)
        if isinstance(op, Orchestration):
            return self.wait(self.start(op))
        wire = list(schema.encode_op(op))
        result = self.wait(self.start(ClientPerform(op=wire)))
        return info.result.validate_python(result)

    def fork(self, op: Operation) -> None:
        schema = self.host.schema
        schema.info(op)
        if isinstance(op, Orchestration):
            self.start(op)
        else:
            self.start(ClientFork(op=list(schema.encode_op(op))))

    def run(self) -> None:
        self.host.run()


class SeamClient:
    """Implements :class:`reactive.client.Client` over any host's seams: requests go out
    through a ``Sender``, statuses come from a ``StatusStore``; nothing restores a
    partition. ``drive(until)``, when given, runs an in-process host while waiting."""

    def __init__(
        self,
        schema: Schema,
        partitions: int,
        sender: Sender,
        status: StatusStore,
        epoch: str = "1",
        drive: Callable[[Callable[[], bool]], bool] | None = None,
        clock: Callable[[], float] = time.time,
        poll: float = 0.02,
    ) -> None:
        self.schema = schema
        self.partitions = partitions
        self.sender = sender
        self.status_store = status
        self.epoch = epoch
        self.drive = drive
        self.clock = clock
        self.poll = poll

    def start(self, orchestration: Orchestration[Any], instance_id: str | None = None) -> str:
        """Start an instance; an existing id of the same orchestration is that instance
        (nothing starts twice), of another orchestration a clear error."""
        name = self.schema.info(orchestration).name  # unknown types fail here, clearly
        iid = instance_id or requests.new_id()
        if not iid or not isinstance(iid, str):
            raise errors.ReactiveError("an instance id must be a non-empty string")
        existing = self.status_store.get(iid)
        if existing is not None and existing.name != name:
            raise errors.ReactiveError(
                f"instance id {iid!r} is taken by a {existing.name} instance, not {name}"
            )
        if existing is None:
            owner = self.schema.instance_owner(iid, self.partitions)
            now = self.clock()
            self.status_store.put_pending(StatusRecord(iid, name, "pending", owner, now, now))
        # sent even if known: a start whose first send was lost goes out again, and the
        # request id (the instance id) keeps a duplicate from being applied
        self.sender.send([requests.start(self.schema, self.partitions, self.epoch, iid,
                                         orchestration)])
        return iid

    def pending_start(
        self, orchestration: Orchestration[Any], instance_id: str | None = None
    ) -> tuple[StatusRecord, Outgoing]:
        """A start's pending record and its message, unsent, for a caller that submits
        many together (``put_pending_all``, then batched sends); no check of the id."""
        name = self.schema.info(orchestration).name
        iid = instance_id or requests.new_id()
        out = requests.start(self.schema, self.partitions, self.epoch, iid, orchestration)
        now = self.clock()
        return StatusRecord(iid, name, "pending", out.dest, now, now), out

    def status(self, instance_id: str) -> InstanceStatus | None:
        record = self.status_store.get(instance_id)
        return None if record is None else to_instance_status(self.schema, record)

    def wait(self, instance_id: str, timeout: float | None = None) -> Any:
        """The instance's result, or its error raised; TimeoutError after ``timeout``."""
        if self.status_store.get(instance_id) is None:
            raise errors.ReactiveError(
                f"no orchestration instance {instance_id!r} is known: it was never started, "
                "or it was purged"
            )

        def done() -> bool:
            record = self.status_store.get(instance_id)
            return record is not None and record.status in DONE

        deadline = None if timeout is None else time.monotonic() + timeout
        if self.drive is not None and not done() and not self.drive(done) and not done():
            raise errors.ReactiveError(
                f"orchestration instance {instance_id!r} cannot make progress: the host is "
                "idle (is it waiting for an external event?)"
            )
        while not done():
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"instance {instance_id!r} did not finish in {timeout} s")
            time.sleep(self.poll)
        status = self.status(instance_id)
        assert status is not None
        if status.error is not None:
            raise status.error
        return status.result

    def raise_event(
        self, instance_id: str, name: str, value: Any = None, request_id: str | None = None
    ) -> None:
        self.sender.send([requests.raise_event(
            self.schema, self.partitions, self.epoch, instance_id, name, value, request_id
        )])

    def terminate(self, instance_id: str, reason: str = "", request_id: str | None = None) -> None:
        self.sender.send([requests.terminate(
            self.schema, self.partitions, self.epoch, instance_id, reason, request_id
        )])

    def perform(self, op: Operation) -> Any:
        info = self.schema.info(op)
        if isinstance(op, Orchestration):
            return self.wait(self.start(op))
        wire = list(self.schema.encode_op(op))
        result = self.wait(self.start(ClientPerform(op=wire)))
        return info.result.validate_python(result)

    def fork(self, op: Operation) -> None:
        self.schema.info(op)
        if isinstance(op, Orchestration):
            self.start(op)
        else:
            self.start(ClientFork(op=list(self.schema.encode_op(op))))


def to_instance_status(schema: Schema, record: StatusRecord) -> InstanceStatus:
    """A status store record as the client API's InstanceStatus."""
    custom = record.custom_status
    if record.status == "completed":
        info = schema.by_name.get(record.name)
        result = info.result.validate_python(record.result) if info else record.result
        return InstanceStatus(record.instance_id, "completed", record.name, result=result,
                              custom_status=custom)
    if record.status in ("failed", "terminated"):
        error = decode_error(schema, record.error)
        return InstanceStatus(record.instance_id, record.status, record.name, error=error,
                              custom_status=custom)
    return InstanceStatus(record.instance_id, record.status, record.name, custom_status=custom)
