"""The direct routes for a start and a wait (hosts/http/fast.py) answer exactly as the
FastAPI routes they stand in front of: the same request sequence, sent once to an app
with them and once to an app without, gets the same status codes, bodies and headers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from fastapi.testclient import TestClient

import hosts.http.app as http_app
from hosts.http.fast import FastRoutes, _pairs
from tests.http.conftest import KEY, api_over, driven
from tests.http.opsapp import app as ops_app

REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/orchestrations/Greet?id=a1", {"json": {"name": "ada"}}),
    ("POST", "/api/orchestrations/Greet?id=a1", {"json": {"name": "ada"}}),  # again
    ("POST", "/api/orchestrations/Greet?wait=60",
     {"json": {"name": "bo", "times": 2}, "headers": {"x-instance-id": "a2"}}),
    ("POST", "/api/orchestrations/Greet?id=a3&wait=60.5", {"json": {"name": "cy"}}),
    ("POST", "/api/orchestrations/Other?id=a1", {"json": {}}),  # the id is taken
    ("POST", "/api/orchestrations/Approval?id=a4&wait=0", {"json": {"request": "r"}}),
    ("POST", "/api/orchestrations/Approval?id=a5", {}),  # no body: the fields' defaults
    ("POST", "/api/orchestrations/Gret?id=a6", {"json": {}}),
    ("POST", "/api/orchestrations/Add?id=a6", {"json": {}}),
    ("POST", "/api/orchestrations/Greet?id=a6", {"content": b"{nope"}),
    ("POST", "/api/orchestrations/Greet?id=a6", {"content": b"[1]"}),
    ("POST", "/api/orchestrations/Greet?id=a6", {"json": {"name": 5}}),
    ("POST", "/api/orchestrations/Greet?id=%01", {"json": {"name": "x"}}),
    ("POST", "/api/orchestrations/Greet?id=a7&wait=soon", {"json": {"name": "x"}}),
    ("POST", "/api/orchestrations/Greet?id=a7&wait=-1", {"json": {"name": "x"}}),
    ("POST", "/api/orchestrations/Greet?id=a7&wait=1e9", {"json": {"name": "x"}}),
    ("POST", "/api/orchestrations/Greet?id=a8&id=a9", {"json": {"name": "x"}}),
    ("POST", "/api/orchestrations/Greet?id=", {"json": {"name": "x"}}),
    ("POST", "/api/orchestrations/Greet/?id=a10", {"json": {"name": "x"}}),
    ("GET", "/api/orchestrations/Greet?id=a1", {}),
    ("GET", "/api/instances/a1/wait?timeout=60", {}),
    ("GET", "/api/instances/a4/wait?timeout=0", {}),
    ("GET", "/api/instances/a4/wait?timeout=0.2", {}),
    ("GET", "/api/instances/nope/wait?timeout=0", {}),
    ("GET", "/api/instances/a1/wait?timeout=later", {}),
    ("GET", "/api/instances/a1/wait?timeout=-1", {}),
    ("GET", "/api/instances/a1/wait?timeout=60&extra=1", {}),
    ("GET", "/api/instances/a1/wait", {}),
]

CHANGING = ("created", "updated")  # times the two runs cannot share


def _comparable(response: Any) -> tuple[int, Any, str | None, str]:
    body = response.json()
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in CHANGING or isinstance(v, bool)}
    return (response.status_code, body, response.headers.get("location"),
            response.headers["content-type"])


@contextmanager
def _client(tmp: Path, direct: bool, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with monkeypatch.context() as patch, driven(ops_app, tmp) as host:
        if not direct:  # no direct routes: every request goes through FastAPI
            patch.setattr(http_app, "_fast_routes", lambda api: FastRoutes(http_app._fast_error))
        with TestClient(api_over(host, KEY), headers={"x-api-key": KEY}) as http:
            yield http


def test_direct_routes_answer_as_fastapi_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers: dict[bool, list[Any]] = {}
    for direct in (False, True):
        with _client(tmp_path / str(direct), direct, monkeypatch) as http:
            answers[direct] = [_comparable(http.request(method, url, **kwargs))
                               for method, url, kwargs in REQUESTS]
            metrics = http.get("/metrics").text
            assert ('reactive_http_requests_total{method="POST",'
                    'route="/api/orchestrations/{name}",status="202"}') in metrics
            assert ('reactive_http_requests_total{method="GET",'
                    'route="/api/instances/{instance_id}/wait",status="200"}') in metrics
    for request, fastapi, direct in zip(REQUESTS, answers[False], answers[True], strict=True):
        assert fastapi == direct, request
    codes = [answer[0] for answer in answers[True]]
    assert codes[:6] == [202, 202, 200, 200, 409, 202]


def _scope(method: str, path: str, query: bytes = b"") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "query_string": query,
            "root_path": "", "headers": []}


def test_usual_requests_take_the_direct_routes(tmp_path: Path) -> None:
    with driven(ops_app, tmp_path) as host:
        app = api_over(host, KEY)
    routes = http_app._fast_routes(app.state.api)
    taken = [
        _scope("POST", "/api/orchestrations/Greet"),
        _scope("POST", "/api/orchestrations/Greet", b"id=x&wait=60"),
        _scope("GET", "/api/instances/x/wait", b"timeout=2.5"),
    ]
    passed_on = [
        _scope("POST", "/api/orchestrations/Greet", b"wait=1e3"),
        _scope("POST", "/api/orchestrations/Greet", b"id=a&id=b"),
        _scope("POST", "/api/orchestrations/Greet", b"other=1"),
        _scope("POST", "/api/orchestrations/a/b"),
        _scope("PUT", "/api/orchestrations/Greet"),
        _scope("GET", "/api/instances/x"),
        {**_scope("POST", "/api/orchestrations/Greet"), "root_path": "/base"},
    ]
    assert all(routes.match(scope) is not None for scope in taken)
    assert all(routes.match(scope) is None for scope in passed_on)


def test_query_pairs_are_read_as_starlette_reads_them() -> None:
    queries = ["id=a&wait=1", "a", "a=&b", "&&x=1&", "x==2", "id=a;b", "=v", "a=1&a=2",
               "id=%41b", "id=a+b", "id=%zz"]
    for query in queries:
        assert _pairs(query) == parse_qsl(query, keep_blank_values=True), query
