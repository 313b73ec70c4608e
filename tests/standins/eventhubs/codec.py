"""Frame and message encoding for the Event Hubs stand-in.

Performatives are encoded with the SDK's own pure-Python AMQP codec (``azure.eventhub._pyamqp``),
which writes every field of a performative, nulls included. The SDK's decoder reads fields by
position, so frames with trailing fields left out (legal AMQP) would break it; reusing its encoder
on the server side avoids that. The module is private to the SDK: keep ``azure-eventhub`` pinned.

Messages are handled at the section level: the bare message (properties, application properties,
body, footer) is kept byte for byte as the producer encoded it, and only the message annotations
section is rebuilt with the broker's ``x-opt-*`` values.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from azure.eventhub._pyamqp._decode import _DECODE_BY_CONSTRUCTOR, decode_frame
from azure.eventhub._pyamqp._decode import decode_payload as _sdk_decode_payload
from azure.eventhub._pyamqp._encode import encode_frame, encode_value
from azure.eventhub._pyamqp.message import Message

AMQP_HEADER = b"AMQP\x00\x01\x00\x00"
SASL_HEADER = b"AMQP\x03\x01\x00\x00"
FRAME_AMQP = 0
FRAME_SASL = 1

# Performative descriptor codes.
OPEN, BEGIN, ATTACH, FLOW, TRANSFER, DISPOSITION, DETACH, END, CLOSE = range(0x10, 0x19)
SASL_INIT = 0x41
SASL_RESPONSE = 0x43

# Message section descriptor codes.
SEC_HEADER = 0x70
SEC_DELIVERY_ANNOTATIONS = 0x71
SEC_MESSAGE_ANNOTATIONS = 0x72
SEC_PROPERTIES = 0x73
SEC_APP_PROPERTIES = 0x74
SEC_DATA = 0x75

BATCH_FORMAT = 0x80013700

_SIZE = struct.Struct(">I")


def encode_performative(
    channel: int, performative: NamedTuple, frame_type: int = FRAME_AMQP
) -> bytes:
    """One complete frame (header, channel, body) for a performative namedtuple of the SDK."""
    header, body = encode_frame(performative, frame_type=bytes([frame_type]))
    return header + struct.pack(">H", channel) + (body or b"")


_UINT = struct.Struct(">BI")


def encode_transfer(
    channel: int, handle: int, delivery_id: int, tag: bytes, more: bool, payload: bytes
) -> bytes:
    """A settled Transfer frame, written by hand for speed (the hot path of every receive).

    All eleven fields are present, as the SDK's positional decoder needs: handle, delivery-id,
    delivery-tag, message-format 0, settled true, more, rcv-settle-mode null, state null,
    resume, aborted and batchable false.
    """
    fields = (
        _UINT.pack(0x70, handle)
        + _UINT.pack(0x70, delivery_id)
        + bytes((0xA0, len(tag)))
        + tag
        + _UINT.pack(0x70, 0)
        + (b"\x41\x41" if more else b"\x41\x42")
        + b"\x40\x40\x42\x42\x42"
    )
    body_size = 4 + 1 + 1 + len(fields)  # descriptor (00 53 14), list8 header (c0 size count)
    return (
        struct.pack(">IBBH", 8 + body_size + len(payload), 2, FRAME_AMQP, channel)
        + b"\x00\x53\x14\xc0"
        + bytes((len(fields) + 1, 11))
        + fields
        + payload
    )


def empty_frame() -> bytes:
    """A heartbeat frame: a frame header with no body."""
    return b"\x00\x00\x00\x08\x02\x00\x00\x00"


def decode_body(body: memoryview) -> tuple[int, list[Any]]:
    """Performative code and its fields; a transfer's payload is appended as the last field."""
    code, fields = decode_frame(body)
    return code, fields


def encoded(value: Any) -> bytes:
    """Encode one AMQP value (plain Python value or the SDK's ``{TYPE:..., VALUE:...}`` form)."""
    out = bytearray()
    encode_value(out, value)
    return bytes(out)


def decode_value(raw: bytes | memoryview) -> Any:
    """Decode one encoded AMQP value (strings and symbols come back as bytes, as in the SDK)."""
    buf = memoryview(raw)
    return _DECODE_BY_CONSTRUCTOR[buf[0]](buf[1:])[1]


def decode_message(payload: bytes | memoryview) -> Message:
    return _sdk_decode_payload(memoryview(payload))


# --- skipping over encoded values without decoding them ---------------------------------------

_FIXED_WIDTH = {0x4: 0, 0x5: 1, 0x6: 2, 0x7: 4, 0x8: 8, 0x9: 16}


def skip_value(buf: memoryview, pos: int) -> int:
    """Position just after the encoded value that starts at ``pos``."""
    ctor = buf[pos]
    if ctor == 0x00:  # described: descriptor, then value
        return skip_value(buf, skip_value(buf, pos + 1))
    group = ctor >> 4
    if group in _FIXED_WIDTH:
        return pos + 1 + _FIXED_WIDTH[group]
    if group in (0xA, 0xC, 0xE):
        return pos + 2 + buf[pos + 1]
    if group in (0xB, 0xD, 0xF):
        size: int = _SIZE.unpack_from(buf, pos + 1)[0]
        return pos + 5 + size
    raise ValueError(f"unknown AMQP constructor 0x{ctor:02x}")


def _section_code(buf: memoryview, pos: int) -> int:
    """Descriptor code of the section at ``pos`` (0 when it is not a numeric descriptor)."""
    if buf[pos] != 0x00:
        raise ValueError("a message section must be a described value")
    if buf[pos + 1] == 0x53:
        return int(buf[pos + 2])
    if buf[pos + 1] == 0x80:
        code: int = _SIZE.unpack_from(buf, pos + 6)[0]
        return code
    return 0


def split_sections(payload: bytes | memoryview) -> list[tuple[int, bytes]]:
    """The sections of an encoded message as (descriptor code, raw bytes) in wire order."""
    buf = memoryview(payload)
    sections: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(buf):
        end = skip_value(buf, pos)
        sections.append((_section_code(buf, pos), bytes(buf[pos:end])))
        pos = end
    return sections


def section_value_offset(raw: bytes) -> int:
    """Offset of the described value inside a raw section (after its descriptor)."""
    return skip_value(memoryview(raw), 1)


def map_entries(raw_section: bytes) -> list[tuple[bytes, bytes]]:
    """Raw (key, value) encodings of the map inside an annotations section."""
    buf = memoryview(raw_section)
    pos = section_value_offset(raw_section)
    ctor = buf[pos]
    if ctor == 0x40:
        return []
    if ctor == 0xC1:
        count, pos = buf[pos + 2], pos + 3
    elif ctor == 0xD1:
        count, pos = _SIZE.unpack_from(buf, pos + 5)[0], pos + 9
    else:
        raise ValueError("annotations must be a map")
    entries: list[tuple[bytes, bytes]] = []
    for _ in range(count // 2):
        key_end = skip_value(buf, pos)
        value_end = skip_value(buf, key_end)
        entries.append((bytes(buf[pos:key_end]), bytes(buf[key_end:value_end])))
        pos = value_end
    return entries


def annotations_section(code: int, entries: list[tuple[bytes, bytes]]) -> bytes:
    """An annotations section (message or delivery annotations) built from raw map entries."""
    body = b"".join(k + v for k, v in entries)
    return (
        b"\x00\x53"
        + bytes([code])
        + b"\xd1"
        + _SIZE.pack(len(body) + 4)
        + _SIZE.pack(len(entries) * 2)
        + body
    )


def symbol(name: str) -> bytes:
    """An encoded AMQP symbol (annotation keys are symbols)."""
    return encoded({"TYPE": "SYMBOL", "VALUE": name.encode()})


def data_sections(payload: bytes | memoryview) -> list[bytes]:
    """The binary contents of every data section (used to unpack a batch)."""
    out: list[bytes] = []
    for code, raw in split_sections(payload):
        if code != SEC_DATA:
            continue
        buf = memoryview(raw)
        pos = section_value_offset(raw)
        if buf[pos] == 0xA0:
            out.append(bytes(buf[pos + 2 : pos + 2 + buf[pos + 1]]))
        else:
            size = _SIZE.unpack_from(buf, pos + 1)[0]
            out.append(bytes(buf[pos + 5 : pos + 5 + size]))
    return out


@dataclass
class Incoming:
    """A message as the producer sent it, split for the broker."""

    header: bytes = b""
    annotations: list[tuple[bytes, bytes]] = field(default_factory=list)
    bare: bytes = b""

    @classmethod
    def parse(cls, payload: bytes | memoryview) -> Incoming:
        msg = cls()
        bare: list[bytes] = []
        for code, raw in split_sections(payload):
            if code == SEC_HEADER:
                msg.header = raw
            elif code == SEC_MESSAGE_ANNOTATIONS:
                msg.annotations = map_entries(raw)
            elif code == SEC_DELIVERY_ANNOTATIONS:
                continue  # meant for the next hop (the broker), not for consumers
            else:
                bare.append(raw)
        msg.bare = b"".join(bare)
        return msg

    def annotation(self, name: str) -> bytes | None:
        """Raw encoded value of a symbol-keyed annotation, if present."""
        key = name.encode()
        for k, v in self.annotations:
            if decode_value(k) == key:
                return v
        return None
