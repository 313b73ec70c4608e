"""A moto server for the AWS host's tests: started once per session on 127.0.0.1 on a free
port, stopped by its pid. Each test gets a deployment of its own (bucket and queue names
with a random stem), so tests never see each other's messages."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from hosts.aws.config import AwsConfig
from hosts.aws.provision import provision

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    exe = Path(sys.executable).with_name("moto_server")
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if process.poll() is not None:
                pytest.fail(f"moto_server exited: {log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            pytest.fail("moto_server did not answer within 15 s")
        yield url
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def make_config(endpoint: str, partitions: int = 4) -> AwsConfig:
    stem = f"t{uuid.uuid4().hex[:10]}"
    return AwsConfig(bucket=f"{stem}-bucket", partitions=partitions, stem=stem,
                     endpoint_url=endpoint, region="us-east-1")


@pytest.fixture
def aws(moto_endpoint: str) -> AwsConfig:
    """A freshly provisioned deployment with 4 partitions."""
    config = make_config(moto_endpoint)
    provision(config, visibility_timeout=5)
    return config
