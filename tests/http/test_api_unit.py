"""The HTTP layer over a fake host: shapes of requests, responses and errors."""

from __future__ import annotations

from fastapi.testclient import TestClient

from hosts.http import create_app
from tests.http.conftest import FakeEnv
from tests.http.fakes import DictStatusStore, EmulatorClient2
from tests.http.opsapp import app as ops_app


def test_start_then_status_and_wait(fake: FakeEnv) -> None:
    r = fake.http.post("/api/orchestrations/Greet?id=g1", json={"name": "ada", "times": 2})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == "/api/instances/g1"
    assert r.json()["id"] == "g1"
    r = fake.http.get("/api/instances/g1/wait", params={"timeout": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "completed" and body["result"] == "hello ada hello ada"
    assert fake.http.get("/api/instances/g1").json()["done"] is True


def test_error_shapes_are_one_line_json(fake: FakeEnv) -> None:
    cases = [
        (fake.http.post("/api/orchestrations/Gret", json={}), 404, "did you mean Greet"),
        (fake.http.post("/api/orchestrations/Add", json={}), 404, "not an orchestration"),
        (fake.http.post("/api/orchestrations/Greet", content=b"{nope"), 400, "not valid JSON"),
        (fake.http.post("/api/orchestrations/Greet", json=[1]), 422, "JSON object"),
        (fake.http.post("/api/orchestrations/Greet", json={"name": 5}), 422, "name: Input"),
        (fake.http.post("/api/orchestrations/Greet", json={}), 422, "name: Field required"),
        (fake.http.get("/api/instances/nope"), 404, "no instance"),
        (fake.http.get("/api/instances?limit=0"), 422, "limit"),
        (fake.http.get("/api/instances?status=sleeping"), 422, "status"),
        (fake.http.get("/api/instances?since=yesterday"), 422, "since"),
        (fake.http.get("/api/instances/x/wait?timeout=-1"), 422, "timeout"),
        (fake.http.get("/api/nothing"), 404, "Not Found"),
        (fake.http.post("/api/perform/Greet", json={}), 404, "orchestration"),
    ]
    for response, code, text in cases:
        assert response.status_code == code, (response.status_code, response.text)
        body = response.json()
        assert set(body) >= {"error"} and "\n" not in body["error"], body
        assert text in body["error"], body


def test_auth_required_by_default() -> None:
    status = DictStatusStore()
    client = EmulatorClient2(ops_app, status)
    app = create_app(ops_app.compile(), client, status, api_key="k1")
    with TestClient(app) as http:
        for r in (http.get("/api/instances"), http.get("/metrics"),
                  http.get("/api/instances", headers={"x-api-key": "k2"})):
            assert r.status_code == 401 and "API key" in r.json()["error"]
        assert http.get("/api/instances", headers={"x-api-key": "k1"}).status_code == 200
        assert http.get("/api/partitions", headers={"authorization": "Bearer k1"}).status_code == 200
        assert http.get("/").status_code == 200  # the dashboard page holds no data
        assert http.get("/openapi.json").status_code == 200


def test_no_key_answers_loopback_only() -> None:
    status = DictStatusStore()
    client = EmulatorClient2(ops_app, status)
    app = create_app(ops_app.compile(), client, status, api_key=None)
    with TestClient(app, client=("127.0.0.1", 5000)) as http:
        assert http.get("/api/instances").status_code == 200
    with TestClient(app, client=("10.1.2.3", 5000)) as http:
        r = http.get("/api/instances")
        assert r.status_code == 403 and "loopback" in r.json()["error"]
