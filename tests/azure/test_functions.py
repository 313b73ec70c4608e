"""The functions of function_app.py's kind, invoked directly: Event Hubs batches as the
Python worker builds them (``azure.functions.EventHubEvent`` with trigger metadata), timer
requests and HTTP requests."""

from __future__ import annotations

import asyncio
import json
import types
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
import pytest
from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter
from azure.functions.timer import TimerRequest

from hosts.azure.functions import build_function_app
from hosts.azure.host import AzureHost
from hosts.azure.settings import AzureSettings
from reactive.hosting import requests
from samples.counter import app as counter
from tests.azure.pump import Pump, wait_for

pytestmark = pytest.mark.timeout(180)


def functions_of(app: func.FunctionApp) -> dict[str, Callable[..., Any]]:
    return {f.get_function_name() or "": f.get_user_function() for f in app.get_functions()}


def worker_batch(
    bodies: list[bytes], partition: str, first: int = 0, hub: str = "partitions"
) -> list[func.EventHubEvent]:
    """A batch decoded the way the Python worker decodes a cardinality-many trigger."""
    now = datetime.now(UTC).isoformat()
    system = [
        {"EnqueuedTimeUtc": now, "SequenceNumber": first + n, "Offset": 1000 + n}
        for n in range(len(bodies))
    ]
    context = {"EventHubName": hub, "ConsumerGroup": "$Default", "PartitionId": partition}
    metadata = {
        "SystemPropertiesArray": meta.Datum(json.dumps(system), "json"),
        "PartitionContext": meta.Datum(json.dumps(context), "json"),
    }
    data = meta.Datum(types.SimpleNamespace(bytes=bodies), "collection_bytes")
    events = EventHubTriggerConverter.decode(data, trigger_metadata=metadata)
    assert isinstance(events, list)
    return events


@pytest.fixture
def host(settings: AzureSettings) -> Iterator[AzureHost]:
    h = AzureHost(counter.app, settings)
    yield h
    h.close()


def test_bindings_match_the_functions_host_contract() -> None:
    app = build_function_app(counter.app)
    bindings = {
        f.get_function_name(): json.loads(f.get_function_json())["bindings"]
        for f in app.get_functions()
    }
    (partitions,) = bindings["partitions"]
    assert partitions["type"] == "eventHubTrigger" and partitions["cardinality"] == "MANY"
    assert partitions["dataType"] == "BINARY"
    assert partitions["eventHubName"] == "%REACTIVE_PARTITION_HUB%"
    assert partitions["connection"] == "EventHubConnection"
    assert bindings["ingress"][0]["eventHubName"] == "%REACTIVE_INGRESS_HUB%"
    assert bindings["wake"][0]["type"] == "timerTrigger"
    assert bindings["http"][0]["type"] == "httpTrigger"


def test_the_root_function_app_indexes() -> None:
    import function_app

    names = {f.get_function_name() for f in function_app.app.get_functions()}
    assert names == {"partitions", "ingress", "wake", "http"}


def test_partition_function_runs_a_worker_batch(
    host: AzureHost, settings: AzureSettings
) -> None:
    fns = functions_of(build_function_app(counter.app, host=lambda: host))
    partitions = lambda events: fns["partitions"](events=events)  # noqa: E731
    schema = host.schema
    elsewhere = (schema.instance_owner("direct-1", 4) + 1) % 4  # a counter on another partition
    start = requests.start(
        schema, 4, "1", "direct-1", counter.IncrementMany(counter=elsewhere, times=3)
    )
    pump = Pump(settings)
    try:
        # the request is in the hub (sequence number 0 of its partition), and the test hands
        # it to the function itself in a batch built as the Python worker builds one
        host.sender.send([start])
        pump.drop(start.dest, 1)
        partitions(worker_batch([start.data], str(start.dest), first=0))
        record = host.status.get("direct-1")
        assert record is not None and record.status == "running"
        # the rest travels through the hub
        def done() -> bool:
            record = host.status.get("direct-1")
            return record is not None and record.status == "completed"

        assert pump.run(partitions, done)
    finally:
        pump.close()
    record = host.status.get("direct-1")
    assert record is not None and sorted(record.result) == [1, 2, 3]
    assert pump.failures == []


def test_partition_function_refuses_batches_without_a_partition(host: AzureHost) -> None:
    fns = functions_of(build_function_app(counter.app, host=lambda: host))
    bare = [func.EventHubEvent(body=b"{}", sequence_number=1)]
    with pytest.raises(ValueError, match="PartitionContext"):
        fns["partitions"](events=bare)
    with pytest.raises(ValueError, match="outside the app's 4 partitions"):
        fns["partitions"](events=worker_batch([b"{}"], "7"))


def test_timer_rings_partitions_that_never_committed(
    host: AzureHost, settings: AzureSettings
) -> None:
    fns = functions_of(build_function_app(counter.app, host=lambda: host))
    pump = Pump(settings)
    try:
        fns["wake"](timer=TimerRequest(past_due=False))
        assert wait_for(lambda: all(pump.buffered(p) == 1 for p in range(4)))
        for p in range(4):
            pump.step(p, lambda events: fns["partitions"](events=events))
    finally:
        pump.close()
    assert {h.partition for h in host.status.health()} == {0, 1, 2, 3}
    assert host.on_timer() == []  # nothing is due now


def test_ingress_function_routes_and_dead_letters(host: AzureHost) -> None:
    fns = functions_of(build_function_app(counter.app, host=lambda: host))
    good = json.dumps({"orchestration": "IncrementMany", "input": {"counter": 2, "times": 1},
                       "instance_id": "from-ingress"}).encode()
    bad = [b"\xff\xfe", b"[1, 2]", json.dumps({"orchestration": "Increment"}).encode(),
           json.dumps({"orchestration": "IncrementMany", "input": {"times": "x"}}).encode()]
    fns["ingress"](events=worker_batch([good, *bad], "0", hub="ingress"))
    record = host.status.get("from-ingress")
    assert record is not None and record.status == "pending"
    letters = host.dead_letters.list("ingress")
    assert [d["data"] for d in letters] == bad
    reasons = [d["reason"] for d in letters]
    assert reasons[0].startswith("not JSON")
    assert reasons[1] == "a request must be a JSON object, not list"
    assert reasons[2].startswith("unknown orchestration 'Increment'")
    assert reasons[3].startswith("invalid input for IncrementMany")


def test_http_function_starts_and_reads_instances(host: AzureHost) -> None:
    fns = functions_of(build_function_app(counter.app, host=lambda: host))

    def call(method: str, path: str, body: bytes = b"", key: str | None = "test-key"
             ) -> func.HttpResponse:
        headers = {"x-api-key": key} if key else {}
        if body:
            headers["content-type"] = "application/json"
        query = dict(parse_qsl(urlsplit(path).query))  # the worker passes them as params
        request = func.HttpRequest(method=method, url=f"http://localhost{path}",
                                   headers=headers, params=query, body=body)
        response: func.HttpResponse = asyncio.run(fns["http"](req=request, context=None))
        return response

    assert call("GET", "/api/instances/x", key=None).status_code == 401
    started = call("POST", "/api/orchestrations/IncrementMany?id=via-http",
                   json.dumps({"counter": 3, "times": 1}).encode())
    assert started.status_code == 202
    assert json.loads(started.get_body())["id"] == "via-http"
    status = call("GET", "/api/instances/via-http")
    assert status.status_code == 200
    assert json.loads(status.get_body())["status"] == "pending"
    assert call("GET", "/api/instances/nobody").status_code == 404
