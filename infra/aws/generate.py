"""Writes ``template.yaml`` next to this file: ``python infra/aws/generate.py``.

The template declares a queue, a dead-letter queue and an event source mapping for each of
up to ``MAX_PARTITIONS`` partitions, each under a condition on the ``Partitions``
parameter, so that the partition count stays a deploy-time parameter while the template
remains plain CloudFormation (``Fn::ForEach`` would be shorter, but ``sam build`` cannot
read it yet). A test checks that the committed template is what this script writes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

MAX_PARTITIONS = 32
COUNTS = [1, 2, 4, 8, 16, 32]
HERE = Path(__file__).resolve().parent


def sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def arn(resource: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [resource, "Arn"]}


PARTITION_QUEUES = sub(
    "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:${AWS::StackName}-p*"
)
BUILD = {"BuildMethod": "makefile", "BuildProperties": {"BuildInSource": True}}


def tier(index: int) -> str:
    """The condition that holds when partition ``index`` exists."""
    least = next(c for c in COUNTS if c > index)
    return f"AtLeast{least}Partitions"


def conditions() -> dict[str, Any]:
    found: dict[str, Any] = {}
    for n, count in enumerate(COUNTS):
        allowed = [{"Fn::Equals": [ref("Partitions"), str(c)]} for c in COUNTS[n:]]
        found[f"AtLeast{count}Partitions"] = (
            allowed[0] if len(allowed) == 1 else {"Fn::Or": allowed}
        )
    return found


def parameters() -> dict[str, Any]:
    return {
        "AppModule": {
            "Type": "String",
            "Default": "samples.hello.app:app",
            "Description": "The application, as MODULE:ATTRIBUTE importable from the bundle.",
        },
        "Partitions": {
            "Type": "String",
            "Default": "4",
            "AllowedValues": [str(c) for c in COUNTS],
            "Description": "Partition count. Every process of a deployment must agree on "
            "it: changing it needs a new Epoch and an empty bucket.",
        },
        "Epoch": {
            "Type": "String",
            "Default": "1",
            "Description": "Deployment epoch; messages of another epoch are ignored.",
        },
        "BatchSize": {
            "Type": "Number", "Default": 100, "MinValue": 1, "MaxValue": 10000,
            "Description": "Messages per partition invocation (over 10 needs a batching "
            "window).",
        },
        "BatchingWindowSeconds": {
            "Type": "Number", "Default": 1, "MinValue": 0, "MaxValue": 300,
            "Description": "How long the mapping gathers a batch.",
        },
        "ConcurrencyPerPartition": {
            "Type": "Number", "Default": 2, "MinValue": 2, "MaxValue": 1000,
            "Description": "Concurrent invocations per partition queue (2 is the least an "
            "SQS mapping allows; a second one of a partition loses the fence and retries).",
        },
        "MaxReceiveCount": {
            "Type": "Number", "Default": 5, "MinValue": 1, "MaxValue": 1000,
            "Description": "Receives before a message goes to its dead-letter queue.",
        },
        "WakeRate": {
            "Type": "String", "Default": "rate(1 minute)",
            "Description": "How often partitions with due timers are rung.",
        },
        "ApiKey": {
            "Type": "String", "NoEcho": True, "MinLength": 16,
            "Description": "The HTTP API's key (x-api-key header or bearer token), at least "
            "16 characters: the function URL is public and the API checks the key.",
        },
        "LogLevel": {
            "Type": "String", "Default": "INFO",
            "AllowedValues": ["DEBUG", "INFO", "WARNING", "ERROR"],
        },
    }


def dead_letter_queue(name: str) -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": sub(name),
            "MessageRetentionPeriod": 1209600,
            "SqsManagedSseEnabled": True,
        },
    }


def queue(name: str, dlq: str, visibility: int) -> dict[str, Any]:
    return {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            "QueueName": sub(name),
            "VisibilityTimeout": visibility,
            "SqsManagedSseEnabled": True,
            "RedrivePolicy": {
                "deadLetterTargetArn": arn(dlq),
                "maxReceiveCount": ref("MaxReceiveCount"),
            },
        },
    }


def function(description: str, handler: str, timeout: int, statements: list[Any],
             **extra: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::Function",
        "Metadata": BUILD,
        "Properties": {
            "Description": description,
            "Handler": f"hosts.aws.entry.{handler}",
            "Timeout": timeout,
            "Policies": [{"Statement": statements}],
            **extra,
        },
    }


def allow(sid: str, actions: list[str], resource: Any) -> dict[str, Any]:
    return {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}


def resources() -> dict[str, Any]:
    bucket_objects = sub("${Bucket.Arn}/*")
    found: dict[str, Any] = {
        "Bucket": {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]},
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True, "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "LifecycleConfiguration": {"Rules": [
                    {"Id": "expire-claim-checks", "Status": "Enabled", "Prefix": "claims/",
                     "ExpirationInDays": 14},
                    {"Id": "expire-dead-letters", "Status": "Enabled",
                     "Prefix": "dead-letters/", "ExpirationInDays": 30},
                ]},
            },
        },
        "BucketTlsOnly": {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": ref("Bucket"),
                "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                    "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*",
                    "Action": "s3:*", "Resource": [arn("Bucket"), bucket_objects],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }]},
            },
        },
        "IngressDeadLetterQueue": dead_letter_queue("${AWS::StackName}-ingress-dlq"),
        "IngressQueue": queue("${AWS::StackName}-ingress", "IngressDeadLetterQueue", 120),
    }
    for p in range(MAX_PARTITIONS):
        condition = tier(p)
        dlq = dead_letter_queue(f"${{AWS::StackName}}-p{p}-dlq")
        # six times the function timeout, as Lambda advises for SQS event sources
        main = queue(f"${{AWS::StackName}}-p{p}", f"PartitionDeadLetterQueue{p}", 360)
        mapping = {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {
                "FunctionName": ref("PartitionFunction"),
                "EventSourceArn": arn(f"PartitionQueue{p}"),
                "BatchSize": ref("BatchSize"),
                "MaximumBatchingWindowInSeconds": ref("BatchingWindowSeconds"),
                "FunctionResponseTypes": ["ReportBatchItemFailures"],
                "ScalingConfig": {"MaximumConcurrency": ref("ConcurrencyPerPartition")},
            },
        }
        for name, resource in ((f"PartitionDeadLetterQueue{p}", dlq),
                               (f"PartitionQueue{p}", main), (f"PartitionMapping{p}", mapping)):
            found[name] = {"Condition": condition, **resource}
    found["PartitionFunction"] = function(
        "Processes one partition's input batch, commits to S3, sends the outbox.",
        "partition_handler", 60,
        [
            allow("PartitionInputs", [
                "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility",
                "sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:SendMessage",
            ], PARTITION_QUEUES),
            allow("Snapshots", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                  bucket_objects),
            allow("ListSnapshots", ["s3:ListBucket"], arn("Bucket")),
        ],
        Environment={"Variables": {"REACTIVE_TIME_BUDGET": "2"}},
    )
    found["IngressFunction"] = function(
        "Validates requests posted to the ingress queue and routes them.",
        "ingress_handler", 20,
        [
            allow("Route", ["sqs:SendMessage", "sqs:GetQueueUrl"],
                  [PARTITION_QUEUES, arn("IngressDeadLetterQueue")]),
            allow("ClaimChecks", ["s3:GetObject", "s3:PutObject"],
                  sub("${Bucket.Arn}/claims/*")),
        ],
        Events={"Requests": {"Type": "SQS", "Properties": {
            "Queue": arn("IngressQueue"), "BatchSize": 100,
            "MaximumBatchingWindowInSeconds": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"]}}},
    )
    found["WakeFunction"] = function(
        "Rings partitions whose timers are due, and partitions never started.",
        "schedule_handler", 30,
        [
            allow("Ring", ["sqs:SendMessage", "sqs:GetQueueUrl"], PARTITION_QUEUES),
            allow("ReadHealth", ["s3:GetObject"], sub("${Bucket.Arn}/status/health/*")),
        ],
        Events={"Wake": {"Type": "Schedule", "Properties": {"Schedule": ref("WakeRate")}}},
    )
    found["HttpFunction"] = function(
        "The HTTP API and dashboard (hosts/http through Mangum) behind a function URL.",
        # long enough for the API's longest wait (300 s) plus the request around it
        "http_handler", 310,
        [
            allow("Requests", ["sqs:SendMessage", "sqs:GetQueueUrl"], PARTITION_QUEUES),
            allow("Statuses", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                  sub("${Bucket.Arn}/status/*")),
            allow("ClaimChecks", ["s3:GetObject", "s3:PutObject"],
                  sub("${Bucket.Arn}/claims/*")),
            allow("ListStatuses", ["s3:ListBucket"], arn("Bucket")),
        ],
        FunctionUrlConfig={"AuthType": "NONE"},
        Environment={"Variables": {"REACTIVE_API_KEY": ref("ApiKey")}},
    )
    return found


def template() -> dict[str, Any]:
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": (
            "A reactive-machine application: a standard SQS queue per partition feeding a "
            "Lambda function through event source mappings that report batch item failures, "
            "an ingress queue for requests from anyone, dead-letter queues, one S3 bucket for "
            "snapshots, statuses and claim checks, a schedule that wakes partitions "
            "whose timers are due, and the HTTP API behind a function URL. Generated by generate.py: edit that, not this."
        ),
        "Parameters": parameters(),
        "Conditions": conditions(),
        "Globals": {"Function": {
            "Runtime": "python3.11",
            "Architectures": ["x86_64"],
            "CodeUri": ".",
            "MemorySize": 512,
            "Environment": {"Variables": {
                "REACTIVE_APP": ref("AppModule"),
                "REACTIVE_BUCKET": ref("Bucket"),
                "REACTIVE_PARTITIONS": ref("Partitions"),
                "REACTIVE_STEM": ref("AWS::StackName"),
                "REACTIVE_EPOCH": ref("Epoch"),
                "REACTIVE_LOG_LEVEL": ref("LogLevel"),
            }},
        }},
        "Resources": resources(),
        "Outputs": {
            "IngressQueueUrl": {"Description": "Post requests here.",
                                "Value": ref("IngressQueue")},
            "IngressDeadLetterQueueUrl": {
                "Description": "Invalid requests land here with a reactive-reason attribute.",
                "Value": ref("IngressDeadLetterQueue")},
            "BucketName": {"Description": "Snapshots, statuses, claim checks, dead letters.",
                           "Value": ref("Bucket")},
            "ApiUrl": {"Description": "The HTTP API and dashboard (send the ApiKey).",
                       "Value": {"Fn::GetAtt": ["HttpFunctionUrl", "FunctionUrl"]}},
        },
    }


def render() -> str:
    header = "# Generated by infra/aws/generate.py; edit that and run it again.\n"
    return header + yaml.safe_dump(template(), sort_keys=False, width=100)


if __name__ == "__main__":
    target = HERE / "template.yaml"
    target.write_text(render())
    print(f"wrote {target}", file=sys.stderr)
