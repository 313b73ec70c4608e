"""A client of an AWS deployment from any Python process:

    client = connect(app, bucket="my-stack-bucket-1a2b", partitions=4, stem="my-stack")
    iid = client.start(Replenish(item="tea"))
    print(client.wait(iid, timeout=60))

Requests go to the partition queues (claim checks for big inputs), statuses are read from
the bucket; nothing restores a partition. Credentials come from the AWS default chain.
"""

from __future__ import annotations

from hosts.aws.config import DEFAULT_STEM, AwsConfig
from hosts.aws.sender import SqsSender
from hosts.aws.status import S3StatusStore
from reactive import App
from reactive.hosting import Schema
from reactive.hosting.client import SeamClient


def connect(
    app: App | Schema,
    *,
    bucket: str,
    partitions: int,
    stem: str = DEFAULT_STEM,
    epoch: str = "1",
    endpoint_url: str | None = None,
    region: str | None = None,
    poll: float = 0.1,
) -> SeamClient:
    """A :class:`reactive.Client` of the deployment named by ``bucket`` and ``stem`` (the
    stack name, for a deployment of ``infra/aws/template.yaml``)."""
    schema = app.compile() if isinstance(app, App) else app
    config = AwsConfig(bucket=bucket, partitions=partitions, stem=stem, epoch=epoch,
                       endpoint_url=endpoint_url, region=region)
    return SeamClient(schema, partitions, SqsSender(config), S3StatusStore(config),
                      epoch=epoch, poll=poll)
