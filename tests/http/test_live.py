"""What a live instance waits for and its history rows, read from a LocalHost's warm
partitions by the inspector ``reactive serve`` gives the API."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from hosts.http.live import local_inspector
from tests.http.conftest import api_over, driven
from tests.http.opsapp import app as ops_app
from tests.http.test_api import running


def test_waits_and_history_of_live_instances(tmp_path: Path) -> None:
    with driven(ops_app, tmp_path) as host:
        history, describe = local_inspector(host)
        app = api_over(host, "k", history=history, describe=describe)
        with TestClient(app, headers={"x-api-key": "k"}) as http:
            http.post("/api/orchestrations/Approval?id=ap", json={"request": "r"})
            body = running(http, "ap")
            assert body["waiting_for"] == ["event 'decision'"]
            assert http.get("/api/instances/ap?history=true").json()["history"] == [
                {"n": 0, "kind": "wait", "event": "decision"}
            ]
            http.post("/api/instances/ap/events/decision", json="yes")
            assert http.get("/api/instances/ap/wait?timeout=60").json()["result"] == "r: yes"
            done = http.get("/api/instances/ap?history=true").json()
            assert done["history"] is None and "waiting_for" not in done

            http.post("/api/orchestrations/Nap?id=nap", json={"seconds": 3600})
            for _ in range(2000):
                waits = http.get("/api/instances/nap").json().get("waiting_for") or []
                if waits and waits[0].startswith("timer due at "):
                    break
                time.sleep(0.005)
            assert len(waits) == 1 and waits[0].startswith("timer due at "), waits
            rows = http.get("/api/instances/nap?history=true").json()["history"]
            assert rows[0] == {"n": 0, "kind": "perform", "operation": "Greet",
                               "digest": rows[0]["digest"], "ok": True,
                               "result": "hello nap"}
            assert rows[1]["kind"] == "sleep" and rows[1]["detail"] == "3600.0"


def test_records_reader_without_the_hosts_own_describe(tmp_path: Path) -> None:
    """Hosts without ``describe``: the waits come from the records, as data."""
    with driven(ops_app, tmp_path) as host:
        history, describe = local_inspector(_WithoutDescribe(host))
        app = api_over(host, "k", history=history, describe=describe)
        with TestClient(app, headers={"x-api-key": "k"}) as http:
            http.post("/api/orchestrations/Approval?id=ap", json={"request": "r"})
            body = running(http, "ap")
            assert body["waiting_for"] == [{"kind": "event", "name": "decision", "call": 0}]


class _WithoutDescribe:
    def __init__(self, host: object) -> None:
        self._host = host

    def __getattr__(self, name: str) -> object:
        if name == "describe":
            raise AttributeError(name)
        return getattr(self._host, name)


def test_waits_are_answered_by_the_hosts_commits(tmp_path: Path) -> None:
    """With polling all but off, a wait still ends: the folder's commits report it."""
    with driven(ops_app, tmp_path) as host:
        app = api_over(host, "k")
        app.state.api.watcher.notified(poll=3600)
        with TestClient(app, headers={"x-api-key": "k"}) as http:
            r = http.post("/api/orchestrations/Greet?id=told&wait=60", json={"name": "t"})
            assert r.status_code == 200 and r.json()["result"] == "hello t"
            http.post("/api/orchestrations/Approval?id=told-2", json={"request": "q"})
            running(http, "told-2")
            http.post("/api/instances/told-2/events/decision", json="fine")
            done = http.get("/api/instances/told-2/wait?timeout=60")
            assert done.status_code == 200 and done.json()["result"] == "q: fine"
