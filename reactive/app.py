"""The application registry: collects and validates definitions, then compiles them into
a :class:`~reactive.schema.Schema` (the registry sits above the core; the core never
imports it)."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from reactive import errors
from reactive.core.builtin_ops import BUILTINS
from reactive.model import (
    SUBSCRIPTION_ATTR,
    Activity,
    Affinity,
    Event,
    Operation,
    Orchestration,
    Read,
    SingletonAffinity,
    State,
    Update,
)
from reactive.schema import (
    BUILTIN_PREFIX,
    AffinityInfo,
    Kind,
    OperationInfo,
    Registered,
    Schema,
    StateInfo,
)

T = TypeVar("T", bound=type)


def _generic_args(cls: type, origin: type) -> tuple[Any, ...] | None:
    for base in cls.__mro__:
        meta = getattr(base, "__pydantic_generic_metadata__", None)
        if meta and meta.get("origin") is origin:
            return tuple(meta["args"])
    return None


def _inherited_affinities(cls: type) -> list[type[Affinity]]:
    found = []
    for base in cls.__mro__:
        if (
            isinstance(base, type)
            and issubclass(base, Affinity)
            and base not in (Affinity, SingletonAffinity)
            and not issubclass(base, (Operation, State))
        ):
            found.append(base)
    return found


def _overrides_affinities(cls: type[Operation]) -> bool:
    return cls.affinities is not Operation.affinities


class App:
    """An application: its operations, states, events, configuration and startup work.

    Register classes with :meth:`register` (also usable as a class decorator); registering
    a state registers its affinity and subscribed events, registering an update or read
    registers its state.
    """

    def __init__(
        self, name: str, keep_completed: int = 10_000, keep_early_events: int = 1_000
    ) -> None:
        """``keep_completed``: how many finished top-level instances each partition keeps
        for status queries and idempotent starts; the oldest are forgotten first, so that
        snapshots do not grow without bound. ``keep_early_events``: how many external
        events raised to instances that have not started (yet) each partition keeps for
        them; beyond it the oldest are dropped and reported as unhandled errors."""
        for option, value in (
            ("keep_completed", keep_completed), ("keep_early_events", keep_early_events)
        ):
            if value < 0:
                raise errors.DefinitionError(f"{option} must be >= 0, got {value}")
        self.name = name
        self.keep_completed = keep_completed
        self.keep_early_events = keep_early_events
        self._affinities: dict[type[Affinity], AffinityInfo] = {}
        self._states: dict[type[State[Any]], StateInfo] = {}
        self._operations: dict[type[Operation], OperationInfo] = {}
        self._names: dict[str, type] = {}
        self._exceptions: dict[str, type[BaseException]] = {}
        self._configs: dict[type, object] = {}
        self._startup: list[Orchestration[Any]] = []
        self._schema: Schema | None = None

    # -- registration -------------------------------------------------------------------

    def register(self, *classes: T) -> T:
        """Register operation, state, event or exception classes; returns the first one so
        that it can decorate a class."""
        if not classes:
            raise errors.DefinitionError("register() needs at least one class")
        for cls in classes:
            self._register_one(cls)
        self._schema = None
        return classes[0]

    def register_exception(self, cls: type[BaseException]) -> type[BaseException]:
        """Let exceptions of this type reach remote callers with their type."""
        self._claim_name(cls.__name__, cls)
        self._exceptions[cls.__name__] = cls
        return cls

    def configure(self, *configs: object) -> None:
        """Set configuration objects, one per type; contexts read them with ``config(T)``."""
        for config in configs:
            self._configs[type(config)] = config
        self._schema = None

    def on_first_start(self, orchestration: Orchestration[Any]) -> None:
        """Start this orchestration once, when the application first starts."""
        self.register(type(orchestration))
        self._startup.append(orchestration)
        self._schema = None

    def compile(self) -> Schema:
        if self._schema is None:
            self._schema = Schema(self._registered())
        return self._schema

    # -- internals ------------------------------------------------------------------------

    def _registered(self) -> Registered:
        # the runtime's own operations compile in a registry of their own, under names no
        # class can have: the user's App is left as it was, and may use the same names
        runtime = App(BUILTIN_PREFIX.rstrip("."))
        builtin_infos: dict[type[Operation], OperationInfo] = {
            cls: replace(runtime._operation_info(cls), name=BUILTIN_PREFIX + cls.__name__)
            for cls in BUILTINS
        }
        return Registered(
            app_name=self.name,
            keep_completed=self.keep_completed,
            keep_early_events=self.keep_early_events,
            operations={**self._operations, **builtin_infos},
            states=self._states,
            affinities=tuple(self._affinities.values()),
            configs=self._configs,
            startup=self._startup,
            exceptions=self._exceptions,
        )

    def _claim_name(self, name: str, cls: type) -> None:
        other = self._names.get(name)
        if other is not None and other is not cls:
            raise errors.DefinitionError(
                f"two classes are named {name!r} ({other.__module__} and {cls.__module__}); "
                "names identify operations on the wire and must be unique"
            )
        self._names[name] = cls

    def _register_one(self, cls: type) -> None:
        if not isinstance(cls, type):
            raise errors.DefinitionError(f"register() takes classes, got {cls!r}")
        if issubclass(cls, BaseException):
            self.register_exception(cls)
        elif issubclass(cls, State):
            self._state_info(cls)
        elif issubclass(cls, Operation):
            self._operation_info(cls)
        elif issubclass(cls, Affinity):
            self._affinity_info(cls)
        else:
            raise errors.DefinitionError(
                f"{cls.__name__} is not an Orchestration, Activity, Update, Read, Event, "
                "State, Affinity or exception class"
            )

    def _affinity_info(self, cls: type[Affinity]) -> AffinityInfo:
        info = self._affinities.get(cls)
        if info is not None:
            return info
        fields = list(cls.model_fields)
        singleton = issubclass(cls, SingletonAffinity)
        if singleton and fields:
            raise errors.DefinitionError(
                f"singleton affinity {cls.__name__} must not declare fields, found {fields}"
            )
        if not singleton and len(fields) != 1:
            raise errors.DefinitionError(
                f"partitioned affinity {cls.__name__} must declare exactly one key field, "
                f"found {len(fields)}: {fields}"
            )
        self._claim_name(cls.__name__, cls)
        info = AffinityInfo(
            name=cls.__name__,
            cls=cls,
            key_field=None if singleton else fields[0],
            pin=cls.__reactive_partition__,
            round_robin=cls.__reactive_round_robin__,
        )
        self._affinities[cls] = info
        return info

    def _state_info(self, cls: type[State[Any]]) -> StateInfo:
        info = self._states.get(cls)
        if info is not None:
            return info
        args = _generic_args(cls, State)
        if not args or not (isinstance(args[0], type) and issubclass(args[0], Affinity)):
            raise errors.DefinitionError(
                f"state {cls.__name__} must name its affinity, "
                f"e.g. class {cls.__name__}(State[MyKey])"
            )
        try:
            initial = cls()
        except ValidationError as exc:
            raise errors.DefinitionError(
                f"state {cls.__name__} needs a default for every field: {exc.errors()[0]['loc']}"
            ) from None
        try:  # the initial value must survive a snapshot like every later one
            cls.model_validate(initial.model_dump(mode="json", warnings=False))
        except Exception as exc:
            raise errors.DefinitionError(
                f"state {cls.__name__} has a default that does not fit its field's type: {exc}"
            ) from None
        self._claim_name(cls.__name__, cls)
        info = StateInfo(
            name=cls.__name__,
            cls=cls,
            affinity=self._affinity_info(args[0]),
            has_initializer=cls.initialize is not State.initialize,
        )
        self._states[cls] = info
        for _, member in inspect.getmembers(cls, inspect.isfunction):
            event = getattr(member, SUBSCRIPTION_ATTR, None)
            if event is None:
                continue
            self._operation_info(event)
            if not issubclass(event, info.affinity.cls) and not _overrides_affinities(event):
                raise errors.DefinitionError(
                    f"{cls.__name__} subscribes to {event.__name__}, but {event.__name__} "
                    f"neither inherits {info.affinity.name} nor names keys in affinities()"
                )
            info.handlers.setdefault(event, []).append(member)
        return info

    def _operation_info(self, cls: type[Operation]) -> OperationInfo:
        info = self._operations.get(cls)
        if info is not None:
            return info
        affinities = tuple(self._affinity_info(a) for a in _inherited_affinities(cls))
        state: StateInfo | None = None
        result: Any = Any
        lock = create = read_only = False
        if issubclass(cls, Orchestration):
            kind = Kind.ORCHESTRATION
            args = _generic_args(cls, Orchestration)
            result = args[0] if args else Any
            lock = cls.__reactive_lock__
            read_only = cls.__reactive_read_only__
        elif issubclass(cls, Activity):
            kind = Kind.ACTIVITY
            args = _generic_args(cls, Activity)
            result = args[0] if args else Any
            lock = cls.__reactive_lock__
        elif issubclass(cls, Update | Read):
            kind = Kind.UPDATE if issubclass(cls, Update) else Kind.READ
            origin: type = Update if kind is Kind.UPDATE else Read
            args = _generic_args(cls, origin)
            if not args or not (isinstance(args[0], type) and issubclass(args[0], State)):
                raise errors.DefinitionError(
                    f"{kind.value} {cls.__name__} must name its state and result, "
                    f"e.g. {origin.__name__}[MyState, int]"
                )
            state = self._state_info(args[0])
            result = args[1]
            if not issubclass(cls, state.affinity.cls):
                raise errors.DefinitionError(
                    f"{kind.value} {cls.__name__} must inherit {state.affinity.name}, "
                    f"the affinity of state {state.name}"
                )
            create = kind is Kind.UPDATE and cls.__reactive_create__
        elif issubclass(cls, Event):
            kind = Kind.EVENT
            result = type(None)
        else:
            raise errors.DefinitionError(f"{cls.__name__} is not an operation class")
        if lock and not affinities and not _overrides_affinities(cls):
            raise errors.DefinitionError(
                f"{cls.__name__} is declared lock=True but has no affinity to lock: inherit "
                "an affinity or override affinities()"
            )
        if issubclass(cls, Orchestration) and cls.__reactive_startup__:
            try:
                self._startup.append(cls())
            except ValidationError as exc:
                raise errors.DefinitionError(
                    f"startup orchestration {cls.__name__} needs a default for every field: "
                    f"{exc.errors()[0]['loc']}"
                ) from None
        self._claim_name(cls.__name__, cls)
        info = OperationInfo(
            name=cls.__name__,
            cls=cls,
            kind=kind,
            result=TypeAdapter(result),
            affinities=affinities,
            lock=lock,
            create=create,
            read_only=read_only,
            state=state,
        )
        self._operations[cls] = info
        return info


__all__ = ["App"]
