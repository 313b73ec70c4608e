"""The request/response nodes every Event Hubs namespace has: ``$cbs`` and ``$management``.

Requests carry no ``reply_to``; the answer goes back on the same session's link that reads from the
node, with ``correlation_id`` set to the request's ``message_id``.
"""

from __future__ import annotations

from typing import Any

from azure.eventhub._pyamqp._encode import encode_payload
from azure.eventhub._pyamqp.message import Message, Properties

from .broker import Broker

CBS = "$cbs"
MANAGEMENT = "$management"


def _response(request: Message, status: int, description: str, value: Any = None) -> bytes:
    props = request.properties
    correlation: Any = props.message_id if props is not None else None
    reply = Message(
        properties=Properties(correlation_id=correlation),
        application_properties={"status-code": status, "status-description": description},
        value=value,
    )
    return bytes(encode_payload(bytearray(), reply))


def _app_prop(request: Message, name: str) -> str | None:
    props = request.application_properties or {}
    value = props.get(name.encode(), props.get(name))
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


def cbs_reply(request: Message) -> bytes:
    """Every put-token is accepted: the stand-in does no authorization."""
    return _response(request, 202, "Accepted")


def _long(value: int) -> dict[str, Any]:
    return {"TYPE": "LONG", "VALUE": value}


def _string(value: str) -> dict[str, Any]:
    return {"TYPE": "STRING", "VALUE": value}


def management_reply(broker: Broker, request: Message) -> bytes:
    operation = _app_prop(request, "operation")
    kind = _app_prop(request, "type")
    name = _app_prop(request, "name") or ""
    if operation != "READ":
        return _response(request, 400, f"operation {operation!r} is not supported by the stand-in")
    hub = broker.hub(name)
    if hub is None:
        return _response(request, 404, f"The messaging entity '{name}' could not be found.")
    if kind == "com.microsoft:eventhub":
        hub_value: dict[str, Any] = {
            "name": _string(hub.name),
            "type": _string("com.microsoft:eventhub"),
            "created_at": {"TYPE": "TIMESTAMP", "VALUE": hub.created_ms},
            "partition_count": {"TYPE": "INT", "VALUE": len(hub.partitions)},
            "partition_ids": {
                "TYPE": "ARRAY",
                "VALUE": [_string(p.id) for p in hub.partitions],
            },
        }
        return _response(request, 200, "OK", hub_value)
    if kind == "com.microsoft:partition":
        pid = _app_prop(request, "partition") or ""
        partition = hub.partition(pid)
        if partition is None:
            return _response(request, 404, f"Partition '{pid}' of '{hub.name}' does not exist.")
        info = partition.info()
        value: dict[str, Any] = {
            "name": _string(hub.name),
            "type": _string("com.microsoft:partition"),
            "partition": _string(partition.id),
            "begin_sequence_number": _long(info.begin_sequence_number),
            "last_enqueued_sequence_number": _long(info.last_sequence_number),
            "last_enqueued_offset": _string(info.last_offset),
            "last_enqueued_time_utc": {"TYPE": "TIMESTAMP", "VALUE": info.last_enqueued_ms},
            "is_partition_empty": info.is_empty,
        }
        return _response(request, 200, "OK", value)
    return _response(request, 400, f"type {kind!r} is not supported by the stand-in")
