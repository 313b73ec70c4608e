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
        bearer = {"authorization": "Bearer k1"}
        assert http.get("/api/partitions", headers=bearer).status_code == 200
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


def test_idempotent_start_and_conflicting_type(fake: FakeEnv) -> None:
    first = fake.http.post("/api/orchestrations/Greet", json={"name": "a"},
                           headers={"x-instance-id": "same"})
    assert first.status_code == 202 and first.json()["created"] is True
    again = fake.http.post("/api/orchestrations/Greet?id=same", json={"name": "a"})
    assert again.status_code == 202 and again.json()["created"] is False
    other = fake.http.post("/api/orchestrations/Other?id=same")
    assert other.status_code == 409 and "taken by Greet" in other.json()["error"]
    assert fake.http.post("/api/orchestrations/Other?id=a%2Fb").status_code == 400


def test_event_terminate_purge(fake: FakeEnv) -> None:
    fake.http.post("/api/orchestrations/Approval?id=ap", json={"request": "r1"})
    live = fake.http.get("/api/instances/ap/wait?timeout=0")
    assert live.status_code == 202 and live.json()["status"] == "running"
    purge = fake.http.delete("/api/instances/ap")
    assert purge.status_code == 409 and "terminate it first" in purge.json()["error"]
    r = fake.http.post("/api/instances/ap/events/decision", json="yes",
                       headers={"x-request-id": "req-1"})
    assert r.status_code == 202, r.text
    assert fake.client.events[-1] == ("ap", "decision", "yes", "req-1")
    done = fake.http.get("/api/instances/ap/wait?timeout=5").json()
    assert done["result"] == "r1: yes"
    late = fake.http.post("/api/instances/ap/events/decision", json="no")
    assert late.status_code == 409 and "already completed" in late.json()["error"]

    fake.http.post("/api/orchestrations/Approval?id=ap2", json={"request": "r2"})
    r = fake.http.post("/api/instances/ap2/terminate", json={"reason": "changed my mind"})
    assert r.status_code == 202, r.text
    body = fake.http.get("/api/instances/ap2/wait?timeout=5").json()
    assert body["status"] == "terminated"
    assert "changed my mind" in body["error"]["text"]
    assert fake.http.delete("/api/instances/ap2").json() == {"id": "ap2", "purged": True}
    assert fake.http.get("/api/instances/ap2").status_code == 404
    assert fake.http.delete("/api/instances/ap2").status_code == 404


def test_failure_carries_error(fake: FakeEnv) -> None:
    fake.http.post("/api/orchestrations/Broken?id=b")
    body = fake.http.get("/api/instances/b/wait?timeout=5").json()
    assert body["status"] == "failed"
    assert body["error"]["text"] == "RuntimeError: broken on purpose"


def test_list_filters_and_paging(fake: FakeEnv) -> None:
    for n in range(5):
        fake.http.post(f"/api/orchestrations/Greet?id=g{n}", json={"name": str(n)})
    fake.http.post("/api/orchestrations/Approval?id=a0", json={"request": "x"})
    names = {i["id"] for i in fake.http.get("/api/instances?name=Greet").json()["items"]}
    assert names == {f"g{n}" for n in range(5)}
    running = fake.http.get("/api/instances?status=running").json()["items"]
    assert [i["id"] for i in running] == ["a0"]
    seen, cursor = [], None
    while True:
        page = fake.http.get("/api/instances", params={
            "name": "Greet", "limit": 2, **({"cursor": cursor} if cursor else {})
        }).json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [f"g{n}" for n in range(5)]
    created = fake.status.get("g2")
    assert created is not None
    assert fake.http.get("/api/instances", params={"since": created.created + 3600}).json() == {
        "items": [], "next": None
    }
    until = fake.http.get("/api/instances", params={"until": "2000-01-01T00:00:00Z"}).json()
    assert until["items"] == []


def test_perform_reads_and_updates(fake: FakeEnv) -> None:
    r = fake.http.post("/api/perform/Add", json={"counter": "c", "amount": 3})
    assert r.status_code == 200 and r.json() == {"result": 3}
    assert fake.http.post("/api/perform/Get", json={"counter": "c"}).json() == {"result": 3}
    missing = fake.http.post("/api/perform/Get", json={"counter": "nobody"})
    assert missing.status_code == 404, missing.text
    bad = fake.http.post("/api/perform/Add", json={"counter": "c", "amount": -1})
    assert bad.status_code == 409 and "amount must not be negative" in bad.json()["error"]
    wrong = fake.http.post("/api/perform/Add", json={"counter": "c", "amount": "x"})
    assert wrong.status_code == 422 and "amount" in wrong.json()["error"]
    # the perform's own instances are purged once answered
    assert fake.http.get("/api/instances?name=ClientPerform").json()["items"] == []


def test_app_partitions_metrics_openapi(fake: FakeEnv) -> None:
    described = fake.http.get("/api/app").json()
    assert described["name"] == "ops"
    assert [o["name"] for o in described["orchestrations"]] == [
        "Approval", "Broken", "Greet", "Other"
    ]
    assert "name" in described["orchestrations"][2]["schema"]["properties"]
    fake.http.post("/api/orchestrations/Greet?id=m1", json={"name": "m"})
    parts = fake.http.get("/api/partitions").json()["partitions"]
    assert [p["partition"] for p in parts] == [0, 1]
    text = fake.http.get("/metrics").text
    assert 'reactive_instances{status="completed"} 1.0' in text
    assert ('reactive_http_requests_total{method="POST",route="/api/orchestrations/{name}",'
            'status="202"} 1.0') in text
    spec = fake.http.get("/openapi.json").json()
    assert "/api/instances/{instance_id}/wait" in spec["paths"]


def test_history_and_waits_come_from_the_callables() -> None:
    status = DictStatusStore()
    client = EmulatorClient2(ops_app, status)
    app = create_app(
        ops_app.compile(), client, status, api_key="k",
        history=lambda iid: [{"event": "started", "id": iid}],
        describe=lambda iid: [{"kind": "event", "name": "decision"}],
    )
    with TestClient(app, headers={"x-api-key": "k"}) as http:
        http.post("/api/orchestrations/Approval?id=w", json={"request": "r"})
        body = http.get("/api/instances/w?history=true").json()
        assert body["history"] == [{"event": "started", "id": "w"}]
        assert body["waiting_for"] == [{"kind": "event", "name": "decision"}]
    app = create_app(ops_app.compile(), client, status, api_key="k")
    with TestClient(app, headers={"x-api-key": "k"}) as http:
        r = http.get("/api/instances/w?history=true")
        assert r.status_code == 501 and "histories" in r.json()["error"]
