"""The AWS host's tests run on the shared moto server (``moto_endpoint`` from
``tests/services/fixtures.py``: 127.0.0.1, a free port, stopped by pid at the end of the
session). Each test gets a deployment of its own (bucket and queue names with a random
stem), so tests never see each other's messages and need no reset."""

from __future__ import annotations

import os
import uuid

import pytest

from hosts.aws.config import AwsConfig
from hosts.aws.provision import provision

os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


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
