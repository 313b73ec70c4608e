"""The moto server the tests and the bench start keeps connections open, as AWS does:
without it every boto3 call pays for a new TCP connection and the bench measures that."""

from __future__ import annotations

import datetime
import signal
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

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


def test_the_quickened_helpers_answer_as_moto_s_own() -> None:
    """The server replaces three of moto's helpers with cheaper ones; they must agree
    with the originals (here in this process, restored afterwards)."""
    from moto import backends
    from moto.core import utils
    from moto.sqs import models

    from hosts.aws.motoserver import quicken_moto

    backend_class: Any = models.SQSBackend
    registry: Any = backends
    saved = (models.unix_time, models.unix_time_millis,
             backend_class.is_message_valid_based_on_retention_period,
             registry.list_of_moto_modules)
    listed = list(saved[3]())
    try:
        assert quicken_moto()
        assert list(registry.list_of_moto_modules()) == listed
        assert {"s3", "sqs"} <= set(listed)
        assert abs(models.unix_time() - utils.unix_time()) < 1.0
        assert abs(models.unix_time_millis() - utils.unix_time_millis()) < 1000.0
        moment = datetime.datetime(2026, 1, 2, 3, 4, 5)
        assert models.unix_time(moment) == utils.unix_time(moment)
        backend = backend_class("us-east-1", "123456789012")
        backend.create_queue("retained", MessageRetentionPeriod="60")
        now_ms = time.time() * 1000
        for age, kept in ((1, True), (59, True), (61, False), (3600, False)):
            message = SimpleNamespace(sent_timestamp=now_ms - age * 1000)
            assert backend.is_message_valid_based_on_retention_period(
                "retained", message) is kept
            assert saved[2](backend, "retained", message) is kept
    finally:
        models.unix_time, models.unix_time_millis = saved[0], saved[1]  # type: ignore[assignment]
        backend_class.is_message_valid_based_on_retention_period = saved[2]
        registry.list_of_moto_modules = saved[3]
