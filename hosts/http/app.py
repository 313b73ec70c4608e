"""The HTTP API, written once: FastAPI over a :class:`reactive.client.Client` (requests)
and a :class:`reactive.hosting.seams.StatusStore` (everything read). Nothing here restores
a partition: statuses, lists and partition health come from the status store; history and
what an instance waits for come from the optional ``history`` and ``describe`` callables.

Every error is JSON, ``{"error": "one line"}``, with a status code that says whose fault it
is: 400 malformed request, 401 missing or wrong API key, 404 unknown name or instance, 409
conflict with the instance's state, 422 input that fails validation, 504 an operation that
did not finish in time.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import inspect
import ipaddress
import json
import logging
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast, get_args
from urllib.parse import quote

import orjson
from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hosts.http.fast import FastRoutes, Match, Reply, Route, header
from hosts.http.metrics import Metrics
from hosts.http.pump import (
    Batch,
    GroupWriter,
    Submit,
    Watcher,
    observe_publish,
    settle_from_thread,
)
from hosts.text import article, name_hint
from reactive import Client, ReactiveError
from reactive.hosting import BUILTINS, ClientPerform, Kind, OperationInfo, Schema
from reactive.hosting.client import SeamClient
from reactive.hosting.requests import new_id
from reactive.hosting.seams import PartitionHealth, Status, StatusQuery, StatusRecord, StatusStore

API_KEY_HEADER = "x-api-key"
INSTANCE_ID_HEADER = "x-instance-id"
REQUEST_ID_HEADER = "x-request-id"
STATUSES: tuple[str, ...] = get_args(Status)
FINISHED = frozenset({"completed", "failed", "terminated"})
MAX_ID_LENGTH = 200
DEFAULT_WAIT = 30.0  # seconds a long poll waits when no timeout is given
MAX_WAIT = 300.0
MAX_LIMIT = 1000
STATIC = Path(__file__).parent / "static"
log = logging.getLogger("reactive.http")

HistoryFn = Callable[[str], Any]
DescribeFn = Callable[[str], Any]


class ApiError(Exception):
    """A request that cannot be served, reported as ``{"error": message}``."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


def parse_time(text: str | None, what: str) -> float | None:
    """Seconds since the epoch from an ISO-8601 time (UTC unless it says otherwise) or a
    number of seconds since the epoch."""
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ApiError(422, f"{what}: expected a time, got {text!r}")
        return value
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            422, f"{what}: expected an ISO-8601 time or seconds since the epoch, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def check_instance_id(instance_id: str) -> str:
    if not instance_id or len(instance_id) > MAX_ID_LENGTH:
        raise ApiError(400, f"an instance id has 1 to {MAX_ID_LENGTH} characters")
    if any(ch in instance_id for ch in "/\\") or any(ord(ch) < 32 for ch in instance_id):
        raise ApiError(400, "an instance id may not contain slashes or control characters")
    return instance_id


def error_json(error: Any) -> dict[str, Any] | None:
    """An encoded error (``reactive.core.results.encode_error``) for clients: its type,
    its message and, when the runtime recorded one, the user's traceback text."""
    if error is None:
        return None
    if isinstance(error, dict):
        kind = str(error.get("type", "Error"))
        message = str(error.get("message", ""))
        out: dict[str, Any] = {"type": kind, "message": message}
        if kind == "ApplicationError" or message.startswith(f"{kind}: "):
            out["text"] = one_line(message)
        else:
            out["text"] = one_line(f"{kind}: {message}")
        for extra in ("traceback", "remote_type"):
            if error.get(extra) is not None:
                out[extra] = error[extra]
        return out
    return {"type": "Error", "message": str(error), "text": one_line(str(error))}


def status_url(instance_id: str) -> str:
    return f"/api/instances/{quote(instance_id, safe='')}"


def record_json(record: StatusRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": record.instance_id,
        "name": record.name,
        "status": record.status,
        "done": record.status in FINISHED,
        "partition": record.partition,
        "created": iso(record.created),
        "updated": iso(record.updated),
        "result": record.result if record.status == "completed" else None,
        "error": error_json(record.error),
        "status_url": status_url(record.instance_id),
    }
    custom = getattr(record, "custom_status", None)
    if custom is not None:
        out["custom_status"] = custom
    return out


def health_json(health: PartitionHealth, backlog: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "partition": health.partition,
        "commit": health.commit,
        "committed_at": iso(health.committed_at),
        "next_due": iso(health.next_due),
        "snapshot_bytes": health.snapshot_bytes,
        "dead_letters": health.dead_letters,
        "live_runs": health.live_runs,
        "held": health.held,
        "held_since": iso(health.held_since),
    }
    if backlog is None:
        backlog = getattr(health, "backlog", None)
    if backlog is not None:
        out["backlog"] = backlog
    return out


def validation_text(exc: ValidationError, what: str) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    more = exc.error_count() - 1
    tail = f" (and {more} more error{'s' if more > 1 else ''})" if more else ""
    field = f"{where}: " if where else ""
    return one_line(f"invalid input for {what}: {field}{first['msg']}{tail}")


def _accepts(method: Callable[..., Any], parameter: str) -> bool:
    try:
        return parameter in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


@functools.lru_cache(maxsize=256)
def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Api:
    """The request handlers' shared state and helpers."""

    def __init__(
        self,
        schema: Schema,
        client: Client,
        status: StatusStore,
        history: HistoryFn | None,
        describe: DescribeFn | None,
        batch: Batch | None = None,
        submit: Submit | None = None,
    ) -> None:
        self.schema = schema
        self.client = client
        self.status = status
        self.history = history
        self.describe = describe
        self.user_ops = {
            info.name: info for info in schema.operations.values() if info.cls not in BUILTINS
        }
        self.watcher = Watcher(status)
        self.writer = GroupWriter(batch)
        self.submit = submit
        self.event_request_ids = _accepts(client.raise_event, "request_id")
        self.terminate_request_ids = _accepts(client.terminate, "request_id")

    # -- names and input ---------------------------------------------------------------

    def operation(self, name: str, kinds: tuple[Kind, ...], what: str) -> OperationInfo:
        info = self.user_ops.get(name)
        if info is not None and info.kind in kinds:
            return info
        if info is not None:
            hint = ""
            if info.kind is Kind.ORCHESTRATION:
                hint = f"; start it with POST /api/orchestrations/{name}"
            elif Kind.ORCHESTRATION in kinds:
                hint = f"; perform it with POST /api/perform/{name}"
            raise ApiError(
                404, f"{name} is {article(info.kind.value)}, not {article(what)}{hint}"
            )
        names = sorted(n for n, i in self.user_ops.items() if i.kind in kinds)
        hint = name_hint(name, names)
        raise ApiError(
            404, f"application {self.schema.app_name!r} has no {what} named {name!r}{hint}"
        )

    @staticmethod
    def parse_json(raw: bytes) -> Any:
        """A request body as JSON (None when empty)."""
        if not raw.strip():
            return None
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass  # json's own message below; it also takes what orjson refuses (NaN, big ints)
        try:
            return json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            detail = (
                f"{exc.msg} (line {exc.lineno}, column {exc.colno})"
                if isinstance(exc, json.JSONDecodeError)
                else "not UTF-8"
            )
            raise ApiError(400, f"the request body is not valid JSON: {detail}") from None

    async def body_json(self, request: Request) -> Any:
        return self.parse_json(await request.body())

    def build(self, info: OperationInfo, raw: bytes) -> Any:
        data = self.parse_json(raw)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            got = type(data).__name__
            raise ApiError(
                422, f"the request body must be a JSON object of {info.name}'s fields, got {got}"
            )
        try:
            return info.cls.model_validate(data)
        except ValidationError as exc:
            raise ApiError(422, validation_text(exc, info.name)) from None

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A client request (start, event, termination), grouped with the others that
        arrive together: run by the host's driver in its next transaction when the host
        takes requests (``submit``), else by the writer thread in one ``batch()``."""
        if self.submit is None:
            return await self.writer.call(fn, *args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()

        def done(ok: bool, value: Any) -> None:
            settle_from_thread(future, ok, value)

        self.submit(functools.partial(fn, *args), done)
        return await future

    # -- statuses ----------------------------------------------------------------------

    async def get(self, instance_id: str) -> StatusRecord | None:
        """A store read, off the event loop (a store may block while a commit syncs)."""
        return await asyncio.to_thread(self.status.get, instance_id)

    async def record(self, instance_id: str) -> StatusRecord:
        record = await self.get(check_instance_id(instance_id))
        if record is None:
            raise ApiError(404, f"no instance {instance_id!r}")
        return record

    async def live_record(self, instance_id: str, action: str) -> StatusRecord:
        record = await self.record(instance_id)
        if record.status in FINISHED:
            raise ApiError(
                409, f"cannot {action}: instance {instance_id!r} is already {record.status}"
            )
        return record

    async def wait(self, instance_id: str, timeout: float) -> StatusRecord | None:
        """The record once the instance is finished, or the latest after ``timeout``."""
        return await self.watcher.wait(instance_id, timeout)

    async def wait_reply(self, instance_id: str, timeout: float | None) -> Reply:
        """``GET /api/instances/{id}/wait``: 200 with the record once finished, else 202
        with the latest after the timeout."""
        check_instance_id(instance_id)
        record = await self.wait(instance_id, _timeout(timeout))
        if record is None:
            raise ApiError(404, f"no instance {instance_id!r}")
        done = record.status in FINISHED
        return (200 if done else 202, record_json(record),
                None if done else {"location": f"{status_url(instance_id)}/wait"})

    async def start(
        self, name: str, instance_id: str | None, raw: bytes, wait: float | None
    ) -> Reply:
        """``POST /api/orchestrations/{name}``: 202 once the start is durable, or 200 with
        the instance's status if it finishes within ``wait`` seconds."""
        info = self.operation(name, (Kind.ORCHESTRATION,), "orchestration")
        if instance_id is not None:
            check_instance_id(instance_id)
        op = self.build(info, raw)
        seconds = None if wait is None else _timeout(wait)
        entry = None
        if seconds is not None and self.watcher.deferred:
            # watched before it exists: a finish in the start's own commit is seen
            instance_id = instance_id or new_id()
            entry = self.watcher.register(instance_id)
        status, client = self.status, self.client

        def taken(existing: StatusRecord | None) -> bool:
            if existing is not None and existing.name != name:
                raise ApiError(409, f"instance id {existing.instance_id!r} is taken by "
                               f"{existing.name}")
            return existing is not None

        def start_once(iid: str | None) -> tuple[bool, str]:
            # in the writer's (or driver's) thread: the check and the start in one hop
            if isinstance(client, SeamClient):
                # what client.start does, but the pending record (written only if the id
                # is new) is the check: the store is read only for an id that exists
                record, message = client.pending_start(op, iid)
                if client.status_store.put_pending(record):
                    client.sender.send([message])
                    return False, record.instance_id
                existing = status.get(record.instance_id)
                taken(existing)  # None: started by a request of the same uncommitted batch
                if existing is not None and existing.status == "pending":
                    # its start may have been lost after the pending record committed
                    # (a crash mid-batch): sent again, applied once (its request id)
                    client.sender.send([message])
                return True, record.instance_id
            if iid is not None and taken(status.get(iid)):
                return True, iid
            return False, client.start(op, iid)

        try:
            try:
                existed, started = await self.run(start_once, instance_id)
            except ReactiveError as exc:  # e.g. the id was taken meanwhile
                raise ApiError(409, str(exc)) from None
        except BaseException:
            if entry is not None and instance_id is not None:
                self.watcher.release(instance_id, entry)
            raise
        url = status_url(started)
        if seconds is not None:
            record = await self.watcher.wait(started, seconds, entry, fresh=not existed)
            if record is not None and record.status in FINISHED:
                return 200, record_json(record), {"location": url}
        return (202, {"id": started, "name": name, "created": not existed, "status_url": url,
                      "wait_url": f"{url}/wait"}, {"location": url})

    async def details(self, record: StatusRecord, with_history: bool) -> dict[str, Any]:
        out = record_json(record)
        if self.describe is not None and record.status not in FINISHED:
            out["waiting_for"] = await asyncio.to_thread(self.describe, record.instance_id)
        if with_history:
            if self.history is None:
                raise ApiError(501, "this server does not keep instance histories")
            out["history"] = await asyncio.to_thread(self.history, record.instance_id)
        return out




def _timeout(value: float | None, default: float = DEFAULT_WAIT) -> float:
    if value is None:
        return default
    if not math.isfinite(value) or value < 0:
        raise ApiError(422, f"timeout: expected seconds from 0 to {MAX_WAIT:g}, got {value}")
    return min(value, MAX_WAIT)


def _schema_of(info: OperationInfo) -> dict[str, Any]:
    try:
        return info.cls.model_json_schema()
    except Exception:  # a field type without a JSON schema: describe the fields by name
        return {"type": "object", "properties": {name: {} for name in info.cls.model_fields}}


def _needs_key(path: str) -> bool:
    return path == "/metrics" or path == "/api" or path.startswith("/api/")


def _given_key(scope: Scope) -> str | None:
    """The key in the x-api-key header, else a bearer token (raw ASGI headers)."""
    bearer = None
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            key: str = value.decode("latin-1")
            return key
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            bearer = value[7:].decode("latin-1").strip()
    return bearer


class Access:
    """Pure ASGI middleware (cheaper than ``BaseHTTPMiddleware``, and than a FastAPI
    dependency, whose solving cost about a tenth of a start's CPU): counts requests by
    route and status for the metrics; requires the API key on ``/api`` and ``/metrics``
    or, on a server without one, refuses every peer that is not on the loopback
    interface."""

    def __init__(self, app: ASGIApp, metrics: Metrics, api_key: str | None,
                 fast: FastRoutes | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.api_key = api_key.encode() if api_key is not None else None
        self.fast = fast

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        routes = self.fast
        await self.guarded(scope, receive, send,
                           routes.match(scope) if routes is not None else None)

    async def guarded(self, scope: Scope, receive: Receive, send: Send,
                      fast: Match | None) -> None:
        """Serve an HTTP request, by its direct route when it has one (``fast``), else
        by the app, once the key or the peer is accepted; count it."""
        refusal = self._refusal(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        status = [500]

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        started = time.perf_counter()
        try:
            if fast is not None and self.fast is not None:
                await self.fast.serve(fast, scope, receive, send_and_note)
            else:
                await self.app(scope, receive, send_and_note)
        finally:
            if fast is not None:
                route = fast[0].label
            else:
                route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe(scope["method"], route, status[0], time.perf_counter() - started)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        if self.api_key is None:
            client = scope.get("client")
            if _is_loopback(client[0] if client else None):
                return None
            return JSONResponse(
                {"error": "this server runs without an API key and answers loopback peers only"},
                status_code=403,
            )
        if not _needs_key(scope["path"]):
            return None
        given = _given_key(scope)
        if given is not None and hmac.compare_digest(given.encode(), self.api_key):
            return None
        what = "wrong" if given is not None else "missing"
        return JSONResponse(
            {"error": f"{what} API key: send it in the {API_KEY_HEADER} header"},
            status_code=401, headers={"www-authenticate": "ApiKey"},
        )


class ApiApp(FastAPI):
    """The FastAPI app, with its direct routes (:mod:`hosts.http.fast`) served ahead of
    FastAPI's and Starlette's middleware layers (whose error handling and telemetry
    cost more per request than a start's own handling) by ``front``, an :class:`Access`
    with the same key and metrics as the one inside."""

    front: Access | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        front = self.front
        if front is not None and front.fast is not None and scope["type"] == "http":
            fast = front.fast.match(scope)
            if fast is not None:
                await front.guarded(scope, receive, send, fast)
                return
        await super().__call__(scope, receive, send)


def _declare_key(app: FastAPI) -> None:
    """Describe the API key in the OpenAPI document (the middleware checks it, so no
    route declares it as a dependency)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = generate()
            schemes = spec.setdefault("components", {}).setdefault("securitySchemes", {})
            schemes["APIKeyHeader"] = {"type": "apiKey", "in": "header",
                                       "name": API_KEY_HEADER,
                                       "description": "the server's API key"}
            for path, operations in spec.get("paths", {}).items():
                if _needs_key(path):
                    for operation in operations.values():
                        operation["security"] = [{"APIKeyHeader": []}]
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]


def follow_commits(
    app: FastAPI, store: Any, on_commit: Callable[[Callable[[bool], None]], None] | None = None
) -> bool:
    """Resolve the app's waits as ``store`` (the status store the host's partitions
    publish to, in this process) commits status changes, instead of by polling alone.
    ``on_commit`` (``LocalHost.on_commit``) registers a callback run after each of the
    host's transactions: waits then end with the published record as soon as it is
    durable, without reading the store back."""
    api: Api = app.state.api
    if not observe_publish(store, api.watcher.published):
        return False
    if on_commit is not None:
        on_commit(api.watcher.committed)
        api.watcher.follow()
    else:
        api.watcher.notified()
    return True


def error_reply(status_code: int, message: str, **extra: Any) -> Reply:
    headers = {"www-authenticate": "ApiKey"} if status_code == 401 else None
    return status_code, {"error": one_line(message), **extra}, headers


def _fast_error(exc: Exception) -> Reply:
    """What the app's exception handlers answer, for the direct routes."""
    if isinstance(exc, ApiError):
        return error_reply(exc.status, exc.message, **exc.extra)
    log.error("%s", f"internal error: {type(exc).__name__}: {exc}", exc_info=exc)
    return error_reply(500, f"internal error: {type(exc).__name__}: {exc}")


def _fast_routes(api: Api) -> FastRoutes:
    """The start and the wait, served ahead of FastAPI (see :mod:`hosts.http.fast`)."""

    async def start(name: str, query: dict[str, str], body: bytes, scope: Scope) -> Reply:
        instance_id = query.get("id")
        if instance_id is None:
            instance_id = header(scope, INSTANCE_ID_HEADER.encode())
        wait = query.get("wait")
        return await api.start(name, instance_id, body, None if wait is None else float(wait))

    async def wait(instance_id: str, query: dict[str, str], body: bytes, scope: Scope) -> Reply:
        timeout = query.get("timeout")
        return await api.wait_reply(instance_id, None if timeout is None else float(timeout))

    routes = FastRoutes(_fast_error)
    routes.add(Route("POST", "/api/orchestrations/", "", "/api/orchestrations/{name}",
                     frozenset({"id"}), frozenset({"wait"}), start))
    routes.add(Route("GET", "/api/instances/", "/wait", "/api/instances/{instance_id}/wait",
                     frozenset(), frozenset({"timeout"}), wait))
    return routes


def create_app(
    schema: Schema,
    client: Client,
    status: StatusStore,
    *,
    api_key: str | None,
    history: HistoryFn | None = None,
    describe: DescribeFn | None = None,
    batch: Batch | None = None,
    backlog: Callable[[int], int] | None = None,
    submit: Submit | None = None,
) -> FastAPI:
    """The API under ``/api``, the dashboard at ``/``, ``/metrics`` and ``/openapi.json``.

    ``api_key`` is required in the ``x-api-key`` header (or as a bearer token) of every
    ``/api`` and ``/metrics`` request. ``api_key=None`` turns authentication off and then
    refuses every peer that is not on the loopback interface: pass it only for a server
    bound to 127.0.0.1 whose user asked for no key.

    ``backlog(partition)``, when given, is the number of inputs waiting for a partition
    (reported with its health). Client requests (starts, events, terminations) that
    arrive together are grouped: with ``submit`` (``LocalHost.submit``) the host's driver
    runs them in its next transaction together with their processing (one fsync for the
    requests and what they start); else one writer thread runs them inside one
    ``batch()`` block when given (``LocalHost.batch``: one transaction and one fsync for
    the lot). Waits are answered by one watcher thread.
    """
    if api_key is not None and not api_key:
        raise ValueError("api_key must be a non-empty string, or None for no authentication")
    api = Api(schema, client, status, history, describe, batch, submit)
    run = api.run

    metrics = Metrics(status, backlog)
    app = ApiApp(
        title=f"Reactive Machine: {schema.app_name}",
        version="1",
        description="Start and manage orchestration instances, perform reads and updates, "
        "watch partitions. Send the API key in the x-api-key header.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.api = api
    app.state.metrics = metrics

    # -- errors as one-line JSON -------------------------------------------------------

    def error_response(status_code: int, message: str, **extra: Any) -> JSONResponse:
        code, body, headers = error_reply(status_code, message, **extra)
        return JSONResponse(body, status_code=code, headers=headers)

    async def on_api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, **exc.extra)

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail))

    async def on_validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("query", "path")]
        where = ".".join(loc)
        message = str(first.get("msg", "invalid request"))
        return error_response(422, f"{where}: {message}" if where else message)

    async def on_unexpected(request: Request, exc: Exception) -> Response:
        return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)

    # -- access --------------------------------------------------------------------------

    app.add_middleware(Access, metrics=metrics, api_key=api_key)
    app.front = Access(app, metrics, api_key, _fast_routes(api))
    if api_key is not None:
        _declare_key(app)

    router = APIRouter(prefix="/api")

    # -- the application -----------------------------------------------------------------

    @router.get("/app", summary="The application's orchestrations, reads, updates and events")
    async def describe_app() -> dict[str, Any]:
        sections: dict[str, list[dict[str, Any]]] = {
            "orchestrations": [], "reads": [], "updates": [], "events": []
        }
        keys = {
            Kind.ORCHESTRATION: "orchestrations",
            Kind.READ: "reads",
            Kind.UPDATE: "updates",
            Kind.EVENT: "events",
        }
        startup = {type(op) for op in schema.startup}
        for name, info in sorted(api.user_ops.items()):
            key = keys.get(info.kind)
            if key is not None:
                sections[key].append(
                    {"name": name, "schema": _schema_of(info), "startup": info.cls in startup}
                )
        return {"name": schema.app_name, **sections}

    # -- starting ------------------------------------------------------------------------

    @router.post(
        "/orchestrations/{name}",
        status_code=202,
        summary="Start an orchestration instance",
        description="The body is the orchestration's fields as a JSON object. The instance "
        "id comes from ?id= or the x-instance-id header (default: a new one); starting an "
        "existing id again with the same orchestration does nothing. 202 with the status "
        "URL in Location; 409 if the id belongs to another orchestration. With ?wait=S, "
        "200 with the instance's status if it finishes within S seconds.",
        openapi_extra={
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}
        },
    )
    async def start(
        name: str,
        request: Request,
        id: str | None = Query(None, description="instance id"),
        wait: float | None = Query(
            None, description="seconds to wait for the instance to finish: 200 with its "
            "status if it does"
        ),
    ) -> JSONResponse:
        instance_id = id if id is not None else request.headers.get(INSTANCE_ID_HEADER)
        code, body, headers = await api.start(name, instance_id, await request.body(), wait)
        return JSONResponse(body, status_code=code, headers=headers)

    # -- reading -------------------------------------------------------------------------

    @router.get("/instances/{instance_id}", summary="An instance's status")
    async def get_instance(
        instance_id: str,
        history: bool = Query(False, description="include the instance's history"),
    ) -> dict[str, Any]:
        return await api.details(await api.record(instance_id), history)

    @router.get(
        "/instances/{instance_id}/wait",
        summary="Wait for an instance to finish (long poll)",
        description="200 with the status once the instance is finished; 202 with its "
        "current status if it is still live when the timeout (seconds, default 30, at most "
        "300) passes.",
    )
    async def wait_instance(
        instance_id: str, timeout: float | None = Query(None, description="seconds")
    ) -> JSONResponse:
        code, body, headers = await api.wait_reply(instance_id, timeout)
        return JSONResponse(body, status_code=code, headers=headers)

    @router.get(
        "/instances",
        summary="List instances",
        description="Filters: status, name, created since/until (ISO-8601 or seconds since "
        "the epoch). Ordered by instance id; follow `next` (as ?cursor=) for the next page.",
    )
    async def list_instances(
        status_filter: str | None = Query(None, alias="status"),
        name: str | None = None,
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
    ) -> dict[str, Any]:
        if status_filter is not None and status_filter not in STATUSES:
            raise ApiError(
                422, f"status: expected one of {', '.join(STATUSES)}, got {status_filter!r}"
            )
        query = StatusQuery(
            status=cast(Status | None, status_filter),
            name=name or None,
            since=parse_time(since, "since"),
            until=parse_time(until, "until"),
            after=cursor or None,
            limit=limit + 1,
        )
        records = await asyncio.to_thread(status.query, query)
        more = len(records) > limit
        records = records[:limit]
        return {
            "items": [record_json(r) for r in records],
            "next": records[-1].instance_id if more and records else None,
        }

    # -- driving -------------------------------------------------------------------------

    @router.post(
        "/instances/{instance_id}/events/{event}",
        status_code=202,
        summary="Raise an external event",
        description="The body (any JSON, or empty for null) is the event's value, delivered "
        "to ctx.wait_for_event(event). Send an x-request-id header to make retries safe.",
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": {}}}}},
    )
    async def raise_event(instance_id: str, event: str, request: Request) -> dict[str, Any]:
        await api.live_record(instance_id, f"raise {event!r}")
        value = await api.body_json(request)
        request_id = request.headers.get(REQUEST_ID_HEADER)
        if request_id is not None and api.event_request_ids:
            await run(functools.partial(
                client.raise_event, instance_id, event, value, request_id=request_id  # type: ignore[call-arg]
            ))
        else:
            await run(client.raise_event, instance_id, event, value)
        return {"id": instance_id, "event": event, "accepted": True}

    @router.post(
        "/instances/{instance_id}/terminate",
        status_code=202,
        summary="Terminate an instance",
        description='Optional body {"reason": "..."} or ?reason=.',
    )
    async def terminate(
        instance_id: str, request: Request, reason: str | None = None
    ) -> dict[str, Any]:
        await api.live_record(instance_id, "terminate")
        body = await api.body_json(request)
        if reason is None and isinstance(body, dict) and isinstance(body.get("reason"), str):
            reason = body["reason"]
        elif body is not None and not isinstance(body, dict):
            raise ApiError(422, 'the request body must be {"reason": "..."} or empty')
        request_id = request.headers.get(REQUEST_ID_HEADER)
        if request_id is not None and api.terminate_request_ids:
            await run(functools.partial(
                client.terminate, instance_id, reason or "", request_id=request_id  # type: ignore[call-arg]
            ))
        else:
            await run(client.terminate, instance_id, reason or "")
        return {"id": instance_id, "terminating": True}

    @router.delete("/instances/{instance_id}", summary="Purge a finished instance's status")
    async def purge(instance_id: str) -> dict[str, Any]:
        record = await api.record(instance_id)
        if record.status not in FINISHED:
            raise ApiError(
                409, f"cannot purge: instance {instance_id!r} is {record.status}; terminate it "
                "first"
            )
        if not await asyncio.to_thread(status.purge, instance_id):
            raise ApiError(404, f"no finished instance {instance_id!r}")
        return {"id": instance_id, "purged": True}

    @router.post(
        "/perform/{name}",
        summary="Perform a read, an update or an event",
        description="The body is the operation's fields as a JSON object; 200 with "
        '{"result": ...}. An error the operation raised is 409 (404 for a state that does '
        "not exist); 504 if it does not finish within ?timeout= seconds (default 30).",
        openapi_extra={
            "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}
        },
    )
    async def perform(
        name: str, request: Request, timeout: float | None = Query(None)
    ) -> dict[str, Any]:
        info = api.operation(name, (Kind.READ, Kind.UPDATE, Kind.EVENT), "read, update or event")
        seconds = _timeout(timeout)
        op = api.build(info, await request.body())
        wire = list(schema.encode_op(op))
        instance_id = await run(client.start, ClientPerform(op=wire), None)
        record = await api.wait(instance_id, seconds)
        if record is None or record.status not in FINISHED:
            raise ApiError(
                504, f"{name} did not finish within {seconds:g} s; follow "
                f"{status_url(instance_id)}", id=instance_id
            )
        await asyncio.to_thread(status.purge, instance_id)
        if record.status == "completed":
            return {"result": record.result}
        error = error_json(record.error) or {"type": "Error", "text": "failed"}
        code = 404 if error["type"] == "StateNotFoundError" else 409
        raise ApiError(code, f"{name} failed: {error['text']}", type=error["type"])

    @router.get("/partitions", summary="Partition health from each partition's last commit")
    async def partitions() -> dict[str, Any]:
        def read() -> list[dict[str, Any]]:
            rows = sorted(status.health(), key=lambda h: h.partition)
            return [health_json(h, backlog(h.partition) if backlog else None) for h in rows]

        return {"partitions": await asyncio.to_thread(read)}

    app.include_router(router)

    # -- metrics, dashboard ----------------------------------------------------------------

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app

