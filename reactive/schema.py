"""The compiled application: what the core runs. :meth:`reactive.App.compile` builds it
from the registry's definitions; it never refers back to the registry.

The schema is a pure recipe: every process that builds it from the same code gets the same
operation names, the same subscriptions and the same placement.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from json.encoder import encode_basestring_ascii
from typing import Any

from pydantic import BaseModel, TypeAdapter

from reactive import errors
from reactive.model import Affinity, Event, Operation, Orchestration, Read, State, Update
from reactive.placement import place_text

BUILTIN_PREFIX = "reactive."
"""Wire names of the runtime's built-in operations start with this (no class name can)."""

_MISSING = object()
_IMMUTABLE = frozenset({int, str, bool, float})
_KEY_VALUES_KEPT = 1 << 16  # per affinity; beyond that the memory starts over

PKey = tuple[str, str]
"""A lock/placement key: (affinity name, canonical JSON of the key value)."""

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

    # key text -> key value, for values nobody can change in place (see key_value)
    _values: dict[str, Any] = field(default_factory=dict, init=False, repr=False,
                                    compare=False, hash=False)

    def pkey(self, obj: BaseModel) -> PKey:
        if self.key_field is None:
            return (self.name, "")
        value = getattr(obj, self.key_field)
        kind = type(value)
        # json.dumps spelled out for the common key types (it is called per operation):
        # the same text, without the encoder's Python-level dispatch
        if kind is int:
            return (self.name, int.__repr__(value))
        if kind is str:
            return (self.name, encode_basestring_ascii(value))
        if kind not in (bool, float):
            value = obj.model_dump(mode="json", include={self.key_field})[self.key_field]
        return (self.name, json.dumps(value))

    def key_object(self, pkey: PKey) -> Affinity:
        if self.key_field is None:
            return self.cls()
        return self.cls.model_validate({self.key_field: json.loads(pkey[1])})

    def key_value(self, pkey: PKey) -> Any:
        """The key field's value, as validating the key text gives it. Values of immutable
        types are remembered (each update and event handler asks), others are fresh each
        time, since the code that gets one may change it."""
        if self.key_field is None:
            return None
        values = self._values
        value = values.get(pkey[1], _MISSING)
        if value is _MISSING:
            value = getattr(self.key_object(pkey), self.key_field)
            if type(value) in _IMMUTABLE:
                if len(values) >= _KEY_VALUES_KEPT:
                    values.clear()
                values[pkey[1]] = value
        return value


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


@dataclass(frozen=True)
class Registered:
    """What a registry hands the compiler: every definition, already validated."""

    app_name: str
    keep_completed: int
    keep_early_events: int
    operations: Mapping[type[Operation], OperationInfo]
    states: Mapping[type[State[Any]], StateInfo]
    affinities: Sequence[AffinityInfo]
    configs: Mapping[type, object]
    startup: Sequence[Orchestration[Any]]
    exceptions: Mapping[str, type[BaseException]]


class Schema:
    """The compiled application: lookups by class and by wire name, keys and placement."""

    def __init__(self, parts: Registered) -> None:
        self.app_name = parts.app_name
        self.keep_completed = parts.keep_completed
        self.keep_early_events = parts.keep_early_events
        self.operations: dict[type[Operation], OperationInfo] = dict(parts.operations)
        self.by_name: dict[str, OperationInfo] = {i.name: i for i in self.operations.values()}
        self.states: dict[type[State[Any]], StateInfo] = dict(parts.states)
        self.states_by_name = {i.name: i for i in self.states.values()}
        self.affinities_by_name = {i.name: i for i in parts.affinities}
        self.configs = dict(parts.configs)
        self.startup: tuple[Orchestration[Any], ...] = tuple(parts.startup)
        self.exceptions: dict[str, type[BaseException]] = {
            name: obj
            for name, obj in vars(builtins).items()
            if isinstance(obj, type) and issubclass(obj, Exception)
        }
        self.exceptions.update(
            {name: getattr(errors, name) for name in errors.__all__}
        )
        self.exceptions.update(parts.exceptions)
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


__all__ = [
    "BUILTIN_PREFIX",
    "AffinityInfo",
    "Kind",
    "OperationInfo",
    "PKey",
    "Registered",
    "Schema",
    "StateInfo",
]
