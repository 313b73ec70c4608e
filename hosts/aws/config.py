"""Where a deployment's resources live, and the boto3 clients that reach them.

One deployment is one bucket (snapshots, statuses, claim checks, dead letters, each under
its own prefix) and a set of SQS queues named from one stem:

- ``{stem}-p{N}``: partition ``N``'s input, a standard queue (see docs/aws.md for why);
- ``{stem}-p{N}-dlq``: its dead-letter queue (messages a handler failed on repeatedly);
- ``{stem}-ingress`` and ``{stem}-ingress-dlq``: requests from anyone, and the invalid ones
  with their reason.

Credentials and region come from the AWS default chain (environment, profile, role); the
endpoint from ``endpoint_url`` or ``AWS_ENDPOINT_URL`` (a moto server, locally).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

DEFAULT_STEM = "reactive"
MAX_POOL = 64  # HTTP connections per client: invocations send and publish in parallel

# One session for the process: a session loads each service's model from disk once and
# every client it makes shares it, where a session per client costs about 0.3 s of CPU
# per client (the host's pollers each make one). A session is not thread-safe, its
# clients are: clients are made under the lock.
_session_lock = threading.Lock()
_session: boto3.session.Session | None = None


def _make_client(service: str, kwargs: dict[str, Any]) -> Any:
    global _session
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client(service, **kwargs)


@dataclass(frozen=True)
class AwsConfig:
    """Names of one deployment's resources; every process of it builds the same one."""

    bucket: str
    partitions: int
    stem: str = DEFAULT_STEM
    epoch: str = "1"
    endpoint_url: str | None = None
    region: str | None = None
    queue_urls: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AwsConfig:
        """The configuration a Lambda function receives in its environment (set by the
        SAM template): ``REACTIVE_BUCKET``, ``REACTIVE_PARTITIONS``, ``REACTIVE_STEM``,
        ``REACTIVE_EPOCH`` and, for a local endpoint, ``AWS_ENDPOINT_URL``."""
        env = dict(os.environ) if env is None else env
        try:
            bucket, partitions = env["REACTIVE_BUCKET"], int(env["REACTIVE_PARTITIONS"])
        except KeyError as missing:
            raise RuntimeError(f"environment variable {missing} is not set") from None
        return cls(
            bucket=bucket,
            partitions=partitions,
            stem=env.get("REACTIVE_STEM", DEFAULT_STEM),
            epoch=env.get("REACTIVE_EPOCH", "1"),
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )

    # -- names ---------------------------------------------------------------------------

    def partition_queue(self, partition: int) -> str:
        return f"{self.stem}-p{partition}"

    def partition_dlq(self, partition: int) -> str:
        return f"{self.stem}-p{partition}-dlq"

    @property
    def ingress_queue(self) -> str:
        return f"{self.stem}-ingress"

    @property
    def ingress_dlq(self) -> str:
        return f"{self.stem}-ingress-dlq"

    def partition_of_queue(self, name: str) -> int | None:
        """The partition whose input queue this is (by name or ARN), or None."""
        name = name.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        prefix = f"{self.stem}-p"
        if not name.startswith(prefix) or not name[len(prefix):].isdigit():
            return None
        index = int(name[len(prefix):])
        return index if index < self.partitions else None

    # -- clients -------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        kwargs: dict[str, Any] = {
            "config": BotoConfig(
                max_pool_connections=MAX_POOL,
                retries={"max_attempts": 5, "mode": "standard"},
                tcp_keepalive=True,
                # the requests are built here and tested; validating each one against the
                # service model again costs CPU on every call
                parameter_validation=False,
                # checksums only where S3 requires them: each costs CPU per call
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
        }
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if self.region:
            kwargs["region_name"] = self.region
        return _make_client(service, kwargs)

    @cached_property
    def s3(self) -> Any:
        return self.client("s3")

    @cached_property
    def sqs(self) -> Any:
        return self.client("sqs")

    def queue_url(self, name: str) -> str:
        """The URL of a queue of this deployment (looked up once, then remembered)."""
        url = self.queue_urls.get(name)
        if url is None:
            url = str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])
            self.queue_urls[name] = url
        return url
