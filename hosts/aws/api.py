"""The HTTP API of an AWS deployment: the ASGI app of :mod:`hosts.http` over the deployment's
client (requests to the partition queues) and its S3 status store, served by Lambda through
Mangum behind a function URL (``hosts.aws.entry.http_handler``).

Every request needs the API key (``REACTIVE_API_KEY``, at least 16 characters) in the
``x-api-key`` header or as a bearer token: a function URL is reachable from anywhere, so
there is no keyless mode here.
"""

from __future__ import annotations

from typing import Any

from mangum import Mangum

from hosts.aws.handler import AwsHost

MIN_KEY = 16
API_KEY_ENV = "REACTIVE_API_KEY"


class ApiKeyError(RuntimeError):
    """The deployment has no usable API key."""


def check_key(api_key: str | None) -> str:
    if not api_key:
        raise ApiKeyError(f"environment variable {API_KEY_ENV} is not set: the HTTP API "
                          "needs an API key")
    if len(api_key) < MIN_KEY:
        raise ApiKeyError(f"{API_KEY_ENV} is too short: use at least {MIN_KEY} characters")
    return api_key


def asgi_app(host: AwsHost, api_key: str) -> Any:
    """The API's ASGI application over ``host``'s client and status store."""
    from hosts.http import create_app

    return create_app(host.schema, host.client(), host.status, api_key=check_key(api_key))


def lambda_handler(host: AwsHost, api_key: str) -> Mangum:
    """A Lambda handler (function URL, API Gateway HTTP or REST events) serving the API.
    Lifespan events are off: the app needs no startup work, and each event is one
    request."""
    return Mangum(asgi_app(host, api_key), lifespan="off")
