"""Claim checks: payloads too big for an SQS message travel through S3.

The message then carries a pointer in the shape the SQS extended client libraries use
(a JSON pair ``["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName":
..., "s3Key": ...}]`` with the message attribute ``ExtendedPayloadSize``), so a request
posted to the ingress queue with such a library is read too. Claims are named by the
SHA-256 of their bytes: a resend writes the same object, and a claim is never deleted
while a message may still point at it (a bucket lifecycle rule expires them).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from hosts.aws.config import AwsConfig

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
ENCODING_ATTRIBUTE = "reactive-encoding"  # "base64" when the body is not UTF-8 text
BUNDLE_ATTRIBUTE = "reactive-bundle"  # on a bundle: how many payloads its JSON array holds
CLAIM_PREFIX = "claims/"


class ClaimError(Exception):
    """A message's pointer or encoding cannot be resolved (the reason is the message)."""


def _is_sqs_text(text: str) -> bool:
    """Whether SQS accepts these characters in a message body (XML 1.0 characters)."""
    for ch in text:
        c = ord(ch)
        if not (c in (0x9, 0xA, 0xD) or 0x20 <= c <= 0xD7FF or 0xE000 <= c <= 0xFFFD
                or 0x10000 <= c <= 0x10FFFF):
            return False
    return True


def encode_body(data: bytes) -> tuple[str, dict[str, Any]]:
    """The body text for ``data`` and the message attributes it needs."""
    try:
        text = data.decode("utf-8")
        if data.isascii() or _is_sqs_text(text):
            return text, {}
    except UnicodeDecodeError:
        pass
    return base64.b64encode(data).decode("ascii"), {
        ENCODING_ATTRIBUTE: {"DataType": "String", "StringValue": "base64"}
    }


def put_claim(config: AwsConfig, data: bytes) -> tuple[str, dict[str, Any]]:
    """Store ``data`` in S3; the pointer body and attributes of the message to send."""
    key = CLAIM_PREFIX + hashlib.sha256(data).hexdigest()
    config.s3.put_object(Bucket=config.bucket, Key=key, Body=data)
    body = json.dumps([POINTER_CLASS, {"s3BucketName": config.bucket, "s3Key": key}])
    return body, {SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(len(data))}}


def _attribute(attributes: Mapping[str, Any], name: str) -> str | None:
    """A message attribute's string value, in either the SQS API's shape (``StringValue``)
    or the Lambda event's (``stringValue``)."""
    entry = attributes.get(name)
    if not isinstance(entry, Mapping):
        return None
    value = entry.get("stringValue", entry.get("StringValue"))
    return value if isinstance(value, str) else None


def decode_body(config: AwsConfig, body: str, attributes: Mapping[str, Any]) -> bytes:
    """The payload of a received message: fetched from S3 if it is a claim check."""
    if _attribute(attributes, SIZE_ATTRIBUTE) is not None or _attribute(
        attributes, LEGACY_SIZE_ATTRIBUTE
    ) is not None:
        try:
            kind, pointer = json.loads(body)
            bucket, key = pointer["s3BucketName"], pointer["s3Key"]
        except (ValueError, TypeError, KeyError) as exc:
            raise ClaimError(f"malformed claim check pointer ({exc})") from None
        if kind != POINTER_CLASS or not isinstance(bucket, str) or not isinstance(key, str):
            raise ClaimError("malformed claim check pointer")
        if bucket != config.bucket:  # the functions may read their own bucket only
            raise ClaimError(f"claim check in bucket {bucket!r}, not {config.bucket!r}")
        try:
            response = config.s3.get_object(Bucket=bucket, Key=key)
        except config.s3.exceptions.NoSuchKey:
            raise ClaimError(f"claim check s3://{bucket}/{key} does not exist") from None
        data: bytes = response["Body"].read()
        return data
    if _attribute(attributes, ENCODING_ATTRIBUTE) == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except ValueError:
            raise ClaimError("body marked base64 is not base64") from None
    return body.encode("utf-8")


def decode_payloads(config: AwsConfig, body: str, attributes: Mapping[str, Any]) -> list[bytes]:
    """The payloads a received message carries: one, or a bundle's (see
    :mod:`hosts.aws.sender`)."""
    count = _attribute(attributes, BUNDLE_ATTRIBUTE)
    if count is None:
        return [decode_body(config, body, attributes)]
    try:
        texts = json.loads(body)
    except ValueError as exc:
        raise ClaimError(f"bundle is not JSON ({exc})") from None
    if (not isinstance(texts, list) or not all(isinstance(t, str) for t in texts)
            or str(len(texts)) != count):
        raise ClaimError(f"bundle is not an array of {count} strings")
    return [text.encode("utf-8") for text in texts]
