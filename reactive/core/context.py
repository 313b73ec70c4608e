"""The contexts handed to application code: what each kind of operation may do."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, overload
from uuid import UUID

from reactive.core.futures import AllFuture, AnyFuture, Future
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

if TYPE_CHECKING:
    from reactive.app import Schema
    from reactive.core.orchestration import Run
    from reactive.core.partition import Partition

R = TypeVar("R")
S = TypeVar("S", bound=State[Any])
C = TypeVar("C")

LogSink = Callable[[int, str], None]


class Logger:
    """An application logger. In orchestrations it is replay-safe: a line logged before a
    crash or restore is not logged again when the orchestration replays."""

    __slots__ = ("_sink",)

    def __init__(self, sink: LogSink) -> None:
        self._sink = sink

    def _log(self, level: int, msg: str, args: tuple[Any, ...]) -> None:
        self._sink(level, msg % args if args else msg)

    def debug(self, msg: str, *args: Any) -> None:
        self._log(logging.DEBUG, msg, args)

    def info(self, msg: str, *args: Any) -> None:
        self._log(logging.INFO, msg, args)

    def warning(self, msg: str, *args: Any) -> None:
        self._log(logging.WARNING, msg, args)

    def error(self, msg: str, *args: Any) -> None:
        self._log(logging.ERROR, msg, args)


class _BaseContext:
    __slots__ = ("_schema", "log")

    def __init__(self, schema: Schema, log: Logger) -> None:
        self._schema = schema
        self.log = log

    def config(self, cls: type[C]) -> C | None:
        """The configuration object of type ``cls``, or ``None`` if none was set."""
        value: C | None = self._schema.config(cls)
        return value


class ActivityContext(_BaseContext):
    """Given to activities: logging, configuration, and which attempt this is."""

    __slots__ = ("attempt", "instance_id")

    def __init__(self, schema: Schema, log: Logger, instance_id: str, attempt: int) -> None:
        super().__init__(schema, log)
        self.instance_id = instance_id
        self.attempt = attempt


class _StateContext(_BaseContext):
    __slots__ = ("_forks", "_origin", "_partition", "key")

    def __init__(self, partition: Partition, origin: str, key: Any) -> None:
        super().__init__(partition.schema, Logger(partition.app_log))
        self._partition = partition
        self._origin = origin
        self._forks = 0
        self.key = key

    def fork(self, op: Operation) -> None:
        """Start an orchestration, update or event that runs independently of this one."""
        self._forks += 1
        self._partition.fork_detached(f"{self._origin}.{self._forks}", op)


class ReadContext(_StateContext, Generic[S]):
    """Given to reads: the state instance (do not change it) and nested reads."""

    __slots__ = ("state",)

    def __init__(self, partition: Partition, origin: str, key: Any, state: S) -> None:
        super().__init__(partition, origin, key)
        self.state = state

    def perform_read(self, read: Read[S, R]) -> R:
        """Run another read on this same instance, synchronously."""
        return read.execute(ReadContext(self._partition, self._origin, self.key, self.state))


class UpdateContext(ReadContext[S]):
    """Given to updates: the state instance to change, nested reads and updates."""

    __slots__ = ()

    def perform_update(self, update: Update[S, R]) -> R:
        """Run another update on this same instance, synchronously."""
        return update.execute(UpdateContext(self._partition, self._origin, self.key, self.state))


class SubscriptionContext(_StateContext):
    """Given to event handlers: the instance's key, forks, logging and configuration."""

    __slots__ = ()


class OrchestrationContext:
    """Given to orchestrations. Every method is deterministic and replayed from history."""

    __slots__ = ("_run", "log")

    def __init__(self, run: Run) -> None:
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
        value: C | None = self._run.partition.schema.config(cls)
        return value

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

    def new_guid(self) -> UUID:
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

    def __init__(self, run: Run, key: Any) -> None:
        super().__init__(run)
        self.key = key


__all__ = [
    "ActivityContext",
    "InitContext",
    "Logger",
    "OrchestrationContext",
    "ReadContext",
    "SubscriptionContext",
    "UpdateContext",
]
