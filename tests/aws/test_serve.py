"""``python -m hosts.aws.local MODULE:APP`` (what ``reactive serve --host aws-local``
runs): provisions the deployment on the endpoint, serves until interrupted; a request
posted to its ingress queue with boto3 runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3

from hosts.aws.client import connect
from samples.hello.app import app

REPO = Path(__file__).resolve().parents[2]


def test_serve_runs_an_app_posted_to_through_its_ingress_queue(moto_endpoint: str) -> None:
    stem = f"serve{uuid.uuid4().hex[:8]}"
    bucket = f"{stem}-bucket"
    env = {**os.environ, "PYTHONPATH": str(REPO), "AWS_DEFAULT_REGION": "us-east-1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "hosts.aws.local", "samples.hello.app:app", "--partitions", "4",
         "--endpoint-url", moto_endpoint, "--bucket", bucket, "--stem", stem],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("serving hello with 4 partitions"), lines
        url = lines[1].split("ingress queue: ", 1)[1].strip()
        sqs = boto3.client("sqs", endpoint_url=moto_endpoint, region_name="us-east-1")
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(
            {"orchestration": "Hello", "instance_id": "posted"}))
        client = connect(app, bucket=bucket, partitions=4, stem=stem,
                         endpoint_url=moto_endpoint, region="us-east-1")
        # the startup orchestration runs too, when the schedule first rings its partition
        for iid in ("posted", "startup-0-HelloStartup"):
            deadline = time.monotonic() + 120
            while client.status(iid) is None:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert client.wait("posted", timeout=120) == "Hello World"
        assert client.wait("startup-0-HelloStartup", timeout=120) == ["Hello World"] * 5
    finally:
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 0
