"""The S3 status store: the once-per-commit algorithm of
:mod:`reactive.hosting.statuslog` over one S3 bucket.

A commit's status changes are one object, created with ``If-None-Match: *`` (so a commit
published twice stays one object); readers list a partition's prefix and read what is new
since they last looked. The objects below are all S3 needs to provide.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from hosts.aws.config import AwsConfig
from hosts.aws.store import CONFLICT_CODES, _error_code
from reactive.hosting.statuslog import HEALTH_INTERVAL, LogStatusStore

DELETE_BATCH = 1000  # keys per DeleteObjects request (the S3 limit)


class S3Objects:
    """Implements :class:`reactive.hosting.statuslog.ObjectStore` on an S3 bucket."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.puts = 0  # PUT requests made (for measurements)

    def create(self, key: str, data: bytes) -> bool:
        self.puts += 1
        try:
            self.s3.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as error:
            if _error_code(error) in CONFLICT_CODES:
                return False
            raise
        return True

    def read(self, key: str) -> bytes | None:
        try:
            response = self.s3.get_object(Bucket=self.bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            return None
        data: bytes = response["Body"].read()
        return data

    def list_keys(self, prefix: str) -> list[str]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), DELETE_BATCH):
            chunk = keys[start : start + DELETE_BATCH]
            self.s3.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True},
            )


class S3StatusStore(LogStatusStore):
    """Implements :class:`reactive.hosting.seams.StatusStore` on one S3 bucket."""

    def __init__(
        self,
        config: AwsConfig,
        pool: ThreadPoolExecutor | None = None,
        health_interval: float = HEALTH_INTERVAL,
        **options: Any,
    ) -> None:
        self.config = config
        self.s3_objects = S3Objects(config.s3, config.bucket)
        super().__init__(self.s3_objects, config.partitions, pool=pool,
                         health_interval=health_interval, **options)

    @property
    def puts(self) -> int:
        return self.s3_objects.puts
