"""The runtime's implementations of the contexts handed to activities, reads, updates and
event handlers (the orchestration contexts are in :mod:`reactive.core.orchestration_context`);
the public types are the Protocols in :mod:`reactive.context`, which user code annotates
with."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from reactive.model import (
    Operation,
    Read,
    State,
    Update,
)
from reactive.schema import Schema


class StateSite(Protocol):
    """What the state contexts need from their partition."""

    schema: Schema

    def app_log(self, level: int, text: str) -> None: ...
    def fork_detached(self, op_id: str, op: Operation) -> None: ...


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

    def __init__(self, partition: StateSite, origin: str, key: Any) -> None:
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

    def __init__(self, partition: StateSite, origin: str, key: Any, state: S) -> None:
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


__all__ = [
    "ActivityContext",
    "Logger",
    "ReadContext",
    "SubscriptionContext",
    "UpdateContext",
]
