"""The listening server, and ways to run it: in this process's thread, or as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

from .broker import Broker
from .connection import Connection

LOOPBACK = "127.0.0.1"
_REPO_ROOT = Path(__file__).resolve().parents[3]


def connection_string(port: int, hub: str, host: str = LOOPBACK) -> str:
    """What the stock SDK needs; ``UseDevelopmentEmulator=true`` makes it speak plain AMQP."""
    return (
        f"Endpoint=sb://{host}:{port};SharedAccessKeyName=RootManageSharedAccessKey;"
        f"SharedAccessKey=SAS_KEY_VALUE;UseDevelopmentEmulator=true;EntityPath={hub}"
    )


class Server:
    def __init__(self, hubs: dict[str, int], port: int = 0, verbose: bool = False) -> None:
        self.broker = Broker(hubs)
        self.requested_port = port
        self.verbose = verbose
        self.port = 0
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(
            self._accept, LOOPBACK, self.requested_port, limit=4 * 1024 * 1024
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(self.broker, reader, writer, self.verbose)
        self._connections.add(conn)
        try:
            await conn.serve()
        finally:
            self._connections.discard(conn)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for conn in list(self._connections):
                conn.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)


async def serve_until_signalled(
    hubs: dict[str, int], port: int, verbose: bool = False, exit_with_parent: bool = False
) -> None:
    """Run until SIGTERM or SIGINT; announce ``ready <port>`` on stdout once listening.

    With ``exit_with_parent`` it also stops when the process that started it is gone, so a
    test run that is killed does not leave a stand-in behind.
    """
    server = Server(hubs, port, verbose)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    bound = await server.start()
    print(f"ready {bound}", flush=True)
    watcher = loop.create_task(_watch_parent(os.getppid(), stop)) if exit_with_parent else None
    await stop.wait()
    if watcher is not None:
        watcher.cancel()
    await server.close()


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    while os.getppid() == parent:
        await asyncio.sleep(1)
    stop.set()


class StandIn:
    """A running stand-in. Stop it with ``stop()`` or use it as a context manager."""

    def __init__(
        self,
        port: int,
        *,
        process: subprocess.Popen[bytes] | None = None,
        thread: threading.Thread | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        stop_event: asyncio.Event | None = None,
    ) -> None:
        self.port = port
        self.process = process
        self._thread = thread
        self._loop = loop
        self._stop_event = stop_event

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else os.getpid()

    def connection_string(self, hub: str) -> str:
        return connection_string(self.port, hub)

    def stop(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(5)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(5)
            if self.process.stdout is not None:
                self.process.stdout.close()
        if self._thread is not None and self._loop is not None and self._stop_event is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop_event.set)
            self._thread.join(10)

    def __enter__(self) -> StandIn:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_standin(
    hubs: dict[str, int],
    port: int = 0,
    *,
    in_thread: bool = False,
    verbose: bool = False,
    timeout: float = 20.0,
) -> StandIn:
    """Start a stand-in serving ``hubs`` (name -> partition count) on 127.0.0.1.

    By default it runs as a subprocess (``python -m tests.standins.eventhubs``), stopped by its
    pid; ``in_thread=True`` runs it on an event loop in a background thread of this process.
    """
    if in_thread:
        return _start_thread(hubs, port, verbose, timeout)
    cmd = [sys.executable, "-m", "tests.standins.eventhubs", "--port", str(port)]
    cmd.append("--exit-with-parent")
    for name, count in hubs.items():
        cmd += ["--hub", f"{name}:{count}"]
    if verbose:
        cmd.append("--verbose")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), env.get("PYTHONPATH")]))
    proc = subprocess.Popen(cmd, cwd=_REPO_ROOT, env=env, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("ready "):
        StandIn(0, process=proc).stop()
        raise RuntimeError(f"Event Hubs stand-in did not start (got {line!r})")
    return StandIn(int(line.split()[1]), process=proc)


def _start_thread(hubs: dict[str, int], port: int, verbose: bool, timeout: float) -> StandIn:
    loop = asyncio.new_event_loop()
    server = Server(hubs, port, verbose)
    started = threading.Event()
    stop_event: asyncio.Event | None = None
    failure: list[BaseException] = []

    async def main() -> None:
        nonlocal stop_event
        stop_event = asyncio.Event()
        try:
            await server.start()
        except BaseException as exc:
            failure.append(exc)
            raise
        finally:
            started.set()
        await stop_event.wait()
        await server.close()

    def run() -> None:
        with contextlib.suppress(BaseException):
            loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=run, name="eventhubs-standin", daemon=True)
    thread.start()
    if not started.wait(timeout) or failure or stop_event is None:
        raise RuntimeError(f"Event Hubs stand-in did not start: {failure}")
    return StandIn(server.port, thread=thread, loop=loop, stop_event=stop_event)
