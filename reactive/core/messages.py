"""Messages between partitions, and their wire form (plain JSON data, never pickles).

Every message names its destination partition. Operation objects travel as
``[name, fields]`` and are looked up in the application's registry when decoded.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from reactive import errors
from reactive.model import Event, Operation

if TYPE_CHECKING:
    from reactive.schema import PKey, Schema

class Reply(NamedTuple):
    """Where a result goes (on the wire: ``[partition, instance_id, call, fork]``)."""

    partition: int  # -1: nobody (a detached fork)
    instance_id: str
    call: int
    fork: bool  # the caller forked: it hears only that the operation ended


@dataclass(slots=True)
class Start:
    """Start an orchestration instance (idempotent per instance id)."""

    dest: int
    instance_id: str
    op: Operation
    reply: Reply | None = None
    lock_keys: tuple[PKey, ...] | None = None  # set when the caller already holds them
    holder: str | None = None  # then: the id of the lock the caller holds


@dataclass(slots=True)
class Response:
    """The result of an orchestration's call: ``value`` is the wire form of the result, or
    of the error when ``ok`` is false."""

    dest: int
    instance_id: str
    call: int
    ok: bool
    value: Any = None


@dataclass(slots=True)
class LocalOp:
    """A read or update, executed at the owner of ``key`` under the key's lock."""

    dest: int
    op_id: str
    op: Operation
    key: PKey
    reply: Reply | None = None
    locked: bool = False  # the caller holds the key: bypass the queue
    holder: str | None = None  # the id of the lock the caller holds


@dataclass(slots=True)
class Exists:
    dest: int
    state: str
    key: PKey
    reply: Reply
    holder: str | None = None


@dataclass(slots=True)
class Acquire:
    """Walks the sorted key list, holding each key; then grants a lock or commits an event."""

    dest: int
    lock_id: str
    keys: tuple[PKey, ...]
    position: int
    reply: Reply | None = None
    event: Event | None = None


@dataclass(slots=True)
class Granted:
    dest: int
    instance_id: str
    call: int
    lock_id: str
    keys: tuple[PKey, ...]


@dataclass(slots=True)
class Release:
    dest: int
    lock_id: str
    keys: tuple[PKey, ...]


@dataclass(slots=True)
class Commit:
    """Apply an event to the subscribing states of ``keys`` (all owned by ``dest``)."""

    dest: int
    lock_id: str
    event: Event
    keys: tuple[PKey, ...]
    locked: bool = False  # applied inside the caller's lock: no queue entry to release
    holder: str | None = None  # then: the id of that lock
    # set for an event performed inside a critical section: ``keys`` may span owners; each
    # applies its own and passes the rest on, the last one answers ``reply``
    reply: Reply | None = None


@dataclass(slots=True)
class ActivityResult:
    dest: int
    instance_id: str
    call: int
    attempt: int
    ok: bool
    value: Any = None


@dataclass(slots=True)
class Tick:
    """Fire the timers that are due (the host stamps the time)."""

    dest: int


@dataclass(slots=True)
class RaiseEvent:
    dest: int
    instance_id: str
    name: str
    value: Any = None


@dataclass(slots=True)
class Terminate:
    dest: int
    instance_id: str
    reason: str = ""


Message = (
    Start
    | Response
    | LocalOp
    | Exists
    | Acquire
    | Granted
    | Release
    | Commit
    | ActivityResult
    | Tick
    | RaiseEvent
    | Terminate
)

# the wire names of the message types, derived from the union above
MESSAGE_TYPES: dict[str, type[Any]] = {cls.__name__: cls for cls in typing.get_args(Message)}

_OP_FIELDS = frozenset({"op", "event"})
_KEY_LIST_FIELDS = frozenset({"keys", "lock_keys"})


# per message type, its fields in order, each with whether it holds an operation
# (dataclasses.fields() rebuilds its tuple on every call; messages are encoded per hop)
_FIELDS: dict[type[Any], tuple[tuple[str, bool], ...]] = {
    cls: tuple((f.name, f.name in _OP_FIELDS) for f in dataclasses.fields(cls))
    for cls in MESSAGE_TYPES.values()
}


def to_wire(msg: Message, schema: Schema) -> dict[str, Any]:
    """The JSON-ready form of a message."""
    cls = type(msg)
    out: dict[str, Any] = {"t": cls.__name__}
    for name, is_op in _FIELDS[cls]:
        value = getattr(msg, name)
        if value is not None:
            out[name] = schema.encode_op(value) if is_op else value
    return out


def from_wire(data: dict[str, Any], schema: Schema) -> Message:
    """Rebuild a message; raises :class:`reactive.errors.ReactiveError` subclasses on bad input."""
    try:
        cls = MESSAGE_TYPES[data["t"]]
    except (KeyError, TypeError):
        raise errors.UnknownOperationError(
            f"not a message: {str(data)[:200]}"
        ) from None
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name == "t":
            continue
        if name in _OP_FIELDS:
            value = schema.decode_op(value)
        elif name in _KEY_LIST_FIELDS:
            value = tuple((k[0], k[1]) for k in value)
        elif name == "key":
            value = (value[0], value[1])
        elif name == "reply":
            value = Reply(value[0], value[1], value[2], value[3])
        kwargs[name] = value
    try:
        return cls(**kwargs)  # type: ignore[no-any-return]
    except TypeError as exc:
        raise errors.UnknownOperationError(f"malformed {cls.__name__} message: {exc}") from None
