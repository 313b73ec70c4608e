"""The contexts orchestration code and state initializers get: every method is
deterministic and replayed from the run's history (the run does the work; a context is the
public face of it, :class:`reactive.context.OrchestrationContext` its Protocol)."""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any, NoReturn, Protocol, TypeVar

from reactive.core.context import Logger
from reactive.core.futures import AllFuture, AnyFuture
from reactive.futures import Future
from reactive.model import Affinity, Operation, Orchestration, RetryPolicy, State
from reactive.schema import Schema

C = TypeVar("C")


class RunOps(Protocol):
    """What a context needs from the run it belongs to."""

    @property
    def instance_id(self) -> str: ...
    @property
    def schema(self) -> Schema: ...
    def is_replaying(self) -> bool: ...
    def log_line(self, level: int, text: str) -> None: ...
    def perform(self, op: Operation, retry: RetryPolicy | None) -> Future[Any]: ...
    def fork(self, op: Operation) -> None: ...
    def schedule(self, delay: float, op: Operation) -> None: ...
    def finish(self) -> Future[None]: ...
    def state_exists(self, state: type[State[Any]], key: Affinity) -> Future[bool]: ...
    def now(self) -> datetime: ...
    def new_guid(self) -> uuid.UUID: ...
    def new_random(self) -> random.Random: ...
    def sleep(self, seconds: float) -> Future[None]: ...
    def sleep_until(self, when: datetime) -> Future[None]: ...
    def wait_for_event(self, name: str) -> Future[Any]: ...
    def set_custom_status(self, value: Any) -> None: ...
    def continue_as_new(self, op: Orchestration[Any]) -> NoReturn: ...


class OrchestrationContext:
    """Given to orchestrations. Every method is deterministic and replayed from history."""

    __slots__ = ("_run", "log")

    def __init__(self, run: RunOps) -> None:
        self._run = run
        self.log = Logger(run.log_line)

    @property
    def instance_id(self) -> str:
        return self._run.instance_id

    @property
    def is_replaying(self) -> bool:
        return self._run.is_replaying()

    def config(self, cls: type[C]) -> C | None:
        """The configuration object of type ``cls``, or ``None`` if none was set."""
        value: C | None = self._run.schema.config(cls)
        return value

    def perform(self, op: Operation, *, retry: RetryPolicy | None = None) -> Future[Any]:
        """Start an operation and return a future for its result (await it, now or later)."""
        return self._run.perform(op, retry)

    def fork(self, op: Operation) -> None:
        """Start an operation that runs independently; :meth:`finish` waits for it."""
        self._run.fork(op)

    def schedule(self, delay: float, op: Operation) -> None:
        """Fork ``op`` after ``delay`` seconds (a durable timer, not a sleeping activity)."""
        self._run.schedule(delay, op)

    def finish(self) -> Future[None]:
        """A future that resolves once every operation forked so far has completed."""
        return self._run.finish()

    def state_exists(self, state: type[State[Any]], key: Affinity) -> Future[bool]:
        """Whether the instance of ``state`` at ``key`` exists; the key must be locked."""
        return self._run.state_exists(state, key)

    def now(self) -> datetime:
        """The current UTC time, recorded so that a replay sees the same value."""
        return self._run.now()

    def new_guid(self) -> uuid.UUID:
        """A fresh random-looking UUID, identical on every replay."""
        return self._run.new_guid()

    def new_random(self) -> random.Random:
        """A random generator seeded identically on every replay."""
        return self._run.new_random()

    def sleep(self, seconds: float) -> Future[None]:
        """A durable timer: resolves after ``seconds``, across crashes and restarts."""
        return self._run.sleep(seconds)

    def sleep_until(self, when: datetime) -> Future[None]:
        return self._run.sleep_until(when)

    def wait_for_event(self, name: str) -> Future[Any]:
        """Resolves with the value of the next external event ``name`` raised by a client."""
        return self._run.wait_for_event(name)

    def set_custom_status(self, value: Any) -> None:
        """Publish a JSON value with the instance's status (progress, a stage name) for
        clients, ``reactive status`` and the dashboard; it replays like everything else."""
        self._run.set_custom_status(value)

    def continue_as_new(self, op: Orchestration[Any]) -> NoReturn:
        """Restart this instance with new input and an empty history (for eternal loops)."""
        self._run.continue_as_new(op)

    def all(self, *futures: Future[Any]) -> Future[list[Any]]:
        """Resolves with every result once all resolve; raises the first failure (in order)."""
        return AllFuture(self._run, futures)

    def any(self, *futures: Future[Any]) -> Future[Future[Any]]:
        """Resolves with the first of ``futures`` to resolve."""
        return AnyFuture(self._run, futures)


class InitContext(OrchestrationContext):
    """Given to state initializers: an orchestration context (activities, timers, forks,
    determinized values) that may not touch other states."""

    __slots__ = ("key",)

    def __init__(self, run: RunOps, key: Any) -> None:
        super().__init__(run)
        self.key = key
