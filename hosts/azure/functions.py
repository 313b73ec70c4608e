"""The functions of an app on the Azure host, in the Python v2 programming model.

``function_app.py`` at the repository root binds an app with :func:`build_function_app`;
the Functions host indexes the returned ``FunctionApp``. The functions:

- ``partitions``: Event Hubs trigger on the partition hub, ``cardinality=many``, binary
  bodies; the partition id comes from the trigger metadata (``PartitionContext``);
- ``ingress``: Event Hubs trigger on the ingress hub (JSON start requests from anyone);
- ``wake``: a timer that rings partitions with due timers;
- ``http``: the HTTP API, served through the library's ASGI support.

Hub names and the timer's schedule are binding expressions (``%REACTIVE_PARTITION_HUB%``,
``%REACTIVE_INGRESS_HUB%``, ``%REACTIVE_WAKE_SCHEDULE%``) resolved from app settings; the
host itself (stores, clients) is created on first use from the same settings.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import azure.functions as func

from hosts.azure.host import AzureHost
from hosts.azure.settings import EVENTHUBS, AzureSettings
from reactive import App, Orchestration
from reactive.hosting.client import to_instance_status

PARTITION_HUB = "%REACTIVE_PARTITION_HUB%"
INGRESS_HUB = "%REACTIVE_INGRESS_HUB%"
WAKE_SCHEDULE = "%REACTIVE_WAKE_SCHEDULE%"
DEFAULTS = {
    "REACTIVE_PARTITION_HUB": "partitions",
    "REACTIVE_INGRESS_HUB": "ingress",
    "REACTIVE_WAKE_SCHEDULE": "*/10 * * * * *",  # NCRONTAB with seconds: every 10 s
}


class HostHolder:
    """Creates the :class:`AzureHost` on first use (the Functions host imports the module
    before it hands over any event), once per process."""

    def __init__(self, app: App, make: Callable[[], AzureHost] | None = None) -> None:
        self.app = app
        self._make = make or (lambda: AzureHost(app, AzureSettings.from_env()))
        self._host: AzureHost | None = None
        self._asgi: Any = None
        self._lock = threading.Lock()

    def get(self) -> AzureHost:
        with self._lock:
            if self._host is None:
                self._host = self._make()
            return self._host

    def asgi(self) -> Any:
        """The HTTP API as an ASGI application wrapped for Functions (None if the HTTP API
        package is not available)."""
        host = self.get()
        with self._lock:
            if self._asgi is None:
                self._asgi = _http_api(host)
            return self._asgi


def _http_api(host: AzureHost) -> Any:
    try:
        from hosts.http import create_app  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    api = create_app(host.schema, host.client(), host.status, api_key=host.settings.api_key)
    return func.AsgiMiddleware(api)  # type: ignore[no-untyped-call]


def build_function_app(
    app: App,
    *,
    host: Callable[[], AzureHost] | None = None,
    http_auth: func.AuthLevel = func.AuthLevel.ANONYMOUS,
) -> func.FunctionApp:
    """The FunctionApp serving ``app``. ``host`` makes the host (default: from the
    environment). HTTP requests are authenticated by the API's own key
    (``REACTIVE_API_KEY``) unless ``http_auth`` asks Functions for a key as well."""
    holder = HostHolder(app, host)
    functions = func.FunctionApp(http_auth_level=http_auth)
    functions.reactive_host = holder  # type: ignore[attr-defined]

    @functions.function_name("partitions")
    @functions.event_hub_message_trigger(
        arg_name="events", event_hub_name=PARTITION_HUB, connection=EVENTHUBS,
        cardinality=func.Cardinality.MANY, data_type=func.DataType.BINARY,
    )
    def partitions(events: list[func.EventHubEvent]) -> None:
        holder.get().on_partition_events(events)

    @functions.function_name("ingress")
    @functions.event_hub_message_trigger(
        arg_name="events", event_hub_name=INGRESS_HUB, connection=EVENTHUBS,
        cardinality=func.Cardinality.MANY, data_type=func.DataType.BINARY,
    )
    def ingress(events: list[func.EventHubEvent]) -> None:
        holder.get().on_ingress_events(events)

    @functions.function_name("wake")
    @functions.timer_trigger(arg_name="timer", schedule=WAKE_SCHEDULE, use_monitor=False)
    def wake(timer: func.TimerRequest) -> None:
        holder.get().on_timer()

    @functions.function_name("http")
    @functions.route(
        route="{*route}",
        methods=["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"],
    )
    async def http(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
        middleware = holder.asgi()
        if middleware is False:
            return placeholder_http(holder.get(), req)
        response: func.HttpResponse = await middleware.handle_async(req, context)
        return response

    return functions


def _json(body: Any, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def placeholder_http(host: AzureHost, req: func.HttpRequest) -> func.HttpResponse:
    """A few routes until the HTTP API package is deployed with the app:
    ``GET /api/instances/{id}``, ``POST /api/orchestrations/{name}`` (body: the input),
    ``GET /api/partitions``. Requires ``x-api-key`` = ``REACTIVE_API_KEY``."""
    key = host.settings.api_key
    if key is None:
        return _json({"error": "set REACTIVE_API_KEY to use the HTTP API"}, 503)
    if req.headers.get("x-api-key") != key:
        return _json({"error": "missing or wrong x-api-key"}, 401)
    path = "/" + req.url.split("://", 1)[-1].split("/", 1)[-1].split("?", 1)[0]
    parts = [p for p in path.split("/") if p]
    if req.method == "GET" and parts[:2] == ["api", "instances"] and len(parts) == 3:
        record = host.status.get(parts[2])
        if record is None:
            return _json({"error": f"no instance {parts[2]!r}"}, 404)
        status = to_instance_status(host.schema, record)
        return _json({"id": record.instance_id, "name": record.name,
                      "status": status.status, "result": record.result,
                      "error": record.error})
    if req.method == "POST" and parts[:2] == ["api", "orchestrations"] and len(parts) == 3:
        info = host.schema.by_name.get(parts[2])
        if info is None or not issubclass(info.cls, Orchestration):
            return _json({"error": f"unknown orchestration {parts[2]!r}"}, 404)
        try:
            op = info.cls.model_validate(req.get_json() if req.get_body() else {})
        except ValueError as exc:
            return _json({"error": f"invalid input: {exc}"}, 400)
        assert isinstance(op, Orchestration)
        iid = host.client().start(op, req.params.get("id") or req.headers.get("x-instance-id"))
        return _json({"id": iid, "name": parts[2]}, 202)
    if req.method == "GET" and parts == ["api", "partitions"]:
        return _json([asdict(h) for h in host.status.health()])
    return _json({"error": f"no route {req.method} {path}"}, 404)
