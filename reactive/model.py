"""The programming model: the base classes an application's operations and states derive from.

Every operation is a pydantic model: the object *is* the request, its fields are its inputs,
and it is serialized whenever it crosses a partition. Class-level options are passed as class
keyword arguments, e.g. ``class Transfer(Orchestration[bool], lock=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from reactive.context import (
        ActivityContext,
        InitContext,
        OrchestrationContext,
        ReadContext,
        UpdateContext,
    )

R = TypeVar("R")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=False)


class Affinity(_Model):
    """A placement key. A partitioned affinity declares exactly one field: the key.

    Options: ``partition=k`` pins every key of this affinity to partition ``k``;
    ``round_robin=True`` places integer keys at ``key % partitions`` instead of hashing.
    """

    __reactive_partition__: ClassVar[int | None] = None
    __reactive_round_robin__: ClassVar[bool] = False

    def __init_subclass__(
        cls, partition: int | None = None, round_robin: bool = False, **kwargs: Any
    ) -> None:
        super().__init_subclass__(**kwargs)
        if partition is not None:
            cls.__reactive_partition__ = partition
        if round_robin:
            cls.__reactive_round_robin__ = True


# type variables are bound to classes defined above them: the pydantic mypy plugin cannot
# defer forward references in bounds
K = TypeVar("K", bound=Affinity)


class SingletonAffinity(Affinity):
    """An affinity with no key: one instance, placed on partition 0 unless pinned elsewhere."""


class Operation(_Model):
    """Common base of orchestrations, activities, updates, reads and events."""

    def affinities(self) -> Sequence[Affinity]:
        """Further keys this operation touches, beyond the affinities its class inherits.

        Override to name several keys, e.g. the two accounts of a transfer.
        """
        return ()


class Orchestration(Operation, Generic[R]):
    """A deterministic async workflow. Options: ``lock=True`` holds every key of the
    orchestration's affinities for its whole body; ``startup=True`` starts one instance
    (built from field defaults) when the application first starts."""

    __reactive_lock__: ClassVar[bool] = False
    __reactive_startup__: ClassVar[bool] = False
    __reactive_read_only__: ClassVar[bool] = False

    def __init_subclass__(cls, lock: bool = False, startup: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if lock:
            cls.__reactive_lock__ = True
        if startup:
            cls.__reactive_startup__ = True

    async def execute(self, ctx: OrchestrationContext) -> R:
        raise NotImplementedError(f"{type(self).__name__}.execute is not defined")


class ReadOrchestration(Orchestration[R]):
    """An orchestration that may only perform reads and other read orchestrations."""

    __reactive_read_only__: ClassVar[bool] = True


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failed activity is retried (delays in seconds)."""

    max_attempts: int = 3
    first_delay: float = 1.0
    backoff: float = 2.0
    max_delay: float = 300.0

    def delay_before(self, attempt: int) -> float:
        """Delay before attempt number ``attempt`` (2 is the first retry)."""
        return min(self.max_delay, self.first_delay * self.backoff ** max(0, attempt - 2))


class Activity(Operation, Generic[R]):
    """A side effect, run at least once, off the deterministic state machine.

    ``execute`` may be a plain or an ``async`` method. Class attributes: ``time_limit``
    (seconds, ``None`` for no limit) and ``retry`` (a :class:`RetryPolicy` or ``None``).
    """

    time_limit: ClassVar[float | None] = None
    retry: ClassVar[RetryPolicy | None] = None
    __reactive_lock__: ClassVar[bool] = False

    def __init_subclass__(cls, lock: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if lock:
            cls.__reactive_lock__ = True

    def execute(self, ctx: ActivityContext) -> Any:
        raise NotImplementedError(f"{type(self).__name__}.execute is not defined")


class State(_Model, Generic[K]):
    """A keyed state: one instance per key of affinity ``K``, created lazily.

    Field defaults are the initial value. Define ``async def initialize(self, ctx, key)``
    to run an initializer when an instance is created. Subscribe to events with
    :func:`subscribe`.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=False)

    async def initialize(self, ctx: InitContext, key: Any) -> None:
        """Runs once when the instance is created; the triggering operation waits for it."""


S = TypeVar("S", bound=State[Any])


class Update(Operation, Generic[S, R]):
    """A synchronous, atomic change of one state instance. ``create=True`` creates the
    instance if it is missing."""

    __reactive_create__: ClassVar[bool] = False

    def __init_subclass__(cls, create: bool = False, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if create:
            cls.__reactive_create__ = True

    def execute(self, ctx: UpdateContext[S]) -> R:
        raise NotImplementedError(f"{type(self).__name__}.execute is not defined")


class Read(Operation, Generic[S, R]):
    """A synchronous read of one state instance."""

    def execute(self, ctx: ReadContext[S]) -> R:
        raise NotImplementedError(f"{type(self).__name__}.execute is not defined")


class Event(Operation):
    """Applied atomically to every subscribing state instance selected by its keys."""


SUBSCRIPTION_ATTR = "__reactive_subscribes__"

F = TypeVar("F", bound=Callable[..., None])


def subscribe(event: type[Event]) -> Callable[[F], F]:
    """Mark a state method ``(self, ctx: SubscriptionContext, event) -> None`` as the
    handler of ``event``."""

    def mark(fn: F) -> F:
        setattr(fn, SUBSCRIPTION_ATTR, event)
        return fn

    return mark


__all__ = [
    "Activity",
    "Affinity",
    "Event",
    "Operation",
    "Orchestration",
    "Read",
    "ReadOrchestration",
    "RetryPolicy",
    "SingletonAffinity",
    "State",
    "Update",
    "subscribe",
]
