"""The client API every host implements the same way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, overload

from reactive.model import Event, Operation, Orchestration, Read, Update

R = TypeVar("R")

Status = Literal["pending", "running", "completed", "failed", "terminated"]


@dataclass(frozen=True)
class InstanceStatus:
    """Where an orchestration instance stands. ``result`` is set when it completed,
    ``error`` (the exception it failed with) when it failed or was terminated."""

    instance_id: str
    status: Status
    name: str | None = None
    result: Any = None
    error: BaseException | None = None
    custom_status: Any = None  # what the orchestration last set with ctx.set_custom_status

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed", "terminated")


class Client(Protocol):
    def start(self, orchestration: Orchestration[Any], instance_id: str | None = None) -> str:
        """Start an instance; starting an existing instance id again does nothing."""

    def wait(self, instance_id: str, timeout: float | None = None) -> Any:
        """The instance's result; raises its error (TerminatedError if terminated)."""

    def status(self, instance_id: str) -> InstanceStatus | None:
        """The instance's status, or None if no such instance was started."""

    def raise_event(self, instance_id: str, name: str, value: Any = None) -> None:
        """Deliver an external event to ``ctx.wait_for_event(name)`` in the instance."""

    def terminate(self, instance_id: str, reason: str = "") -> None:
        """Stop the instance; its status becomes terminated."""

    @overload
    def perform(self, op: Orchestration[R]) -> R: ...
    @overload
    def perform(self, op: Update[Any, R]) -> R: ...
    @overload
    def perform(self, op: Read[Any, R]) -> R: ...
    @overload
    def perform(self, op: Event) -> None: ...
    def perform(self, op: Operation) -> Any:
        """Run an orchestration, update, read or event and return its result."""

    def fork(self, op: Operation) -> None:
        """Start an orchestration, update or event without waiting for it."""
