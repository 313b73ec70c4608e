"""The handlers run under the real Lambda runtime interface client (awslambdaric),
against a Runtime API stand-in: packaging (entry points found by module path, the app
from the environment), responses and the error envelope."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hosts.aws.config import AwsConfig
from hosts.aws.handler import KIND_ATTRIBUTE
from hosts.aws.store import S3SnapshotStore
from tests.aws.events import sqs_event, sqs_record
from tests.aws.runtime_api import RuntimeApi

REPO = Path(__file__).resolve().parents[2]


def _environment(aws: AwsConfig, api: RuntimeApi, app: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REACTIVE_")}
    env.update({
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "LAMBDA_TASK_ROOT": str(REPO),
        "PYTHONPATH": str(REPO),
        "AWS_ENDPOINT_URL": str(aws.endpoint_url),
        "AWS_REGION": "us-east-1",
        "REACTIVE_BUCKET": aws.bucket,
        "REACTIVE_PARTITIONS": str(aws.partitions),
        "REACTIVE_STEM": aws.stem,
    })
    if app is not None:
        env["REACTIVE_APP"] = app
    return env


@pytest.fixture
def runtime() -> Iterator[RuntimeApi]:
    api = RuntimeApi().start()
    yield api
    api.stop()


def _run_client(env: dict[str, str], handler: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", handler],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
    process.wait(timeout=10)


def test_schedule_handler_under_the_runtime_client(aws: AwsConfig, runtime: RuntimeApi) -> None:
    process = _run_client(_environment(aws, runtime, "samples.counter.app:app"),
                          "hosts.aws.entry.schedule_handler")
    try:
        first = runtime.invoke({"source": "aws.events", "detail-type": "Scheduled Event"})
        assert first.ok, first.payload
        assert first.payload == {"rang": [0, 1, 2, 3]}  # no partition has committed yet
        url = aws.queue_url(aws.partition_queue(2))
        got = aws.sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"])
        assert [m["Body"] for m in got["Messages"]] == ["wake"]
        again = runtime.invoke({})  # the same warm container answers the next one
        assert again.ok and again.payload == {"rang": [0, 1, 2, 3]}
    finally:
        _stop(process)


def test_partition_handler_under_the_runtime_client(
    aws: AwsConfig, runtime: RuntimeApi
) -> None:
    process = _run_client(_environment(aws, runtime, "samples.counter.app:app"),
                          "hosts.aws.entry.partition_handler")
    try:
        records = [sqs_record(aws, aws.partition_queue(1), "wake", {KIND_ATTRIBUTE: "wake"}),
                   sqs_record(aws, aws.partition_queue(1), "not an envelope", message_id="x")]
        outcome = runtime.invoke(sqs_event(*records))
        assert outcome.ok and outcome.payload == {"batchItemFailures": []}
        assert S3SnapshotStore(aws).load(1).version == "1"  # the first start, committed
        assert [reason.startswith("partition 1: ") for _, reason in
                S3SnapshotStore(aws).dead_letters(1)] == [True]
    finally:
        _stop(process)


def test_a_failing_handler_reports_the_error_envelope(
    aws: AwsConfig, runtime: RuntimeApi
) -> None:
    process = _run_client(_environment(aws, runtime, None), "hosts.aws.entry.partition_handler")
    try:
        outcome = runtime.invoke({"Records": []})
        assert not outcome.ok
        assert outcome.payload["errorType"] == "RuntimeError"
        assert "REACTIVE_APP" in outcome.payload["errorMessage"]
        assert outcome.payload["stackTrace"]
        cause = {k.lower(): v for k, v in outcome.headers.items()}
        assert "REACTIVE_APP" in cause["lambda-runtime-function-xray-error-cause"]
    finally:
        _stop(process)
