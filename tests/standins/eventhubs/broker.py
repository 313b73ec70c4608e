"""The in-memory Event Hubs model: hubs, partitions, stored events, consumer groups, epochs.

Nothing here knows about AMQP links or sockets; links register as ``Subscriber`` objects and are
woken when events arrive or told to go when a receiver with a higher owner level takes over.
"""

from __future__ import annotations

import bisect
import re
import struct
import time
import zlib
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from .codec import SEC_MESSAGE_ANNOTATIONS, Incoming, annotations_section, decode_value, symbol

MAX_MESSAGE_SIZE = 1024 * 1024  # the service's limit for standard namespaces
NON_EPOCH_RECEIVERS_PER_GROUP = 5  # the service's quota per partition and consumer group
_SERVER_KEYS = {b"x-opt-sequence-number", b"x-opt-offset", b"x-opt-enqueued-time"}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Event:
    sequence_number: int
    offset: int
    enqueued_ms: int
    header: bytes  # raw header section (may be empty)
    tail: bytes  # message annotations section followed by the bare message


class PartitionInfo(NamedTuple):
    begin_sequence_number: int
    last_sequence_number: int
    last_offset: str
    last_enqueued_ms: int
    is_empty: bool


class Subscriber(Protocol):
    """What the broker needs from a receiving link."""

    epoch: int | None

    def wake(self) -> None: ...

    def kick(self, description: str) -> None: ...


class Refused(Exception):
    """The service says no: an AMQP error condition and a description for the client."""

    def __init__(self, condition: bytes, description: str) -> None:
        super().__init__(description)
        self.condition = condition
        self.description = description


LINK_STOLEN = b"amqp:link:stolen"
NOT_FOUND = b"amqp:not-found"
LIMIT_EXCEEDED = b"amqp:resource-limit-exceeded"
INVALID_FIELD = b"amqp:invalid-field"


@dataclass
class Partition:
    hub: str
    id: str
    events: list[Event] = field(default_factory=list)
    _offsets: list[int] = field(default_factory=list)
    _times: list[int] = field(default_factory=list)
    next_offset: int = 0
    subscribers: dict[str, list[Subscriber]] = field(default_factory=dict)

    def append(self, message: Incoming, partition_key: bytes | None) -> Event:
        """Store one event, stamping sequence number, offset and enqueued time."""
        seq = len(self.events)
        enqueued = max(_now_ms(), self._times[-1] if self._times else 0)
        entries = [(k, v) for k, v in message.annotations if decode_value(k) not in _SERVER_KEYS]
        if partition_key is not None and not any(
            decode_value(k) == b"x-opt-partition-key" for k, _ in entries
        ):
            entries.append((_PARTITION_KEY, partition_key))
        offset = str(self.next_offset).encode()
        entries += [
            (_SEQUENCE_KEY, b"\x81" + _LONG.pack(seq)),
            (_OFFSET_KEY, bytes((0xA1, len(offset))) + offset),
            (_ENQUEUED_KEY, b"\x83" + _LONG.pack(enqueued)),
        ]
        tail = annotations_section(SEC_MESSAGE_ANNOTATIONS, entries) + message.bare
        event = Event(seq, self.next_offset, enqueued, message.header, tail)
        self.events.append(event)
        self._offsets.append(event.offset)
        self._times.append(enqueued)
        self.next_offset += len(message.bare) + len(message.header) + 1
        for group in self.subscribers.values():
            for sub in list(group):
                sub.wake()
        return event

    def start_index(self, selector: str | None) -> int:
        """Index of the first event a receiver with this selector filter gets."""
        if not selector:
            return 0
        match = _SELECTOR.fullmatch(selector.strip())
        if not match:
            raise Refused(INVALID_FIELD, f"unsupported selector filter: {selector!r}")
        prop, op, raw = match.group(1), match.group(2), match.group(3)
        inclusive = op == ">="
        if raw == "@latest":
            return len(self.events)
        try:
            value = int(raw)
        except ValueError:
            raise Refused(INVALID_FIELD, f"not a number in selector {selector!r}") from None
        if prop == "offset":
            if value < 0:
                return 0
            keys = self._offsets
        elif prop == "sequence-number":
            return max(0, min(len(self.events), value if inclusive else value + 1))
        else:
            keys = self._times
        return (bisect.bisect_left if inclusive else bisect.bisect_right)(keys, value)

    def subscribe(self, group: str, sub: Subscriber) -> None:
        """Register a receiver, enforcing owner-level (epoch) exclusivity."""
        current = self.subscribers.setdefault(group.lower(), [])
        epochs = [s.epoch for s in current if s.epoch is not None]
        where = f"partition '{self.id}' of hub '{self.hub}', consumer group '{group}'"
        if sub.epoch is not None:
            if epochs and max(epochs) > sub.epoch:
                raise Refused(
                    LINK_STOLEN,
                    f"A receiver with a higher owner level ({max(epochs)}) already exists on"
                    f" {where}; a receiver with owner level {sub.epoch} cannot be created.",
                )
            for old in list(current):
                current.remove(old)
                old.kick(
                    f"A receiver with owner level {sub.epoch} took over {where};"
                    f" this receiver (owner level {old.epoch}) is disconnected."
                )
        elif epochs:
            raise Refused(
                LINK_STOLEN,
                f"A receiver with owner level {max(epochs)} exists on {where};"
                " a receiver without an owner level cannot be created.",
            )
        elif len(current) >= NON_EPOCH_RECEIVERS_PER_GROUP:
            raise Refused(
                LIMIT_EXCEEDED,
                f"At most {NON_EPOCH_RECEIVERS_PER_GROUP} receivers without an owner level"
                f" may read {where}.",
            )
        current.append(sub)

    def unsubscribe(self, sub: Subscriber) -> None:
        for group in self.subscribers.values():
            if sub in group:
                group.remove(sub)

    def info(self) -> PartitionInfo:
        if not self.events:
            return PartitionInfo(0, -1, "-1", 0, True)
        last = self.events[-1]
        return PartitionInfo(0, last.sequence_number, str(last.offset), last.enqueued_ms, False)


_SELECTOR = re.compile(
    r"amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time)\s*(>=|>)\s*'([^']*)'",
    re.IGNORECASE,
)


_LONG = struct.Struct(">q")
_SEQUENCE_KEY = symbol("x-opt-sequence-number")
_OFFSET_KEY = symbol("x-opt-offset")
_ENQUEUED_KEY = symbol("x-opt-enqueued-time")
_PARTITION_KEY = symbol("x-opt-partition-key")


@dataclass
class Hub:
    name: str
    partitions: list[Partition]
    created_ms: int = field(default_factory=_now_ms)
    _next: int = 0

    def partition(self, pid: str) -> Partition | None:
        for p in self.partitions:
            if p.id == pid:
                return p
        return None

    def route(self, partition_key: bytes | None) -> Partition:
        """The partition for an event sent to the hub: key hash, else round-robin."""
        if partition_key is not None:
            key = decode_value(partition_key)
            if isinstance(key, str):
                key = key.encode()
            digest = zlib.crc32(key if isinstance(key, bytes) else repr(key).encode())
            return self.partitions[digest % len(self.partitions)]
        chosen = self.partitions[self._next % len(self.partitions)]
        self._next += 1
        return chosen


class Broker:
    def __init__(self, hubs: dict[str, int]) -> None:
        self.hubs: dict[str, Hub] = {}
        for name, count in hubs.items():
            if count < 1:
                raise ValueError(f"hub {name!r} needs at least one partition")
            parts = [Partition(name, str(i)) for i in range(count)]
            self.hubs[name.lower()] = Hub(name, parts)

    def hub(self, name: str) -> Hub | None:
        return self.hubs.get(name.lower())
