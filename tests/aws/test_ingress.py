"""The ingress queue: requests posted by anyone with boto3, validated and routed; invalid
ones dead-lettered with their reason while the next valid one goes through."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hosts.aws.claims import put_claim
from hosts.aws.client import connect
from hosts.aws.config import AwsConfig
from hosts.aws.handler import REASON_ATTRIBUTE, AwsHost
from hosts.aws.local import LocalRunner
from samples.counter.app import app
from tests.aws import bigapp
from tests.aws.events import sqs_event, sqs_record

WAIT = 120.0


def _dead_letters(aws: AwsConfig, expected: int) -> list[tuple[str, str]]:
    url = aws.queue_url(aws.ingress_dlq)
    found: list[tuple[str, str]] = []
    deadline = time.monotonic() + WAIT
    while len(found) < expected and time.monotonic() < deadline:
        got = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                      MessageAttributeNames=["All"])
        for m in got.get("Messages", []):
            found.append((m["Body"], m["MessageAttributes"][REASON_ATTRIBUTE]["StringValue"]))
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


BAD = [
    ("{not json", "not JSON: "),
    ("[1, 2]", "a request must be a JSON object, not list"),
    ('{"orchestration": "Nope"}', "unknown orchestration 'Nope'; known: "),
    ('{"orchestration": "IncrementMany", "input": {"counter": "x", "times": 1}}',
     "invalid input for IncrementMany: counter: "),
    ('{"orchestration": "IncrementMany", "input": {"counter": 1}, "color": "red"}',
     "unknown request fields ['color']"),
]


@pytest.fixture
def running(aws: AwsConfig) -> Iterator[AwsHost]:
    host = AwsHost(app, aws)
    with LocalRunner(host, schedule_interval=0.5):
        yield host


def _post(aws: AwsConfig, body: str, **kwargs: Any) -> None:
    aws.sqs.send_message(QueueUrl=aws.queue_url(aws.ingress_queue), MessageBody=body, **kwargs)


def test_invalid_requests_are_dead_lettered_and_valid_ones_go_through(
    aws: AwsConfig, running: AwsHost
) -> None:
    valid = {"orchestration": "IncrementMany", "input": {"counter": 4, "times": 3},
             "instance_id": "from-ingress"}
    for body, _ in BAD:
        _post(aws, body)
    _post(aws, json.dumps(valid))
    _post(aws, json.dumps(valid))  # a retry: the instance starts once
    client = connect(app, bucket=aws.bucket, partitions=aws.partitions, stem=aws.stem,
                     endpoint_url=aws.endpoint_url, region="us-east-1")
    deadline = time.monotonic() + WAIT
    while client.status("from-ingress") is None:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.wait("from-ingress", timeout=WAIT) == [1, 2, 3]
    dead = sorted(_dead_letters(aws, len(BAD)))
    assert [body for body, _ in dead] == sorted(body for body, _ in BAD)
    for (body, reason), (_, expected) in zip(dead, sorted(BAD), strict=True):
        assert reason.startswith(expected), (body, reason)
    _post(aws, json.dumps({"orchestration": "IncrementMany", "input": {"counter": 4, "times": 1},
                           "request_id": "again"}))
    deadline = time.monotonic() + WAIT
    while client.status("again") is None or not client.status("again").done:  # type: ignore[union-attr]
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert client.wait("again", timeout=WAIT) == [4]  # the retried request was applied once


def test_ingress_handler_shape(aws: AwsConfig) -> None:
    """Driven directly: the response names nothing (bad requests are settled by
    dead-lettering them), and the valid request is on its partition's queue."""
    host = AwsHost(app, aws)
    queue = aws.ingress_queue
    good = json.dumps({"orchestration": "IncrementMany", "input": {"counter": 1, "times": 1},
                       "instance_id": "direct"})
    response = host.on_ingress_batch(sqs_event(
        sqs_record(aws, queue, "{", {"trace": "t-1"}), sqs_record(aws, queue, good)))
    assert response == {"batchItemFailures": []}
    owner = host.schema.instance_owner("direct", aws.partitions)
    url = aws.queue_url(aws.partition_queue(owner))
    assert aws.sqs.receive_message(QueueUrl=url).get("Messages")
    dlq = aws.sqs.receive_message(QueueUrl=aws.queue_url(aws.ingress_dlq),
                                  MessageAttributeNames=["All"])["Messages"]
    assert [m["Body"] for m in dlq] == ["{"]
    assert dlq[0]["MessageAttributes"]["trace"]["StringValue"] == "t-1"  # kept


def test_a_big_request_by_claim_check_through_ingress(aws: AwsConfig) -> None:
    host = AwsHost(bigapp.app, aws)
    size = 2 * 1024 * 1024
    request = {"orchestration": "Measure", "input": {"text": "t" * size}, "instance_id": "big"}
    body, attributes = put_claim(aws, json.dumps(request).encode())
    with LocalRunner(host, schedule_interval=0.5):
        _post(aws, body, MessageAttributes=attributes)
        client = host.client()
        deadline = time.monotonic() + WAIT
        while client.status("big") is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert client.wait("big", timeout=WAIT) == size
