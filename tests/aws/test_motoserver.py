"""The moto server the tests and the bench start keeps connections open, as AWS does:
without it every boto3 call pays for a new TCP connection and the bench measures that."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import boto3
import pytest
import urllib3.connection

from tests.services.servers import start_moto


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Counts the TCP connections urllib3 (under botocore) opens."""
    opened: list[int] = []
    lock = threading.Lock()
    original = urllib3.connection.HTTPConnection.connect

    def connect(self: urllib3.connection.HTTPConnection) -> None:
        with lock:
            opened.append(1)
        original(self)

    monkeypatch.setattr(urllib3.connection.HTTPConnection, "connect", connect)
    yield opened


def test_boto3_calls_reuse_one_connection(connects: list[int]) -> None:
    server = start_moto()
    try:
        sqs = boto3.client("sqs", endpoint_url=server.url, region_name="us-east-1",
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        queue = sqs.create_queue(QueueName="keepalive")["QueueUrl"]
        for i in range(20):
            sqs.send_message(QueueUrl=queue, MessageBody=f"m{i}")
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    finally:
        server.stop()
    assert len(got) == 10
    assert len(connects) == 1  # 22 calls, one connection (werkzeug's server: 22)


def test_stop_by_pid_with_a_connection_kept_open() -> None:
    server = start_moto()
    s3 = boto3.client("s3", endpoint_url=server.url, region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    s3.create_bucket(Bucket="keepalive-stop")  # leaves a pooled connection open
    server.stop()
    # it ended on SIGTERM, not on the SIGKILL that follows if a kept-alive socket held it
    assert server.process.returncode != -signal.SIGKILL
