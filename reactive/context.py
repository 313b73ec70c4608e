"""The contexts handed to application code, as the model sees them: what each kind of
operation may do. These are Protocols; the runtime's implementations live in
:mod:`reactive.core.context` (the model never depends on the core)."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any, NoReturn, Protocol, TypeVar, overload
from uuid import UUID

from reactive.futures import Future
from reactive.model import (
    Activity,
    Affinity,
    Event,
    Operation,
    Orchestration,
    Read,
    RetryPolicy,
    State,
    Update,
)

R = TypeVar("R")
S = TypeVar("S", bound=State[Any])
C = TypeVar("C")


class Logger(Protocol):
    """An application logger. In orchestrations it is replay-safe: a line logged before a
    crash or restore is not logged again when the orchestration replays."""

    def debug(self, msg: str, *args: Any) -> None: ...
    def info(self, msg: str, *args: Any) -> None: ...
    def warning(self, msg: str, *args: Any) -> None: ...
    def error(self, msg: str, *args: Any) -> None: ...


class _Configured(Protocol):
    @property
    def log(self) -> Logger: ...

    def config(self, cls: type[C]) -> C | None:
        """The configuration object of type ``cls``, or ``None`` if none was set."""
        ...


class ActivityContext(_Configured, Protocol):
    """Given to activities: logging, configuration, and which attempt this is."""

    @property
    def instance_id(self) -> str: ...
    @property
    def attempt(self) -> int: ...


class SubscriptionContext(_Configured, Protocol):
    """Given to event handlers: the instance's key, forks, logging and configuration."""

    @property
    def key(self) -> Any: ...

    def fork(self, op: Operation) -> None:
        """Start an orchestration, update or event that runs independently of this one."""
        ...


class ReadContext(SubscriptionContext, Protocol[S]):
    """Given to reads: the state instance (do not change it) and nested reads."""

    @property
    def state(self) -> S: ...

    def perform_read(self, read: Read[S, R]) -> R:
        """Run another read on this same instance, synchronously."""
        ...


class UpdateContext(ReadContext[S], Protocol[S]):
    """Given to updates: the state instance to change, nested reads and updates."""

    def perform_update(self, update: Update[S, R]) -> R:
        """Run another update on this same instance, synchronously."""
        ...


class OrchestrationContext(_Configured, Protocol):
    """Given to orchestrations. Every method is deterministic and replayed from history."""

    @property
    def instance_id(self) -> str: ...
    @property
    def is_replaying(self) -> bool: ...

    @overload
    def perform(self, op: Orchestration[R]) -> Future[R]: ...
    @overload
    def perform(self, op: Activity[R], *, retry: RetryPolicy | None = None) -> Future[R]: ...
    @overload
    def perform(self, op: Update[Any, R]) -> Future[R]: ...
    @overload
    def perform(self, op: Read[Any, R]) -> Future[R]: ...
    @overload
    def perform(self, op: Event) -> Future[None]: ...

    def fork(self, op: Operation) -> None:
        """Start an operation that runs independently; :meth:`finish` waits for it."""
        ...

    def schedule(self, delay: float, op: Operation) -> None:
        """Fork ``op`` after ``delay`` seconds (a durable timer, not a sleeping activity)."""
        ...

    def finish(self) -> Future[None]:
        """A future that resolves once every operation forked so far has completed."""
        ...

    def state_exists(self, state: type[State[Any]], key: Affinity) -> Future[bool]:
        """Whether the instance of ``state`` at ``key`` exists; the key must be locked."""
        ...

    def now(self) -> datetime:
        """The current UTC time, recorded so that a replay sees the same value."""
        ...

    def new_guid(self) -> UUID:
        """A fresh random-looking UUID, identical on every replay."""
        ...

    def new_random(self) -> random.Random:
        """A random generator seeded identically on every replay."""
        ...

    def sleep(self, seconds: float) -> Future[None]:
        """A durable timer: resolves after ``seconds``, across crashes and restarts."""
        ...

    def sleep_until(self, when: datetime) -> Future[None]: ...

    def wait_for_event(self, name: str) -> Future[Any]:
        """Resolves with the value of the next external event ``name`` raised by a client."""
        ...

    def set_custom_status(self, value: Any) -> None:
        """Publish a JSON value with the instance's status (progress, a stage name) for
        clients, ``reactive status`` and the dashboard; it replays like everything else."""
        ...

    def continue_as_new(self, op: Orchestration[Any]) -> NoReturn:
        """Restart this instance with new input and an empty history (for eternal loops)."""
        ...

    def all(self, *futures: Future[Any]) -> Future[list[Any]]:
        """Resolves with every result once all resolve; raises the first failure (in order)."""
        ...

    def any(self, *futures: Future[Any]) -> Future[Future[Any]]:
        """Resolves with the first of ``futures`` to resolve."""
        ...


class InitContext(OrchestrationContext, Protocol):
    """Given to state initializers: an orchestration context (activities, timers, forks,
    determinized values) that may not touch other states."""

    @property
    def key(self) -> Any: ...


__all__ = [
    "ActivityContext",
    "InitContext",
    "Logger",
    "OrchestrationContext",
    "ReadContext",
    "SubscriptionContext",
    "UpdateContext",
]
