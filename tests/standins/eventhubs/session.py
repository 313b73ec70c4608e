"""One AMQP session: link table, session flow control, transfer framing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from azure.eventhub._pyamqp.performatives import (
    BeginFrame,
    DetachFrame,
    DispositionFrame,
    FlowFrame,
)

from .broker import Broker, Refused
from .codec import encode_transfer
from .links import (
    InboundLink,
    Link,
    OutboundLink,
    PartitionReader,
    ReplyLink,
    entity_path,
    open_link,
)

if TYPE_CHECKING:
    from .connection import Connection

WINDOW = 65536
HANDLE_MAX = 4095


class Session:
    def __init__(self, conn: Connection, channel: int, begin: list[Any], broker: Broker) -> None:
        self.conn = conn
        self.channel = channel
        self.broker = broker
        self.next_incoming_id: int = begin[1] or 0
        self.incoming_window = WINDOW
        self.next_outgoing_id = 0
        self.next_delivery_id = 0
        self.remote_incoming_window: int = begin[2] or 0
        self.links: dict[int, Link] = {}  # by the client's handle
        self._handles: set[int] = set()

    # --- frames out -----------------------------------------------------------------------

    def send(self, performative: NamedTuple) -> None:
        self.conn.send(self.channel, performative)

    def begin_reply(self) -> None:
        self.send(
            BeginFrame(
                remote_channel=self.channel,
                next_outgoing_id=self.next_outgoing_id,
                incoming_window=self.incoming_window,
                outgoing_window=WINDOW,
                handle_max=HANDLE_MAX,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            )
        )

    def flow(
        self,
        link: Link | None,
        *,
        delivery_count: int | None = None,
        link_credit: int | None = None,
        drain: bool = False,
    ) -> None:
        self.send(
            FlowFrame(
                next_incoming_id=self.next_incoming_id,
                incoming_window=self.incoming_window,
                next_outgoing_id=self.next_outgoing_id,
                outgoing_window=WINDOW,
                handle=link.handle if link else None,
                delivery_count=delivery_count,
                link_credit=link_credit,
                available=None,
                drain=drain,
                echo=False,
                properties=None,
            )
        )

    def settle(self, delivery_id: int, outcome: Any) -> None:
        self.send(
            DispositionFrame(
                role=True,
                first=delivery_id,
                last=delivery_id,
                settled=True,
                state=outcome,
                batchable=None,
            )
        )

    def can_send(self) -> bool:
        return self.remote_incoming_window > 0 and not self.conn.closing

    def transfer(self, link: Link, tag: bytes, payload: bytes) -> None:
        """Send one settled delivery, split into frames that fit the client's max frame size."""
        delivery_id = self.next_delivery_id
        self.next_delivery_id = (delivery_id + 1) & 0xFFFFFFFF
        overhead = len(encode_transfer(self.channel, link.handle, delivery_id, tag, False, b""))
        room = max(64, self.conn.remote_max_frame_size - overhead)
        start, frames = 0, 0
        while True:
            chunk = payload[start : start + room]
            start += room
            more = start < len(payload)
            self.conn.write(
                encode_transfer(self.channel, link.handle, delivery_id, tag, more, chunk)
            )
            frames += 1
            if not more:
                break
        self.next_outgoing_id = (self.next_outgoing_id + frames) & 0xFFFFFFFF
        self.remote_incoming_window -= frames

    def reply(self, node: str, payload: bytes) -> None:
        for link in self.links.values():
            if isinstance(link, ReplyLink) and link.address == node and not link.detach_sent:
                link.post(payload)
                return
        self.conn.log(f"no reply link for {node} on channel {self.channel}; reply dropped")

    def new_handle(self) -> int:
        handle = 0
        while handle in self._handles:
            handle += 1
        self._handles.add(handle)
        return handle

    # --- frames in ------------------------------------------------------------------------

    def on_attach(self, fields: list[Any]) -> None:
        client_receives = bool(fields[2])
        try:
            link = open_link(self, self.broker, fields)
        except Refused as refused:
            terminus = fields[5] if client_receives else fields[6]
            link = Link(self, fields[0], fields[1], entity_path(terminus[0] if terminus else None))
            self.links[fields[1]] = link
            link.attach_reply(fields, initial_delivery_count=0 if client_receives else None)
            link.detach(refused.condition, refused.description)
            return
        self.links[fields[1]] = link
        link.attach_reply(fields, initial_delivery_count=0 if client_receives else None)
        if isinstance(link, PartitionReader):
            try:
                link.register()
            except Refused as refused:
                link.detach(refused.condition, refused.description)
        elif isinstance(link, InboundLink):
            link.grant()

    def on_flow(self, fields: list[Any]) -> None:
        next_incoming = fields[0] if fields[0] is not None else 0
        self.remote_incoming_window = next_incoming + fields[1] - self.next_outgoing_id
        if fields[4] is not None:
            link = self.links.get(fields[4])
            if isinstance(link, OutboundLink) and not link.detach_sent:
                link.on_flow(fields)
            elif isinstance(link, InboundLink) and fields[9]:
                self.flow(link, delivery_count=link.delivery_count, link_credit=link.credit)
        else:
            self.pump()

    def pump(self) -> None:
        for link in list(self.links.values()):
            if isinstance(link, OutboundLink) and not link.detach_sent:
                link.pump()

    def on_transfer(self, fields: list[Any]) -> None:
        if fields[1] is not None:
            self.next_incoming_id = (fields[1] + 1) & 0xFFFFFFFF
        self.incoming_window -= 1
        link = self.links.get(fields[0])
        if isinstance(link, InboundLink) and not link.detach_sent:
            link.on_transfer(fields)
        if self.incoming_window < WINDOW // 2:
            self.incoming_window = WINDOW
            self.flow(None)

    def on_detach(self, fields: list[Any]) -> None:
        link = self.links.pop(fields[0], None)
        if link is None:
            return
        if not link.detach_sent:
            link.detach_sent = True
            self.send(DetachFrame(handle=link.handle, closed=bool(fields[1]), error=None))
            link.closed()
        self._handles.discard(link.handle)

    def ended(self) -> None:
        """The session is gone (End exchanged or connection lost): release every link."""
        for link in self.links.values():
            if not link.detach_sent:
                link.detach_sent = True
                link.closed()
        self.links.clear()
