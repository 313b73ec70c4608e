"""Create a deployment's bucket and queues where no template does: on a moto server (the
local runner and the tests). On AWS the SAM template in ``infra/aws`` creates the same."""

from __future__ import annotations

import contextlib
import json

from hosts.aws.config import AwsConfig

VISIBILITY_TIMEOUT = 30  # seconds; on AWS at least the function timeout
MAX_RECEIVE_COUNT = 5  # receives before a message goes to the dead-letter queue
RETENTION = 14 * 24 * 3600  # dead-letter queues keep messages as long as SQS allows


def _queue(config: AwsConfig, name: str, attributes: dict[str, str]) -> str:
    url = str(config.sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"])
    config.queue_urls[name] = url
    return url


def _with_dlq(config: AwsConfig, name: str, dlq: str, visibility: int, receives: int) -> None:
    dlq_url = _queue(config, dlq, {"MessageRetentionPeriod": str(RETENTION)})
    arn = config.sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])
    redrive = {"deadLetterTargetArn": arn["Attributes"]["QueueArn"],
               "maxReceiveCount": str(receives)}
    _queue(config, name, {
        "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps(redrive),
    })


def provision(
    config: AwsConfig,
    visibility_timeout: int = VISIBILITY_TIMEOUT,
    max_receive_count: int = MAX_RECEIVE_COUNT,
) -> None:
    """Create (or find) the bucket, the partition queues and the ingress queue, each with
    its dead-letter queue. Idempotent."""
    s3 = config.s3
    location = {}
    if config.region and config.region != "us-east-1":
        location = {"CreateBucketConfiguration": {"LocationConstraint": config.region}}
    exists = (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists)
    with contextlib.suppress(*exists):
        s3.create_bucket(Bucket=config.bucket, **location)
    for p in range(config.partitions):
        _with_dlq(config, config.partition_queue(p), config.partition_dlq(p),
                  visibility_timeout, max_receive_count)
    _with_dlq(config, config.ingress_queue, config.ingress_dlq,
              visibility_timeout, max_receive_count)
