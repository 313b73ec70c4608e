"""The bytes of a message on a transport, and their strict parsing.

A partition's message carries its sender partition and that sender's sequence number
for the destination; a client request carries its request id instead. Anything else is
poison: :func:`parse` names what is wrong in one line, and the worker dead-letters it.

    {"e": epoch, "s": 3, "q": 17, "m": {...}}        partition 3's 17th message to dest
    {"e": epoch, "s": "c", "r": "start:job1", "m": {...}}   a client request
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import pydantic_core
from pydantic import ValidationError

from reactive import errors
from reactive.core.messages import Message, from_wire, to_wire
from reactive.hosting.seams import Outgoing
from reactive.schema import Schema

CLIENT = "c"


class Envelope(NamedTuple):
    """(A named tuple: immutable, and built for every message sent and received at about
    half the cost of a frozen dataclass.)"""

    epoch: str
    sender: int | str  # a partition index, or CLIENT
    seq: int  # partitions: 1, 2, ... per destination; clients: 0
    request: str  # clients: the request id; partitions: ""
    wire: dict[str, Any]

    @property
    def dedup(self) -> str:
        return f"r:{self.request}" if self.sender == CLIENT else f"p{self.sender}:{self.seq}"


class PoisonError(errors.ReactiveError):
    """A record that is not a well-formed message; the text says what is wrong."""


def _dumps(body: dict[str, Any]) -> bytes:
    # pydantic's JSON codec: several times faster than the json module, per hop
    return pydantic_core.to_json(body)


def from_partition(
    epoch: str, sender: int, seq: int, msg: Message, schema: Schema,
    recent: Recent | None = None,
) -> Outgoing:
    wire = to_wire(msg, schema)
    data = _dumps({"e": epoch, "s": sender, "q": seq, "m": wire})
    if recent is not None:
        recent.put(data, Envelope(epoch, sender, seq, "", wire), msg)
    return Outgoing(msg.dest, data, f"p{sender}:{seq}")


class Recent:
    """Messages that partitions of this process encoded, by their bytes, for a receiver
    in the same process: it takes the message it would get by parsing and validating
    those bytes, without doing either (the emulator hands messages over the same way).

    A hit is exact: the key is the whole record, and bytes this process did not encode
    (another process's, a poisoned or edited record) are never in it, so they are parsed
    as always. Each entry is taken once (a redelivery parses the record again, so two
    receivers never share a message object); the oldest go beyond ``limit`` (messages
    read by another process, or never read)."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._items: dict[bytes, tuple[Envelope, Message]] = {}
        self.hits = 0

    def put(self, data: bytes, env: Envelope, msg: Message) -> None:
        items = self._items
        items[data] = (env, msg)
        if len(items) > self.limit:
            del items[next(iter(items))]

    def take(self, data: bytes) -> tuple[Envelope, Message] | None:
        found = self._items.pop(data, None)
        if found is not None:
            self.hits += 1
        return found

    def __len__(self) -> int:
        return len(self._items)


def from_client(epoch: str, request_id: str, msg: Message, schema: Schema) -> Outgoing:
    body = {"e": epoch, "s": CLIENT, "r": request_id, "m": to_wire(msg, schema)}
    return Outgoing(msg.dest, _dumps(body), f"r:{request_id}")


def parse(data: bytes, partitions: int) -> Envelope:
    """The envelope in ``data``; raises :class:`PoisonError` naming the first problem."""
    try:
        body = pydantic_core.from_json(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise PoisonError(f"not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise PoisonError(f"not a message envelope (a JSON {type(body).__name__})")
    epoch, sender, wire = body.get("e"), body.get("s"), body.get("m")
    if not isinstance(epoch, str):
        raise PoisonError("envelope field 'e' (epoch) must be a string")
    if not isinstance(wire, dict):
        raise PoisonError("envelope field 'm' (message) must be an object")
    if sender == CLIENT:
        request = body.get("r")
        if not isinstance(request, str) or not request:
            raise PoisonError("a client request needs a non-empty string 'r' (request id)")
        return Envelope(epoch, CLIENT, 0, request, wire)
    if isinstance(sender, bool) or not isinstance(sender, int) or not 0 <= sender < partitions:
        raise PoisonError(f"envelope field 's' (sender) must be 'c' or 0..{partitions - 1}")
    seq = body.get("q")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise PoisonError("envelope field 'q' (sequence number) must be a positive integer")
    return Envelope(epoch, sender, seq, "", wire)


def decode_message(env: Envelope, schema: Schema, index: int) -> Message:
    """The message an envelope carries, checked to be for partition ``index``."""
    try:
        msg = from_wire(env.wire, schema)
    except (errors.ReactiveError, ValidationError, KeyError, TypeError, IndexError,
            ValueError) as exc:
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PoisonError(text) from None
    _check_types(msg)
    if msg.dest != index:
        raise PoisonError(f"addressed to partition {msg.dest}")
    return msg


_SIMPLE: dict[str, type | tuple[type, ...]] = {
    "int": int, "str": str, "bool": bool, "float": (int, float), "str | None": (str, type(None)),
}


@functools.cache
def _simple_fields(cls: type) -> tuple[tuple[str, str, type | tuple[type, ...]], ...]:
    return tuple(
        (f.name, str(f.type), _SIMPLE[str(f.type)])
        for f in dataclasses.fields(cls) if str(f.type) in _SIMPLE
    )


def _check_types(msg: Message) -> None:
    """Fields declared as plain ints, strings, bools or floats must hold one: a message
    from the wire is data, and a wrong type would fail deep inside the partition."""
    for name, declared, expected in _simple_fields(type(msg)):  # type: ignore[arg-type]
        value = getattr(msg, name)
        if isinstance(value, bool) and expected is not bool:
            ok = False
        else:
            ok = isinstance(value, expected)
        if not ok:
            raise PoisonError(
                f"{type(msg).__name__}.{name} must be {declared}, got {type(value).__name__}"
            )
