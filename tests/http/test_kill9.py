"""``kill -9`` of ``reactive serve`` while starts are in flight loses no acknowledged
start: every start answered 202 (or 200 with ``?wait=``) is found after a restart on the
same state folder, and finishes there; starting it again is a no-op."""

from __future__ import annotations

import random
import threading
import time
import uuid
from pathlib import Path

import httpx

from hosts.bench.workloads import expected_sequence
from tests.http.test_serve import Served, serve, stop

APP = "hosts.bench.workloads:app"


def _client(served: Served, acked: list[str], lock: threading.Lock, stopped: threading.Event,
            wait: bool) -> None:
    """Start instances one after another until the server dies; note each acknowledged."""
    with httpx.Client(base_url=served.url, timeout=30,
                      headers={"x-api-key": "serve-test-key"}) as http:
        while not stopped.is_set():
            iid = uuid.uuid4().hex
            params = {"id": iid, "wait": "30"} if wait else {"id": iid}
            try:
                r = http.post("/api/orchestrations/HelloSequence", params=params, json={})
            except httpx.HTTPError:
                return  # the server is gone: this start was not acknowledged
            if r.status_code in (200, 202):
                with lock:
                    acked.append(iid)


def test_kill_9_loses_no_acknowledged_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rng = random.Random(11)
    acked: list[str] = []
    for _ in range(2):  # the second round kills a server that recovered the first's state
        served = serve(state, app=APP)
        lock, stopped = threading.Lock(), threading.Event()
        clients = [threading.Thread(target=_client, args=(served, acked, lock, stopped, i % 2 == 0))
                   for i in range(8)]
        for client in clients:
            client.start()
        deadline = time.monotonic() + 60
        target = len(acked) + 20 + rng.randrange(40)
        while len(acked) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        served.proc.kill()  # SIGKILL to the pid this test started, mid-traffic
        served.proc.wait(30)
        stopped.set()
        for client in clients:
            client.join(60)
        assert len(acked) >= target, "the server acknowledged too few starts before the kill"
    served = serve(state, app=APP)
    try:
        with httpx.Client(base_url=served.url, timeout=60,
                          headers={"x-api-key": "serve-test-key"}) as http:
            for iid in acked:
                r = http.get(f"/api/instances/{iid}/wait", params={"timeout": "60"})
                assert r.status_code == 200, (iid, r.status_code, r.text)
                assert r.json()["result"] == expected_sequence(3)
            again = http.post("/api/orchestrations/HelloSequence", params={"id": acked[0]},
                              json={})
            assert again.status_code == 202 and again.json()["created"] is False
    finally:
        stop(served)
