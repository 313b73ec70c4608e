"""The HTTP API over a real LocalHost: every endpoint, idempotency, auth, and bad input of
every shape answered as one-line JSON errors."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from reactive.core.messages import Tick
from reactive.hosting import envelope
from reactive.hosting.seams import StatusRecord
from tests.http.conftest import Env, api_over, driven
from tests.http.opsapp import app as ops_app


def test_start_then_status_and_wait(env: Env) -> None:
    r = env.http.post("/api/orchestrations/Greet?id=g1", json={"name": "ada", "times": 2})
    assert r.status_code == 202, r.text
    assert r.headers["location"] == "/api/instances/g1"
    assert r.json()["id"] == "g1"
    r = env.http.get("/api/instances/g1/wait", params={"timeout": 60})
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "completed" and body["result"] == "hello ada hello ada"
    assert env.http.get("/api/instances/g1").json()["done"] is True


def test_error_shapes_are_one_line_json(env: Env) -> None:
    cases = [
        (env.http.post("/api/orchestrations/Gret", json={}), 404, "did you mean Greet"),
        (env.http.post("/api/orchestrations/Add", json={}), 404, "not an orchestration"),
        (env.http.post("/api/orchestrations/Greet", content=b"{nope"), 400, "not valid JSON"),
        (env.http.post("/api/orchestrations/Greet", json=[1]), 422, "JSON object"),
        (env.http.post("/api/orchestrations/Greet", json={"name": 5}), 422, "name: Input"),
        (env.http.post("/api/orchestrations/Greet", json={}), 422, "name: Field required"),
        (env.http.get("/api/instances/nope"), 404, "no instance"),
        (env.http.get("/api/instances?limit=0"), 422, "limit"),
        (env.http.get("/api/instances?status=sleeping"), 422, "status"),
        (env.http.get("/api/instances?since=yesterday"), 422, "since"),
        (env.http.get("/api/instances/x/wait?timeout=-1"), 422, "timeout"),
        (env.http.get("/api/nothing"), 404, "Not Found"),
        (env.http.post("/api/perform/Greet", json={}), 404, "orchestration"),
    ]
    for response, code, text in cases:
        assert response.status_code == code, (response.status_code, response.text)
        body = response.json()
        assert set(body) >= {"error"} and "\n" not in body["error"], body
        assert text in body["error"], body


def test_auth_required_by_default() -> None:
    with driven(ops_app, None) as host, TestClient(api_over(host, "k1")) as http:
        for r in (http.get("/api/instances"), http.get("/metrics"),
                  http.get("/api/instances", headers={"x-api-key": "k2"})):
            assert r.status_code == 401 and "API key" in r.json()["error"]
        assert http.get("/api/instances", headers={"x-api-key": "k1"}).status_code == 200
        bearer = {"authorization": "Bearer k1"}
        assert http.get("/api/partitions", headers=bearer).status_code == 200
        assert http.get("/").status_code == 200  # the dashboard page holds no data
        spec = http.get("/openapi.json").json()
        scheme = spec["components"]["securitySchemes"]["APIKeyHeader"]
        assert scheme["in"] == "header" and scheme["name"] == "x-api-key"
        start = spec["paths"]["/api/orchestrations/{name}"]["post"]
        assert start["security"] == [{"APIKeyHeader": []}]


def test_no_key_answers_loopback_only() -> None:
    with driven(ops_app, None) as host:
        app = api_over(host, None)
        check_loopback(app)


def check_loopback(app: Any) -> None:
    with TestClient(app, client=("127.0.0.1", 5000)) as http:
        assert http.get("/api/instances").status_code == 200
    with TestClient(app, client=("10.1.2.3", 5000)) as http:
        r = http.get("/api/instances")
        assert r.status_code == 403 and "loopback" in r.json()["error"]


def test_idempotent_start_and_conflicting_type(env: Env) -> None:
    first = env.http.post("/api/orchestrations/Greet", json={"name": "a"},
                           headers={"x-instance-id": "same"})
    assert first.status_code == 202 and first.json()["created"] is True
    again = env.http.post("/api/orchestrations/Greet?id=same", json={"name": "a"})
    assert again.status_code == 202 and again.json()["created"] is False
    other = env.http.post("/api/orchestrations/Other?id=same")
    assert other.status_code == 409 and "taken by Greet" in other.json()["error"]
    assert env.http.post("/api/orchestrations/Other?id=a%2Fb").status_code == 400


def running(http: TestClient, instance_id: str) -> dict[str, Any]:
    """The instance's status once the host has started it (it may be pending at first)."""
    for _ in range(2000):
        body: dict[str, Any] = http.get(f"/api/instances/{instance_id}").json()
        if body["status"] != "pending":
            return body
        time.sleep(0.005)
    raise AssertionError(f"{instance_id} stayed pending")


def test_event_terminate_purge(env: Env) -> None:
    env.http.post("/api/orchestrations/Approval?id=ap", json={"request": "r1"})
    assert running(env.http, "ap")["status"] == "running"
    live = env.http.get("/api/instances/ap/wait?timeout=0")
    assert live.status_code == 202 and live.json()["status"] == "running"
    purge = env.http.delete("/api/instances/ap")
    assert purge.status_code == 409 and "terminate it first" in purge.json()["error"]
    r = env.http.post("/api/instances/ap/events/decision", json="yes",
                       headers={"x-request-id": "req-1"})
    assert r.status_code == 202, r.text
    done = env.http.get("/api/instances/ap/wait?timeout=60").json()
    assert done["result"] == "r1: yes"
    late = env.http.post("/api/instances/ap/events/decision", json="no")
    assert late.status_code == 409 and "already completed" in late.json()["error"]

    env.http.post("/api/orchestrations/Approval?id=ap2", json={"request": "r2"})
    running(env.http, "ap2")
    r = env.http.post("/api/instances/ap2/terminate", json={"reason": "changed my mind"})
    assert r.status_code == 202, r.text
    body = env.http.get("/api/instances/ap2/wait?timeout=60").json()
    assert body["status"] == "terminated"
    assert "changed my mind" in body["error"]["text"]
    assert env.http.delete("/api/instances/ap2").json() == {"id": "ap2", "purged": True}
    assert env.http.get("/api/instances/ap2").status_code == 404
    assert env.http.delete("/api/instances/ap2").status_code == 404


def test_request_ids_make_events_idempotent(env: Env) -> None:
    env.http.post("/api/orchestrations/Votes?id=v")
    running(env.http, "v")
    for rid, value in (("r1", "a"), ("r1", "a"), ("r2", "b")):
        r = env.http.post("/api/instances/v/events/vote", json=value,
                          headers={"x-request-id": rid})
        assert r.status_code == 202, r.text
    assert env.http.get("/api/instances/v/wait?timeout=30").json()["result"] == ["a", "b"]


def test_failure_carries_error(env: Env) -> None:
    env.http.post("/api/orchestrations/Broken?id=b")
    body = env.http.get("/api/instances/b/wait?timeout=60").json()
    assert body["status"] == "failed"
    assert body["error"]["text"] == "RuntimeError: broken on purpose"


def test_list_filters_and_paging(env: Env) -> None:
    for n in range(5):
        env.http.post(f"/api/orchestrations/Greet?id=g{n}", json={"name": str(n)})
    env.http.post("/api/orchestrations/Approval?id=a0", json={"request": "x"})
    for n in range(5):
        assert env.http.get(f"/api/instances/g{n}/wait?timeout=60").status_code == 200
    assert running(env.http, "a0")["status"] == "running"
    names = {i["id"] for i in env.http.get("/api/instances?name=Greet").json()["items"]}
    assert names == {f"g{n}" for n in range(5)}
    live = env.http.get("/api/instances?status=running").json()["items"]
    assert [i["id"] for i in live] == ["a0"]
    seen, cursor = [], None
    while True:
        page = env.http.get("/api/instances", params={
            "name": "Greet", "limit": 2, **({"cursor": cursor} if cursor else {})
        }).json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [f"g{n}" for n in range(5)]
    created = env.host.status.get("g2")
    assert created is not None
    assert env.http.get("/api/instances", params={"since": created.created + 3600}).json() == {
        "items": [], "next": None
    }
    until = env.http.get("/api/instances", params={"until": "2000-01-01T00:00:00Z"}).json()
    assert until["items"] == []


def test_perform_reads_and_updates(env: Env) -> None:
    r = env.http.post("/api/perform/Add", json={"counter": "c", "amount": 3})
    assert r.status_code == 200 and r.json() == {"result": 3}
    assert env.http.post("/api/perform/Get", json={"counter": "c"}).json() == {"result": 3}
    missing = env.http.post("/api/perform/Get", json={"counter": "nobody"})
    assert missing.status_code == 404, missing.text
    bad = env.http.post("/api/perform/Add", json={"counter": "c", "amount": -1})
    assert bad.status_code == 409 and "amount must not be negative" in bad.json()["error"]
    wrong = env.http.post("/api/perform/Add", json={"counter": "c", "amount": "x"})
    assert wrong.status_code == 422 and "amount" in wrong.json()["error"]
    # the perform's own instances are purged once answered
    assert env.http.get("/api/instances?name=ClientPerform").json()["items"] == []


def test_app_partitions_metrics_openapi(env: Env) -> None:
    described = env.http.get("/api/app").json()
    assert described["name"] == "ops"
    assert [o["name"] for o in described["orchestrations"]] == [
        "Approval", "Broken", "Greet", "Nap", "Other", "Votes"
    ]
    assert "name" in described["orchestrations"][2]["schema"]["properties"]
    env.http.post("/api/orchestrations/Greet?id=m1", json={"name": "m"})
    assert env.http.get("/api/instances/m1/wait?timeout=60").status_code == 200
    parts = env.http.get("/api/partitions").json()["partitions"]
    owner = env.http.get("/api/instances/m1").json()["partition"]
    assert owner in [p["partition"] for p in parts]
    assert set(parts[0]) >= {"commit", "committed_at", "snapshot_bytes", "dead_letters",
                             "live_runs", "backlog"}
    assert all(p["backlog"] == 0 for p in parts)  # m1 is done: nothing waits
    text = env.http.get("/metrics").text
    assert 'reactive_instances{status="completed"} 1.0' in text
    assert f'reactive_partition_backlog{{partition="{owner}"}} 0.0' in text
    assert ('reactive_http_requests_total{method="POST",route="/api/orchestrations/{name}",'
            'status="202"} 1.0') in text
    spec = env.http.get("/openapi.json").json()
    assert "/api/instances/{instance_id}/wait" in spec["paths"]


def test_a_gap_in_a_senders_stream_shows_in_partitions_and_metrics(env: Env) -> None:
    """A message from partition 1 numbered 5 while 1 to 4 never came: partition 0 holds
    it, and the API, the metrics and the dashboard's data say so."""
    folder = env.host.folder
    assert folder is not None
    env.http.post("/api/orchestrations/Greet?id=g0", json={"name": "m"})
    assert env.http.get("/api/instances/g0/wait?timeout=60").status_code == 200
    parts = env.http.get("/api/partitions").json()["partitions"]
    assert all(p["held"] == 0 and p["held_since"] is None for p in parts)
    before = time.time()
    ahead = envelope.from_partition(env.host.epoch, 1, 5, Tick(dest=0), env.host.schema)
    folder.append_raw(0, ahead.data)

    def partition_0() -> dict[str, Any]:
        parts = env.http.get("/api/partitions").json()["partitions"]
        return next(p for p in parts if p["partition"] == 0)

    deadline = time.monotonic() + 30
    while partition_0()["held"] != 1:
        assert time.monotonic() < deadline, partition_0()
        time.sleep(0.05)
    since = datetime.fromisoformat(partition_0()["held_since"].replace("Z", "+00:00"))
    assert since.timestamp() >= before - 0.001
    text = env.http.get("/metrics").text
    assert 'reactive_partition_held_messages{partition="0"} 1.0' in text
    assert 'reactive_partition_held_since_timestamp_seconds{partition="0"}' in text


def test_history_and_waits_come_from_the_callables(tmp_path: Path) -> None:
    with driven(ops_app, tmp_path) as host:
        app = api_over(
            host, "k",
            history=lambda iid: [{"event": "started", "id": iid}],
            describe=lambda iid: [{"kind": "event", "name": "decision"}],
        )
        with TestClient(app, headers={"x-api-key": "k"}) as http:
            http.post("/api/orchestrations/Approval?id=w", json={"request": "r"})
            running(http, "w")
            body = http.get("/api/instances/w?history=true").json()
            assert body["history"] == [{"event": "started", "id": "w"}]
            assert body["waiting_for"] == [{"kind": "event", "name": "decision"}]
        check_no_history(api_over(host, "k"))


def check_no_history(app: Any) -> None:
    with TestClient(app, headers={"x-api-key": "k"}) as http:
        r = http.get("/api/instances/w?history=true")
        assert r.status_code == 501 and "histories" in r.json()["error"]


def test_start_with_wait_answers_with_the_result(env: Env) -> None:
    """?wait= returns the finished status in the start's own response: for a new id given
    or not, for an id that already finished, and 202 for one still live at the timeout."""
    r = env.http.post("/api/orchestrations/Greet?wait=60", json={"name": "w"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "completed" and body["result"] == "hello w"
    assert r.headers["location"] == f"/api/instances/{body['id']}"
    again = env.http.post(f"/api/orchestrations/Greet?id={body['id']}&wait=60",
                          json={"name": "w"})
    assert again.status_code == 200 and again.json()["result"] == "hello w"
    failed = env.http.post("/api/orchestrations/Broken?id=bw&wait=60")
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    assert "broken on purpose" in failed.json()["error"]["text"]
    live = env.http.post("/api/orchestrations/Approval?id=aw&wait=0.2", json={"request": "q"})
    assert live.status_code == 202 and live.json()["created"] is True
    taken = env.http.post("/api/orchestrations/Other?id=aw&wait=5")
    assert taken.status_code == 409 and "taken by Approval" in taken.json()["error"]
    env.http.post("/api/instances/aw/events/decision", json="yes")
    done = env.http.post("/api/orchestrations/Approval?id=aw&wait=60", json={"request": "q"})
    assert done.status_code == 200 and done.json()["result"] == "q: yes"
    served: Any = env.http.app
    assert served.state.api.watcher.waiting == {}  # no wait left behind


def test_a_start_retried_after_its_message_was_lost_runs(env: Env) -> None:
    """A crash can leave a start's pending record durable without its message (a burst
    commits before its activities run): starting the same id again must run it."""
    now = time.time()
    assert env.host.status.put_pending(StatusRecord("lost", "Greet", "pending", 0, now, now))
    r = env.http.post("/api/orchestrations/Greet?id=lost&wait=5", json={"name": "eve"})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "completed" and r.json()["result"] == "hello eve"
