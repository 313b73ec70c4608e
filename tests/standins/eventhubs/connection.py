"""One client connection: protocol headers, SASL, Open/Close, and frame dispatch to sessions."""

from __future__ import annotations

import asyncio
import struct
import sys
import traceback
from collections.abc import Callable
from typing import Any, NamedTuple

from azure.eventhub._pyamqp.error import AMQPError
from azure.eventhub._pyamqp.performatives import (
    CloseFrame,
    EndFrame,
    OpenFrame,
    SASLMechanism,
    SASLOutcome,
)

from .broker import Broker
from .codec import (
    AMQP_HEADER,
    ATTACH,
    BEGIN,
    CLOSE,
    DETACH,
    END,
    FLOW,
    FRAME_SASL,
    OPEN,
    SASL_HEADER,
    SASL_INIT,
    TRANSFER,
    decode_body,
    empty_frame,
    encode_performative,
)
from .session import Session

MAX_FRAME_SIZE = 65536
SASL_MECHANISMS = (b"ANONYMOUS", b"PLAIN")
_HIGH_WATER = 4 * 1024 * 1024
_HEADER = struct.Struct(">IBBH")


class ProtocolError(Exception):
    pass


class Connection:
    def __init__(
        self,
        broker: Broker,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        verbose: bool = False,
    ) -> None:
        self.broker = broker
        self.reader = reader
        self.writer = writer
        self.verbose = verbose
        self.loop = asyncio.get_running_loop()
        self.sessions: dict[int, Session] = {}
        self.remote_max_frame_size = 512
        self.closing = False
        self._out = bytearray()
        self._flush_scheduled = False
        self._waiting_writable: list[Callable[[], None]] = []
        self._drain_task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    # --- output ---------------------------------------------------------------------------

    def log(self, text: str) -> None:
        if self.verbose:
            print(f"eventhubs-standin: {text}", file=sys.stderr, flush=True)

    def send(self, channel: int, performative: NamedTuple, frame_type: int = 0) -> None:
        self.write(encode_performative(channel, performative, frame_type))

    def write(self, data: bytes) -> None:
        self._out += data
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def call_soon(self, callback: Callable[[], None]) -> None:
        self.loop.call_soon(callback)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and not self.writer.is_closing():
            self.writer.write(bytes(self._out))
        self._out.clear()

    def writable(self) -> bool:
        return self.writer.transport.get_write_buffer_size() + len(self._out) < _HIGH_WATER

    def when_writable(self, callback: Callable[[], None]) -> None:
        """Call back once the socket's send buffer has drained."""
        if callback not in self._waiting_writable:
            self._waiting_writable.append(callback)
        if self._drain_task is None:
            self._drain_task = self.loop.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            self._flush()
            await self.writer.drain()
        except ConnectionError:
            return
        finally:
            self._drain_task = None
        waiting, self._waiting_writable = self._waiting_writable, []
        for callback in waiting:
            callback()

    # --- input ----------------------------------------------------------------------------

    async def _read_frame(self) -> tuple[int, int, memoryview] | None:
        """(frame type, channel, body) or None for a heartbeat."""
        header = await self.reader.readexactly(8)
        size, doff, ftype, channel = _HEADER.unpack(header)
        if header[:4] == b"AMQP":
            raise ProtocolError(f"unexpected protocol header {header!r}")
        rest = await self.reader.readexactly(size - 8)
        body = memoryview(rest)[doff * 4 - 8 :]
        if not body:
            return None
        return ftype, channel, body

    async def _sasl(self) -> None:
        self.write(SASL_HEADER)
        self.send(0, SASLMechanism(sasl_server_mechanisms=list(SASL_MECHANISMS)), FRAME_SASL)
        frame = await self._read_frame()
        if frame is None:
            raise ProtocolError("empty frame during SASL")
        code, fields = decode_body(frame[2])
        if code != SASL_INIT:
            raise ProtocolError(f"expected sasl-init, got performative 0x{code:02x}")
        accepted = fields[0] in SASL_MECHANISMS
        self.send(0, SASLOutcome(code=0 if accepted else 1, additional_data=None), FRAME_SASL)
        if not accepted:
            raise ProtocolError(f"SASL mechanism {fields[0]!r} is not offered")

    async def serve(self) -> None:
        try:
            header = await self.reader.readexactly(8)
            if header == SASL_HEADER:
                await self._sasl()
                header = await self.reader.readexactly(8)
            self.write(AMQP_HEADER)
            if header != AMQP_HEADER:
                raise ProtocolError(f"unsupported protocol header {header!r}")
            while not self.closing:
                frame = await self._read_frame()
                if frame is not None:
                    self._dispatch(frame[1], *decode_body(frame[2]))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except ProtocolError as exc:
            self.log(str(exc))
        except Exception:  # a stand-in bug: report it and drop this connection only
            traceback.print_exc(file=sys.stderr)
            self.send(
                0,
                CloseFrame(
                    error=AMQPError(
                        condition=b"amqp:internal-error", description="stand-in failure", info=None
                    )
                ),
            )
        finally:
            self._release()
            self._flush()
            if self._heartbeat is not None:
                self._heartbeat.cancel()
            self.writer.close()

    def _release(self) -> None:
        for session in self.sessions.values():
            session.ended()
        self.sessions.clear()

    def _dispatch(self, channel: int, code: int, fields: list[Any]) -> None:
        if code in (TRANSFER, FLOW, ATTACH, DETACH):
            session = self.sessions.get(channel)
            if session is None:
                return  # frames for a session already ended are ignored
            if code == TRANSFER:
                session.on_transfer(fields)
            elif code == FLOW:
                session.on_flow(fields)
            elif code == ATTACH:
                session.on_attach(fields)
            else:
                session.on_detach(fields)
        elif code == BEGIN:
            session = Session(self, channel, fields, self.broker)
            self.sessions[channel] = session
            session.begin_reply()
        elif code == END:
            ended = self.sessions.pop(channel, None)
            if ended is not None:
                ended.ended()
                self.send(channel, EndFrame(error=None))
        elif code == OPEN:
            self._on_open(fields)
        elif code == CLOSE:
            self._release()
            self.send(0, CloseFrame(error=None))
            self.closing = True
        # Disposition: every delivery we send is settled, so the client's outcomes need no action.

    def _on_open(self, fields: list[Any]) -> None:
        self.remote_max_frame_size = int(fields[2] or 4294967295)
        self.send(
            0,
            OpenFrame(
                container_id="eventhubs-standin",
                hostname=None,
                max_frame_size=MAX_FRAME_SIZE,
                channel_max=65535,
                idle_timeout=None,
                outgoing_locales=None,
                incoming_locales=None,
                offered_capabilities=None,
                desired_capabilities=None,
                properties=None,
            ),
        )
        if fields[4]:  # the client wants traffic at least every idle_timeout milliseconds
            self._heartbeat = self.loop.create_task(self._beat(fields[4] / 2000))

    async def _beat(self, interval: float) -> None:
        while not self.closing:
            await asyncio.sleep(interval)
            self.write(empty_frame())
