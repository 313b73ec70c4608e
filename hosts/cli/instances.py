"""The instance commands (``status``, ``list --url/--state``, ``history``, ``raise-event``,
``terminate``, ``purge``).

They talk to a server (``--url URL``, through the HTTP API) or to a state folder
(``--state DIR``, through the local host's status store and client). Both answer with the
API's JSON shapes, so the output is the same either way. Misuse (an unknown instance, bad
JSON, an unreachable server, a missing option) prints one line on stderr and exits with
status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from hosts.cli.apps import compile_app, load_app, read_json_option
from hosts.cli.errors import USAGE_ERROR, CliError
from hosts.cli.parser import API_KEY_ENV
from hosts.cli.wording import columns, one_line, shorten
from hosts.http import create_app
from hosts.local import FolderError, FolderState
from reactive import App
from reactive.hosting import Schema
from reactive.hosting.client import SeamClient

HTTP_TIMEOUT = 30.0
SERVER_ERROR = 1
RESULT_WIDTH = 120


# -- where the commands go: a server or a folder ---------------------------------------------


class Backend(Protocol):
    def get(self, instance_id: str, history: bool = False) -> dict[str, Any]: ...
    def list(self, params: dict[str, Any]) -> dict[str, Any]: ...
    def raise_event(
        self, instance_id: str, name: str, value: Any, request_id: str | None
    ) -> dict[str, Any]: ...
    def terminate(self, instance_id: str, reason: str) -> dict[str, Any]: ...
    def purge(self, instance_id: str) -> dict[str, Any]: ...
    def partitions(self) -> dict[str, Any]: ...
    def close(self) -> None: ...


class RemoteBackend:
    """A server's HTTP API through httpx."""

    def __init__(
        self, url: str, api_key: str | None, timeout: float = HTTP_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--url must start with http:// or https://, got {url!r}")
        headers = {"x-api-key": api_key} if api_key else {}
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise CliError(f"{self.url} did not answer in time", SERVER_ERROR) from None
        except httpx.HTTPError as exc:
            raise CliError(f"cannot reach {self.url}: {one_line(str(exc))}") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400:
            message = body.get("error") if isinstance(body, dict) else None
            if not message:
                message = f"{response.status_code} {response.reason_phrase}"
            if response.status_code == 401 and "API key" in message:
                message += f" (pass --api-key or set {API_KEY_ENV})"
            status = SERVER_ERROR if response.status_code >= 500 else USAGE_ERROR
            raise CliError(f"{message}", status)
        if not isinstance(body, dict):
            raise CliError(f"{self.url} answered {method} {path} with no JSON object", 1)
        return body

    @staticmethod
    def _instance(instance_id: str) -> str:
        return f"/api/instances/{quote(instance_id, safe='')}"

    def get(self, instance_id: str, history: bool = False) -> dict[str, Any]:
        params = {"history": "true"} if history else {}
        return self._call("GET", self._instance(instance_id), params=params)

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._call("GET", "/api/instances", params=params)

    def raise_event(
        self, instance_id: str, name: str, value: Any, request_id: str | None
    ) -> dict[str, Any]:
        headers = {"x-request-id": request_id} if request_id else {}
        path = f"{self._instance(instance_id)}/events/{quote(name, safe='')}"
        return self._call("POST", path, json=value, headers=headers)

    def terminate(self, instance_id: str, reason: str) -> dict[str, Any]:
        return self._call("POST", f"{self._instance(instance_id)}/terminate",
                          json={"reason": reason})

    def purge(self, instance_id: str) -> dict[str, Any]:
        return self._call("DELETE", self._instance(instance_id))

    def partitions(self) -> dict[str, Any]:
        return self._call("GET", "/api/partitions")

    def close(self) -> None:
        self.http.close()


class InProcess(httpx.BaseTransport):
    """Serves each request with an ASGI application in this process (one event loop per
    request: the instance commands make one or two)."""

    def __init__(self, app: Any) -> None:
        self.inner = httpx.ASGITransport(app=app, client=("127.0.0.1", 0))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        async def serve() -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(
                response.status_code, headers=response.headers, content=body, request=request
            )

        return asyncio.run(serve())


class LocalBackend:
    """A state folder, as a client of it (never its driver: whoever drives the folder,
    a server or ``reactive run``, processes what is sent): the same API application as a
    server's, served in this process over an in-process transport, so that a folder and a
    server answer alike."""

    def __init__(self, schema: Schema, folder: FolderState) -> None:
        self.folder = folder
        key = secrets.token_urlsafe(16)
        client = SeamClient(schema, folder.partitions, folder, folder)
        api = create_app(schema, client, folder, api_key=key, backlog=folder.backlog)
        self.remote = RemoteBackend("http://in-process", key, transport=InProcess(api))

    def get(self, instance_id: str, history: bool = False) -> dict[str, Any]:
        return self.remote.get(instance_id, history)

    def list(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.remote.list(params)

    def raise_event(
        self, instance_id: str, name: str, value: Any, request_id: str | None
    ) -> dict[str, Any]:
        return self.remote.raise_event(instance_id, name, value, request_id)

    def terminate(self, instance_id: str, reason: str) -> dict[str, Any]:
        return self.remote.terminate(instance_id, reason)

    def purge(self, instance_id: str) -> dict[str, Any]:
        return self.remote.purge(instance_id)

    def partitions(self) -> dict[str, Any]:
        return self.remote.partitions()

    def close(self) -> None:
        self.remote.close()
        self.folder.close()


def _folder_app_name(state: Path) -> str:
    """The application name a state folder was created for (its ``meta`` table)."""
    db = state / "state.db"
    if not db.is_file():
        raise CliError(f"--state {state}: not a state folder (no state.db)")
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
    except sqlite3.Error as exc:
        raise CliError(f"--state {state}: cannot read {db}: {exc}") from None
    if row is None:
        raise CliError(f"--state {state}: the folder names no application")
    return str(row[0])


def _open_folder(args: argparse.Namespace) -> LocalBackend:
    """The folder as a client: with the application given by ``--app``, else with an empty
    one of the folder's name (statuses, events and terminations need no operation
    classes)."""
    state = Path(args.state)
    if not state.is_dir():
        raise CliError(f"--state {args.state}: no such folder")
    app = load_app(args.app) if args.app else App(_folder_app_name(state))
    schema = compile_app(app)
    try:
        folder = FolderState(state, app.name, driver=False)
    except FolderError as exc:
        raise CliError(str(exc)) from None
    return LocalBackend(schema, folder)


@contextmanager
def _backend(args: argparse.Namespace) -> Iterator[Backend]:
    if args.url and args.state:
        raise CliError("give --url or --state, not both")
    backend: Backend
    if args.url:
        key = args.api_key or os.environ.get(API_KEY_ENV)
        backend = RemoteBackend(args.url, key)
    elif args.state:
        backend = _open_folder(args)
    else:
        raise CliError(f"{args.command}: give --url URL (a server) or --state DIR (a state folder)")
    try:
        yield backend
    finally:
        backend.close()


# -- output ----------------------------------------------------------------------------------


def _outcome(item: dict[str, Any]) -> str:
    if item.get("status") == "completed":
        return shorten(json.dumps(item.get("result"), ensure_ascii=False), RESULT_WIDTH)
    error = item.get("error")
    if isinstance(error, dict):
        return shorten(str(error.get("text") or error.get("message") or ""), RESULT_WIDTH)
    return ""


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


def _print_status(data: dict[str, Any]) -> None:
    rows = [
        ("instance", data.get("id")),
        ("name", data.get("name")),
        ("status", data.get("status")),
        ("created", data.get("created")),
        ("updated", data.get("updated")),
    ]
    if data.get("custom_status") is not None:
        rows.append(("custom status", json.dumps(data["custom_status"], ensure_ascii=False)))
    if data.get("status") == "completed":
        rows.append(("result", json.dumps(data.get("result"), ensure_ascii=False)))
    error = data.get("error")
    if isinstance(error, dict):
        rows.append(("error", error.get("text") or error.get("message")))
    waits = data.get("waiting_for")
    if waits:
        items = waits if isinstance(waits, list) else [waits]
        rows.append(("waiting for", "; ".join(_describe_wait(w) for w in items)))
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"{label + ':':<{width + 1}} {value}")
    if isinstance(error, dict) and error.get("traceback"):
        print(str(error["traceback"]).rstrip())


def _describe_wait(wait: Any) -> str:
    if isinstance(wait, dict):
        kind = wait.get("kind") or wait.get("type") or ""
        rest = ", ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v)}"
            for k, v in wait.items() if k not in ("kind", "type")
        )
        return f"{kind}: {rest}" if kind and rest else kind or rest
    return str(wait)


# -- the instance commands -------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    with _backend(args) as backend:
        data = backend.get(args.instance_id)
    if args.json:
        _print_json(data)
    else:
        _print_status(data)
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    if args.state and not args.url:
        raise CliError(
            "history: histories live in the process that drives the folder; ask its server "
            "with --url"
        )
    with _backend(args) as backend:
        data = backend.get(args.instance_id, history=True)
    history = data.get("history")
    if args.json:
        _print_json(history)
        return 0
    if history is None:
        print(f"{args.instance_id} is {data.get('status')}: histories are kept while an "
              "instance is live")
        return 0
    if not history:
        print(f"{args.instance_id}: no history rows")
    for n, row in enumerate(history, start=1):
        print(f"{n:>4}  {_describe_wait(row) if isinstance(row, dict) else json.dumps(row)}")
    return 0


def cmd_list_instances(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    for name in ("status", "name", "since", "until", "cursor"):
        value = getattr(args, name, None)
        if value:
            params[name] = value
    with _backend(args) as backend:
        data = backend.list(params)
    items = data.get("items", [])
    if args.json:
        _print_json(data)
        return 0
    if not items:
        print("no instances")
    else:
        id_width = max(len(str(i["id"])) for i in items)
        name_width = max(len(str(i["name"])) for i in items)
        for item in items:
            line = (
                f"{item['id']:<{id_width}}  {item['name']:<{name_width}}  "
                f"{item['status']:<10}  {item.get('created') or '':<24}  {_outcome(item)}"
            )
            print(line.rstrip())
    if data.get("next"):
        print(f"more: --cursor {data['next']}", file=sys.stderr)
    return 0


def cmd_raise_event(args: argparse.Namespace) -> int:
    value: Any = None
    if args.value is not None:
        value = read_json_option("--value", args.value)
    request_id = args.request_id or secrets.token_hex(8)
    with _backend(args) as backend:
        backend.raise_event(args.instance_id, args.name, value, request_id)
    print(f"raised {args.name} on {args.instance_id}")
    return 0


def cmd_terminate(args: argparse.Namespace) -> int:
    with _backend(args) as backend:
        backend.terminate(args.instance_id, args.reason or "")
    print(f"terminating {args.instance_id}")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    with _backend(args) as backend:
        backend.purge(args.instance_id)
    print(f"purged {args.instance_id}")
    return 0


def cmd_partitions(args: argparse.Namespace) -> int:
    with _backend(args) as backend:
        data = backend.partitions()
    rows = data.get("partitions", [])
    if args.json:
        _print_json(data)
        return 0
    if not rows:
        print("no partition has committed yet")
        return 0
    table = [("partition", "committed at", "next timer", "backlog", "live runs", "snapshot",
              "dead letters", "held")]
    for p in rows:
        backlog = p.get("backlog")
        table.append((
            str(p["partition"]), p.get("committed_at") or "", p.get("next_due") or "",
            "" if backlog is None else str(backlog), str(p.get("live_runs", 0)),
            f"{p.get('snapshot_bytes', 0)} B", str(p.get("dead_letters", 0)),
            str(p.get("held", 0)),
        ))
    for line in columns(table):
        print(line.rstrip())
    for p in rows:
        if p.get("held"):
            # a reordering broker holds a message for a moment; one that stays is a gap
            print(f"partition {p['partition']} holds {p['held']} message(s) since "
                  f"{p.get('held_since')}, waiting for an earlier one from the same sender; "
                  "if it stays, that message was lost or parked (a dead-letter queue)",
                  file=sys.stderr)
    return 0
