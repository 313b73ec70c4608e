"""The AWS host: Lambda functions triggered by SQS, snapshots and statuses in S3.

A thin adapter over the shared host layer (:mod:`reactive.hosting`): the seams are
implemented by :class:`S3SnapshotStore`, :class:`S3StatusStore` and :class:`SqsSender`;
:class:`AwsHost` holds the handlers (:mod:`hosts.aws.entry` exposes them to Lambda) and
:mod:`hosts.aws.local` runs them against a moto server. This package is the only one that
imports boto3.
"""

from hosts.aws.client import connect
from hosts.aws.config import AwsConfig
from hosts.aws.handler import AwsHost
from hosts.aws.provision import provision
from hosts.aws.sender import SqsSender
from hosts.aws.status import S3StatusStore
from hosts.aws.store import S3SnapshotStore

__all__ = [
    "AwsConfig",
    "AwsHost",
    "S3SnapshotStore",
    "S3StatusStore",
    "SqsSender",
    "connect",
    "provision",
]
