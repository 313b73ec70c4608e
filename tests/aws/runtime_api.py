"""A small stand-in for the Lambda Runtime API, enough for the real runtime interface
client (``python -m awslambdaric MODULE.HANDLER``) to fetch invocations and post results.

    api = RuntimeApi().start()          # 127.0.0.1, a free port: api.address
    result = api.invoke({"Records": []})  # blocks until the client posts the outcome
    api.stop()

Endpoints: ``GET /2018-06-01/runtime/invocation/next``, ``POST .../invocation/{id}/response``,
``POST .../invocation/{id}/error`` and ``POST .../runtime/init/error``.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PREFIX = "/2018-06-01/runtime"


@dataclass
class Outcome:
    ok: bool
    payload: Any
    headers: dict[str, str] = field(default_factory=dict)


class RuntimeApi:
    def __init__(self, timeout_ms: int = 60_000) -> None:
        self.timeout_ms = timeout_ms
        self._events: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._outcomes: dict[str, queue.Queue[Outcome]] = {}
        self.init_errors: list[Any] = []
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> RuntimeApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def invoke(self, event: Any, timeout: float = 60.0) -> Outcome:
        request_id = str(uuid.uuid4())
        box: queue.Queue[Outcome] = queue.Queue()
        self._outcomes[request_id] = box
        self._events.put((request_id, json.dumps(event).encode()))
        return box.get(timeout=timeout)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else Nagle and delayed ACKs add ~40 ms a call

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes = b"",
                       headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != f"{PREFIX}/invocation/next":
                    self._reply(404)
                    return
                while True:
                    try:
                        request_id, body = api._events.get(timeout=0.1)
                        break
                    except queue.Empty:
                        if api._stopping.is_set():
                            self._reply(503)
                            return
                deadline = int(time.time() * 1000) + api.timeout_ms
                self._reply(200, body, {
                    "Lambda-Runtime-Aws-Request-Id": request_id,
                    "Lambda-Runtime-Deadline-Ms": str(deadline),
                    "Lambda-Runtime-Invoked-Function-Arn":
                        "arn:aws:lambda:us-east-1:123456789012:function:reactive",
                    "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000",
                    "Content-Type": "application/json",
                })

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = self.path[len(PREFIX):].strip("/").split("/")
                payload = json.loads(body) if body else None
                if parts == ["init", "error"]:
                    api.init_errors.append(payload)
                    self._reply(202)
                    return
                if len(parts) == 3 and parts[0] == "invocation" and parts[2] in (
                    "response", "error"
                ):
                    box = api._outcomes.pop(parts[1], None)
                    if box is None:
                        self._reply(400)
                        return
                    box.put(Outcome(parts[2] == "response", payload, dict(self.headers)))
                    self._reply(202)
                    return
                self._reply(404)

        return Handler
