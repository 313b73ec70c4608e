"""The HTTP API of an AWS deployment through Mangum: the Lambda handler gets function URL
events (payload format 2.0) and serves hosts/http's app over the SQS client and the S3
status store, while the local runner plays the partition queues' event source mappings."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest

from hosts.aws.api import ApiKeyError, asgi_app, lambda_handler
from hosts.aws.config import AwsConfig
from hosts.aws.handler import AwsHost
from hosts.aws.local import LocalRunner
from tests.http.opsapp import app as ops_app

KEY = "k" * 24
WAIT = 120.0


def url_event(method: str, path: str, body: Any = None, query: str = "",
              headers: dict[str, str] | None = None, binary: bool = False) -> dict[str, Any]:
    """A Lambda function URL event, as Lambda builds it for a request."""
    raw = b"" if body is None else json.dumps(body).encode()
    all_headers = {"content-type": "application/json", "host": "fn.lambda-url.test",
                   "x-api-key": KEY, **(headers or {})}
    params = dict(p.split("=", 1) for p in query.split("&") if p)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": all_headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "fn",
            "domainName": "fn.lambda-url.test",
            "domainPrefix": "fn",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "198.51.100.7", "userAgent": "test"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "26/Nov/2026:05:00:00 +0000",
            "timeEpoch": int(time.time() * 1000),
        },
        "isBase64Encoded": binary,
    }
    if params:
        event["queryStringParameters"] = params
    if body is not None:
        event["body"] = base64.b64encode(raw).decode() if binary else raw.decode()
    return event


class Context:
    function_name = "http"
    aws_request_id = "req"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


Call = Callable[..., tuple[int, Any]]


@pytest.fixture
def call(aws: AwsConfig) -> Iterator[Call]:
    host = AwsHost(ops_app, aws)
    handler = lambda_handler(host, KEY)

    def invoke(method: str, path: str, body: Any = None, query: str = "",
               **options: Any) -> tuple[int, Any]:
        response = handler(url_event(method, path, body, query, **options),
                           cast(Any, Context()))
        text = response.get("body") or ""
        if response.get("isBase64Encoded"):
            text = base64.b64decode(text).decode()
        return int(response["statusCode"]), json.loads(text) if text else None

    with LocalRunner(host, partition_pollers=1, schedule_interval=0.5):
        yield invoke
    host.close()


def wait_done(call: Call, instance_id: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        code, body = call("GET", f"/api/instances/{instance_id}/wait", query="timeout=5")
        if code == 200:
            return body
        assert code == 202, body
        assert time.monotonic() < deadline, f"{instance_id} did not finish: {body}"


def test_start_status_wait_and_list(call: Call) -> None:
    code, started = call("POST", "/api/orchestrations/Greet", {"name": "ada", "times": 2},
                         query="id=g1")
    assert code == 202, started
    assert started["id"] == "g1" and started["created"] is True
    done = wait_done(call, "g1")
    assert done["status"] == "completed" and done["result"] == "hello ada hello ada"
    code, status = call("GET", "/api/instances/g1")
    assert code == 200 and status["status"] == "completed" and status["name"] == "Greet"
    code, again = call("POST", "/api/orchestrations/Greet", {"name": "ada"}, query="id=g1")
    assert code == 202 and again["created"] is False  # nothing starts twice
    code, listed = call("GET", "/api/instances", query="status=completed&name=Greet")
    assert code == 200 and [i["id"] for i in listed["items"]] == ["g1"]


def test_raise_event_and_base64_body(call: Call) -> None:
    code, _ = call("POST", "/api/orchestrations/Approval", {"request": "leave"},
                   query="id=a1", binary=True)
    assert code == 202
    deadline = time.monotonic() + WAIT
    while (status := call("GET", "/api/instances/a1")[1]).get("status") != "running":
        assert time.monotonic() < deadline, status
        time.sleep(0.2)
    code, raised = call("POST", "/api/instances/a1/events/decision", "granted",
                        headers={"x-request-id": "r1"})
    assert code == 202 and raised["accepted"] is True
    assert wait_done(call, "a1")["result"] == "leave: granted"


def test_perform_an_update_and_a_read(call: Call) -> None:
    code, added = call("POST", "/api/perform/Add", {"counter": "c", "amount": 5})
    assert code == 200 and added == {"result": 5}
    code, got = call("POST", "/api/perform/Get", {"counter": "c"})
    assert code == 200 and got == {"result": 5}


def test_a_wrong_or_missing_key_is_refused(call: Call) -> None:
    code, body = call("GET", "/api/instances", headers={"x-api-key": "wrong" * 5})
    assert code == 401 and "wrong API key" in body["error"]
    code, body = call("GET", "/api/app", headers={"x-api-key": ""})
    assert code == 401
    code, body = call("POST", "/api/orchestrations/Nope", {})
    assert code == 404 and "Nope" in body["error"]


def test_the_api_needs_a_key_of_some_length(aws: AwsConfig) -> None:
    host = AwsHost(ops_app, aws)
    try:
        with pytest.raises(ApiKeyError, match="REACTIVE_API_KEY is not set"):
            asgi_app(host, "")
        with pytest.raises(ApiKeyError, match="too short"):
            asgi_app(host, "short")
    finally:
        host.close()


def test_the_entry_point_serves_the_api(aws: AwsConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hosts.aws.entry.http_handler`` as Lambda calls it, configured by the environment."""
    from hosts.aws import entry

    for name, value in {"REACTIVE_APP": "tests.http.opsapp:app", "REACTIVE_BUCKET": aws.bucket,
                        "REACTIVE_PARTITIONS": str(aws.partitions), "REACTIVE_STEM": aws.stem,
                        "AWS_ENDPOINT_URL": str(aws.endpoint_url), "AWS_REGION": "us-east-1",
                        "REACTIVE_API_KEY": KEY}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(entry, "_host", None)
    monkeypatch.setattr(entry, "_http", None)
    response = entry.http_handler(url_event("GET", "/api/app"), Context())
    assert response["statusCode"] == 200
    names = [o["name"] for o in json.loads(response["body"])["orchestrations"]]
    assert "Approval" in names and "Greet" in names
