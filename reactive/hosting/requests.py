"""Client requests as messages: what a client posts for start, raise event, terminate.

Every request carries an id so that a retried or redelivered request is applied once: a
start's id is its instance id, the others get a random one unless the caller gives one.
"""

from __future__ import annotations

import uuid
from typing import Any

from reactive.core.messages import RaiseEvent, Start, Terminate
from reactive.hosting import envelope
from reactive.hosting.seams import Outgoing
from reactive.model import Orchestration
from reactive.schema import Schema


def new_id() -> str:
    return uuid.uuid4().hex


def start(
    schema: Schema, partitions: int, epoch: str, instance_id: str, op: Orchestration[Any]
) -> Outgoing:
    dest = schema.instance_owner(instance_id, partitions)
    return envelope.from_client(epoch, f"start:{instance_id}", Start(dest, instance_id, op), schema)


def raise_event(
    schema: Schema, partitions: int, epoch: str, instance_id: str, name: str, value: Any,
    request_id: str | None = None,
) -> Outgoing:
    dest = schema.instance_owner(instance_id, partitions)
    msg = RaiseEvent(dest, instance_id, name, value)
    return envelope.from_client(epoch, f"event:{request_id or new_id()}", msg, schema)


def terminate(
    schema: Schema, partitions: int, epoch: str, instance_id: str, reason: str,
    request_id: str | None = None,
) -> Outgoing:
    dest = schema.instance_owner(instance_id, partitions)
    msg = Terminate(dest, instance_id, reason)
    return envelope.from_client(epoch, f"terminate:{request_id or new_id()}", msg, schema)
