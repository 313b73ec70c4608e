"""Direct ASGI routes for the hot endpoints (a start, a wait), ahead of FastAPI.

FastAPI's routing, parameter solving and response classes cost several times what a
start's own handling does (about 0.3 ms of CPU per request). Requests in the usual
shape (known query parameters, each once, numbers in plain decimal, no root path) are
matched here by their path and served by the same handler code as the FastAPI route;
anything else goes on to FastAPI, whose route stays declared for the OpenAPI document
and answers exactly as before (its validation errors included).
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import Receive, Scope, Send

# status code, JSON body, extra headers
Reply = tuple[int, Any, dict[str, str] | None]
# (the path's parameter, the query's parameters, the body, the scope) -> the reply
Handler = Callable[[str, dict[str, str], bytes, Scope], Awaitable[Reply]]

NUMBER = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


@dataclass(frozen=True)
class Route:
    """``METHOD prefix{param}suffix``, the parameter one non-empty path segment."""

    method: str
    prefix: str
    suffix: str
    label: str  # as FastAPI names the route (the metrics' route label)
    strings: frozenset[str]  # query parameters taken as text
    numbers: frozenset[str]  # ... as numbers (plain decimal only; else FastAPI parses)
    handler: Handler

    def param(self, path: str) -> str | None:
        if not (path.startswith(self.prefix) and path.endswith(self.suffix)):
            return None
        value = path[len(self.prefix):len(path) - len(self.suffix)]
        return value if value and "/" not in value else None

    def query(self, raw: bytes) -> dict[str, str] | None:
        """The query's parameters, or None if FastAPI should see it (unknown or repeated
        names, a number that is not plain decimal, an empty value)."""
        if not raw:
            return {}
        found: dict[str, str] = {}
        for name, value in _pairs(raw.decode("latin-1")):
            if name in found or not value:
                return None
            if name in self.numbers:
                if NUMBER.fullmatch(value) is None:
                    return None
            elif name not in self.strings:
                return None
            found[name] = value
        return found


Match = tuple[Route, str, dict[str, str]]


def _pairs(text: str) -> list[tuple[str, str]]:
    """The query's pairs as Starlette reads them (``parse_qsl``, blank values kept),
    split directly when nothing in it is escaped."""
    if "%" in text or "+" in text:
        return parse_qsl(text, keep_blank_values=True)
    pairs = []
    for piece in text.split("&"):
        if piece:
            name, _, value = piece.partition("=")
            pairs.append((name, value))
    return pairs


class FastRoutes:
    """The routes served ahead of FastAPI; ``on_error`` turns a handler's exception into
    the reply FastAPI's exception handlers would give."""

    def __init__(self, on_error: Callable[[Exception], Reply]) -> None:
        self.routes: list[Route] = []
        self.on_error = on_error

    def add(self, route: Route) -> None:
        self.routes.append(route)

    def match(self, scope: Scope) -> Match | None:
        if scope.get("root_path"):
            return None
        method, path = scope["method"], scope["path"]
        for route in self.routes:
            if route.method != method:
                continue
            param = route.param(path)
            if param is None:
                continue
            query = route.query(scope["query_string"])
            return None if query is None else (route, param, query)
        return None

    async def serve(self, match: Match, scope: Scope, receive: Receive, send: Send) -> None:
        route, param, query = match
        body = await read_body(receive)
        if body is None:
            return  # the client went away
        try:
            code, content, headers = await route.handler(param, query, body, scope)
        except Exception as exc:
            code, content, headers = self.on_error(exc)
        await send_json(send, code, content, headers)


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header (``name`` in lower case, as ASGI servers give it)."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def render(content: Any) -> bytes:
    try:
        return orjson.dumps(content)
    except TypeError:  # what orjson refuses (integers beyond 64 bits, keys not strings)
        return json.dumps(content, ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode()


async def send_json(send: Send, code: int, content: Any, headers: dict[str, str] | None) -> None:
    body = render(content)
    raw = [(b"content-length", str(len(body)).encode()), (b"content-type", b"application/json")]
    if headers:
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": code, "headers": raw})
    await send({"type": "http.response.body", "body": body})
