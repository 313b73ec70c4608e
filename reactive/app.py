"""The application registry: collects and validates definitions, then compiles a schema.

The compiled :class:`Schema` is a pure recipe: every process that builds it from the same
code gets the same operation names, the same subscriptions and the same placement.
"""

from __future__ import annotations

import builtins
import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, TypeVar

from pydantic import BaseModel, TypeAdapter, ValidationError

from reactive import errors
from reactive.core.placement import place_text
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

BUILTIN_PREFIX = "reactive."
"""Wire names of the runtime's built-in operations start with this (no class name can)."""

PKey = tuple[str, str]
"""A lock/placement key: (affinity name, canonical JSON of the key value)."""

T = TypeVar("T", bound=type)


class Kind(Enum):
    ORCHESTRATION = "orchestration"
    ACTIVITY = "activity"
    UPDATE = "update"
    READ = "read"
    EVENT = "event"


@dataclass(frozen=True)
class AffinityInfo:
    name: str
    cls: type[Affinity]
    key_field: str | None  # None for singletons
    pin: int | None
    round_robin: bool

    def pkey(self, obj: BaseModel) -> PKey:
        if self.key_field is None:
            return (self.name, "")
        value = getattr(obj, self.key_field)
        if type(value) not in (str, int, bool, float):
            value = obj.model_dump(mode="json", include={self.key_field})[self.key_field]
        return (self.name, json.dumps(value))

    def key_object(self, pkey: PKey) -> Affinity:
        if self.key_field is None:
            return self.cls()
        return self.cls.model_validate({self.key_field: json.loads(pkey[1])})

    def key_value(self, pkey: PKey) -> Any:
        if self.key_field is None:
            return None
        return getattr(self.key_object(pkey), self.key_field)


@dataclass
class StateInfo:
    name: str
    cls: type[State[Any]]
    affinity: AffinityInfo
    handlers: dict[type[Event], list[Callable[..., None]]] = field(default_factory=dict)
    has_initializer: bool = False


@dataclass(frozen=True)
class OperationInfo:
    name: str
    cls: type[Operation]
    kind: Kind
    result: TypeAdapter[Any]
    affinities: tuple[AffinityInfo, ...]  # inherited affinity classes
    lock: bool = False
    create: bool = False
    read_only: bool = False
    state: StateInfo | None = None


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
            self._schema = Schema(self)
        return self._schema

    # -- internals ------------------------------------------------------------------------

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


class Schema:
    """The compiled application: lookups by class and by wire name, keys and placement."""

    def __init__(self, app: App) -> None:
        from reactive.core import builtin_ops

        # the runtime's own operations compile in a registry of their own, under names no
        # class can have: the user's App is left as it was, and may use the same names
        runtime = App(BUILTIN_PREFIX.rstrip("."))
        builtin_infos: dict[type[Operation], OperationInfo] = {
            cls: replace(runtime._operation_info(cls), name=BUILTIN_PREFIX + cls.__name__)
            for cls in builtin_ops.BUILTINS
        }
        self.app_name = app.name
        self.keep_completed = app.keep_completed
        self.keep_early_events = app.keep_early_events
        self.operations: dict[type[Operation], OperationInfo] = {
            **app._operations, **builtin_infos
        }
        self.by_name: dict[str, OperationInfo] = {i.name: i for i in self.operations.values()}
        self.states: dict[type[State[Any]], StateInfo] = dict(app._states)
        self.states_by_name = {i.name: i for i in self.states.values()}
        self.affinities_by_name = {i.name: i for i in app._affinities.values()}
        self.configs = dict(app._configs)
        self.startup: tuple[Orchestration[Any], ...] = tuple(app._startup)
        self.exceptions: dict[str, type[BaseException]] = {
            name: obj
            for name, obj in vars(builtins).items()
            if isinstance(obj, type) and issubclass(obj, Exception)
        }
        self.exceptions.update(
            {name: getattr(errors, name) for name in errors.__all__}
        )
        self.exceptions.update(app._exceptions)
        self.subscribers: dict[type[Event], list[StateInfo]] = {}
        for state in self.states.values():
            for event in state.handlers:
                self.subscribers.setdefault(event, []).append(state)

    # -- lookups ------------------------------------------------------------------------

    def info(self, op: Operation | type[Operation]) -> OperationInfo:
        cls = op if isinstance(op, type) else type(op)
        info = self.operations.get(cls)
        if info is None:
            raise errors.UnknownOperationError(
                f"{cls.__name__} is not registered with application {self.app_name!r}; "
                f"add it with app.register({cls.__name__})"
            )
        return info

    def encode_op(self, op: Operation) -> tuple[str, dict[str, Any]]:
        return (self.info(op).name, op.model_dump(mode="json"))

    def decode_op(self, wire: Sequence[Any]) -> Operation:
        name, data = wire[0], wire[1]
        info = self.by_name.get(name)
        if info is None:  # a built-in as named before built-ins had a prefix
            info = self.by_name.get(BUILTIN_PREFIX + name)
        if info is None:
            raise errors.UnknownOperationError(
                f"application {self.app_name!r} defines no operation named {name!r}"
            )
        return info.cls.model_validate(data)

    # -- keys ---------------------------------------------------------------------------

    def keys_for(self, op: Operation, affinity: AffinityInfo) -> list[PKey]:
        keys = []
        if isinstance(op, affinity.cls):
            keys.append(affinity.pkey(op))
        for declared in op.affinities():
            if type(declared) is affinity.cls:
                keys.append(affinity.pkey(declared))
        return keys

    def lock_keys(self, op: Operation) -> tuple[PKey, ...]:
        """Every key an operation names, sorted and de-duplicated (a fixed global lock order
        rules out deadlock between lock holders)."""
        keys: set[PKey] = set()
        info = self.info(op)
        for affinity in info.affinities:
            keys.add(affinity.pkey(op))
        for declared in op.affinities():
            declared_info = self.affinities_by_name.get(type(declared).__name__)
            if declared_info is None or declared_info.cls is not type(declared):
                raise errors.DefinitionError(
                    f"{info.name}.affinities() returned a {type(declared).__name__}, "
                    f"which is not a registered affinity: app.register({type(declared).__name__})"
                )
            keys.add(declared_info.pkey(declared))
        return tuple(sorted(keys))

    def event_effects(self, event: Event) -> dict[PKey, list[StateInfo]]:
        """The subscribing states an event touches, grouped by key, keys sorted."""
        effects: dict[PKey, list[StateInfo]] = {}
        for state in self.subscribers.get(type(event), ()):
            for pkey in self.keys_for(event, state.affinity):
                bucket = effects.setdefault(pkey, [])
                if state not in bucket:
                    bucket.append(state)
        return dict(sorted(effects.items()))

    def state_key(self, op: Update[Any, Any] | Read[Any, Any]) -> PKey:
        info = self.info(op)
        assert info.state is not None
        return info.state.affinity.pkey(op)

    # -- placement ----------------------------------------------------------------------

    def owner(self, pkey: PKey, partitions: int) -> int:
        affinity = self.affinities_by_name[pkey[0]]
        if affinity.pin is not None:
            return affinity.pin % partitions
        if affinity.key_field is None:
            return 0
        if affinity.round_robin:
            value = json.loads(pkey[1])
            if isinstance(value, int):
                return value % partitions
        return place_text(f"{pkey[0]}\x00{pkey[1]}", partitions)

    @staticmethod
    def instance_owner(instance_id: str, partitions: int) -> int:
        return place_text(instance_id, partitions)

    def startup_instances(self) -> list[tuple[str, Orchestration[Any]]]:
        """The instance ids and objects of the startup orchestrations."""
        return [(f"startup-{i}-{type(op).__name__}", op) for i, op in enumerate(self.startup)]

    def config(self, cls: type[Any]) -> Any:
        return self.configs.get(cls)


__all__ = ["App", "Kind", "OperationInfo", "PKey", "Schema", "StateInfo"]
