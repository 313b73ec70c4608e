"""AMQP links as the stand-in sees them.

``InboundLink``: the client sends (producers, and requests to ``$cbs`` / ``$management``).
``OutboundLink``: the stand-in sends (replies from the nodes, and events from a partition).
Link credit follows AMQP: the client grants credit to our outbound links with Flow frames, and we
grant credit to its inbound links.
"""

from __future__ import annotations

import re
import struct
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from azure.eventhub._pyamqp.endpoints import Source, Target
from azure.eventhub._pyamqp.error import AMQPError
from azure.eventhub._pyamqp.outcomes import Accepted, Rejected
from azure.eventhub._pyamqp.performatives import AttachFrame, DetachFrame

from . import nodes
from .broker import (
    LINK_STOLEN,
    MAX_MESSAGE_SIZE,
    NOT_FOUND,
    Broker,
    Event,
    Hub,
    Partition,
    Refused,
)
from .codec import (
    BATCH_FORMAT,
    SEC_DELIVERY_ANNOTATIONS,
    Incoming,
    annotations_section,
    data_sections,
    decode_message,
    encoded,
    symbol,
)

if TYPE_CHECKING:
    from .session import Session

INBOUND_CREDIT = 1000
EPOCH = b"com.microsoft:epoch"
RUNTIME_METRIC = b"com.microsoft:enable-receiver-runtime-metric"
_PATH = re.compile(r"^(?:[a-z]+://[^/]*)?/?(.*?)/?$", re.IGNORECASE)


def entity_path(address: Any) -> str:
    """The path of a link address, without scheme and host: ``hub/Partitions/0``, ``$cbs``."""
    text = address.decode() if isinstance(address, bytes) else str(address or "")
    match = _PATH.match(text)
    return match.group(1) if match else text


class Link:
    def __init__(self, session: Session, name: bytes, remote_handle: int, address: str) -> None:
        self.session = session
        self.name = name
        self.remote_handle = remote_handle
        self.handle = session.new_handle()
        self.address = address
        self.detach_sent = False

    def attach_reply(self, fields: list[Any], *, initial_delivery_count: int | None) -> None:
        role_client = bool(fields[2])
        source = fields[5][0] if fields[5] else self.address
        target = fields[6][0] if fields[6] else self.address
        self.session.send(
            AttachFrame(
                name=self.name,
                handle=self.handle,
                role=not role_client,
                send_settle_mode=fields[3],
                rcv_settle_mode=fields[4],
                source=Source._make([source] + [None] * 10),
                target=Target._make([target] + [None] * 6),
                unsettled=None,
                incomplete_unsettled=False,
                initial_delivery_count=initial_delivery_count,
                max_message_size=MAX_MESSAGE_SIZE,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            )
        )

    def detach(self, condition: bytes | None = None, description: str | None = None) -> None:
        """Detach from our side (closing), with an optional error for the client."""
        if self.detach_sent:
            return
        self.detach_sent = True
        error = (
            AMQPError(condition=condition, description=description, info=None)
            if condition
            else None
        )
        self.session.send(DetachFrame(handle=self.handle, closed=True, error=error))
        self.closed()

    def closed(self) -> None:
        """Release whatever the link holds in the broker."""


class InboundLink(Link):
    """A link on which the client sends messages to us."""

    def __init__(self, session: Session, name: bytes, remote_handle: int, address: str) -> None:
        super().__init__(session, name, remote_handle, address)
        self.delivery_count = 0
        self.credit = 0
        self._payload = bytearray()
        self._delivery_id: int | None = None
        self._settled = False
        self._format = 0

    def grant(self) -> None:
        self.credit = INBOUND_CREDIT
        self.session.flow(self, delivery_count=self.delivery_count, link_credit=self.credit)

    def on_transfer(self, fields: list[Any]) -> None:
        # fields: handle, delivery-id, tag, format, settled, more, ..., aborted (9), payload (11)
        if fields[1] is not None and not self._payload:
            self._delivery_id = fields[1]
            self._settled = bool(fields[4])
            self._format = int(fields[3] or 0)
        self._payload += fields[11]
        if fields[5]:  # more frames of this delivery follow
            return
        payload, self._payload = bytes(self._payload), bytearray()
        self.delivery_count += 1
        self.credit -= 1
        if fields[9]:  # aborted
            return
        try:
            outcome = self.deliver(payload, self._format)
        except Refused as refused:
            outcome = _rejected(refused.condition, refused.description)
        except (ValueError, IndexError, KeyError, struct.error) as exc:
            outcome = _rejected(b"amqp:decode-error", f"cannot decode the message: {exc!r}")
        if not self._settled and self._delivery_id is not None:
            self.session.settle(self._delivery_id, outcome)
        if self.credit <= INBOUND_CREDIT // 2:
            self.grant()

    def deliver(self, payload: bytes, message_format: int) -> Any:
        raise NotImplementedError


class RequestLink(InboundLink):
    """Requests to ``$cbs`` or ``$management``; replies go out on the session's reply link."""

    def __init__(
        self, session: Session, name: bytes, remote_handle: int, address: str, broker: Broker
    ) -> None:
        super().__init__(session, name, remote_handle, address)
        self.broker = broker

    def deliver(self, payload: bytes, message_format: int) -> Any:
        request = decode_message(payload)
        if self.address.lower() == nodes.CBS:
            reply = nodes.cbs_reply(request)
        else:
            reply = nodes.management_reply(self.broker, request)
        self.session.reply(self.address, reply)
        return Accepted()


class ProducerLink(InboundLink):
    """Events sent to ``<hub>`` or ``<hub>/Partitions/<id>``."""

    def __init__(
        self,
        session: Session,
        name: bytes,
        remote_handle: int,
        address: str,
        hub: Hub,
        partition: Partition | None,
    ) -> None:
        super().__init__(session, name, remote_handle, address)
        self.hub = hub
        self.partition = partition

    def deliver(self, payload: bytes, message_format: int) -> Any:
        if len(payload) > MAX_MESSAGE_SIZE:
            raise Refused(
                b"amqp:link:message-size-exceeded",
                f"The message is {len(payload)} bytes; the limit is {MAX_MESSAGE_SIZE}.",
            )
        outer = Incoming.parse(payload)
        key = outer.annotation("x-opt-partition-key")
        if message_format == BATCH_FORMAT:
            messages = [Incoming.parse(raw) for raw in data_sections(payload)]
        else:
            messages = [outer]
        target = self.partition or self.hub.route(key)
        for message in messages:
            target.append(message, message.annotation("x-opt-partition-key") or key)
        return Accepted()


class OutboundLink(Link):
    """A link on which we send messages to the client."""

    def __init__(self, session: Session, name: bytes, remote_handle: int, address: str) -> None:
        super().__init__(session, name, remote_handle, address)
        self.delivery_count = 0
        self.credit_limit = 0  # client's delivery_count + link_credit, as of its last Flow

    @property
    def credit(self) -> int:
        return self.credit_limit - self.delivery_count

    def on_flow(self, fields: list[Any]) -> None:
        delivery_count = fields[5] if fields[5] is not None else self.delivery_count
        self.credit_limit = delivery_count + (fields[6] or 0)
        self.pump()
        if fields[8] and self.credit > 0:  # drain: use up the credit we cannot fill
            self.delivery_count = self.credit_limit
            self.session.flow(self, delivery_count=self.delivery_count, link_credit=0, drain=True)
        elif fields[9]:  # echo
            self.session.flow(self, delivery_count=self.delivery_count, link_credit=self.credit)

    def send(self, payload: bytes) -> None:
        tag = struct.pack(">I", self.delivery_count & 0xFFFFFFFF)
        self.session.transfer(self, tag, payload)
        self.delivery_count += 1

    def pump(self) -> None:
        """Send what the credit and session window allow."""


class ReplyLink(OutboundLink):
    def __init__(self, session: Session, name: bytes, remote_handle: int, address: str) -> None:
        super().__init__(session, name, remote_handle, address)
        self.queue: deque[bytes] = deque()

    def post(self, payload: bytes) -> None:
        self.queue.append(payload)
        self.pump()

    def pump(self) -> None:
        while self.queue and self.credit > 0 and self.session.can_send():
            self.send(self.queue.popleft())


class PartitionReader(OutboundLink):
    """Events of one partition, for one consumer group, from a start position on."""

    def __init__(
        self,
        session: Session,
        name: bytes,
        remote_handle: int,
        address: str,
        partition: Partition,
        group: str,
        fields: list[Any],
    ) -> None:
        super().__init__(session, name, remote_handle, address)
        self.partition = partition
        self.group = group
        properties = fields[13] or {}
        epoch = properties.get(EPOCH)
        self.epoch: int | None = int(epoch) if epoch is not None else None
        self.metrics = RUNTIME_METRIC in (fields[12] or [])
        source = fields[5] or []
        filters = source[7] if len(source) > 7 and isinstance(source[7], dict) else {}
        selector = next((v for v in filters.values() if isinstance(v, bytes | str)), None)
        if isinstance(selector, bytes):
            selector = selector.decode("utf-8", "replace")
        self.position = partition.start_index(selector)
        self._wake_pending = False

    def register(self) -> None:
        self.partition.subscribe(self.group, self)

    def wake(self) -> None:
        if not self._wake_pending:
            self._wake_pending = True
            self.session.conn.call_soon(self._woken)

    def _woken(self) -> None:
        self._wake_pending = False
        self.pump()

    def kick(self, description: str) -> None:
        self.detach(LINK_STOLEN, description)

    def closed(self) -> None:
        self.partition.unsubscribe(self)

    def pump(self) -> None:
        events = self.partition.events
        conn = self.session.conn
        while (
            not self.detach_sent
            and self.position < len(events)
            and self.credit > 0
            and self.session.can_send()
        ):
            if not conn.writable():
                conn.when_writable(self.pump)
                return
            self.send(self._payload(events[self.position]))
            self.position += 1

    def _payload(self, event: Event) -> bytes:
        if not self.metrics:
            return event.header + event.tail
        info = self.partition.info()
        entries = [
            (symbol(name), encoded(value))
            for name, value in (
                (
                    "last_enqueued_sequence_number",
                    {"TYPE": "LONG", "VALUE": info.last_sequence_number},
                ),
                ("last_enqueued_offset", {"TYPE": "STRING", "VALUE": info.last_offset}),
                ("last_enqueued_time_utc", {"TYPE": "TIMESTAMP", "VALUE": info.last_enqueued_ms}),
                ("runtime_info_retrieval_time_utc", {"TYPE": "TIMESTAMP", "VALUE": _now_ms()}),
            )
        ]
        return event.header + annotations_section(SEC_DELIVERY_ANNOTATIONS, entries) + event.tail


def _rejected(condition: bytes, description: str) -> Any:
    return Rejected(error=AMQPError(condition=condition, description=description, info=None))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def open_link(session: Session, broker: Broker, fields: list[Any]) -> Link:
    """Create the link a client Attach asks for; raises Refused when it cannot exist."""
    name, handle, client_receives = fields[0], fields[1], bool(fields[2])
    terminus = fields[5] if client_receives else fields[6]
    path = entity_path(terminus[0] if terminus else None)
    lowered = path.lower()
    if lowered in (nodes.CBS, nodes.MANAGEMENT):
        if client_receives:
            return ReplyLink(session, name, handle, lowered)
        return RequestLink(session, name, handle, lowered, broker)
    parts = path.split("/")
    hub = broker.hub(parts[0])
    if hub is None:
        raise Refused(NOT_FOUND, f"The messaging entity '{parts[0]}' could not be found.")
    if not client_receives:
        if len(parts) == 1:
            return ProducerLink(session, name, handle, path, hub, None)
        if len(parts) == 3 and parts[1].lower() == "partitions":
            return ProducerLink(session, name, handle, path, hub, _partition(hub, parts[2]))
    elif (
        len(parts) == 5
        and parts[1].lower() == "consumergroups"
        and parts[3].lower() == "partitions"
    ):
        partition = _partition(hub, parts[4])
        reader = PartitionReader(session, name, handle, path, partition, parts[2], fields)
        return reader
    raise Refused(NOT_FOUND, f"The address '{path}' is not an Event Hubs entity.")


def _partition(hub: Hub, pid: str) -> Partition:
    partition = hub.partition(pid)
    if partition is None:
        raise Refused(
            NOT_FOUND,
            f"Partition '{pid}' of '{hub.name}' does not exist ({len(hub.partitions)} partitions).",
        )
    return partition
