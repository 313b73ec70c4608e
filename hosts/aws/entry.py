"""Lambda entry points: ``hosts.aws.entry.partition_handler`` (partition input queues),
``ingress_handler`` (the ingress queue), ``schedule_handler`` (the timer rule) and
``http_handler`` (the HTTP API behind the function URL, through Mangum).

The function's environment names the application (``REACTIVE_APP=module:attribute``) and
the deployment (see :meth:`hosts.aws.config.AwsConfig.from_env`). The host is built on the
first invocation of a container and kept warm for the next ones.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from hosts.aws.config import AwsConfig
from hosts.aws.handler import AwsHost, LambdaContext
from reactive import App

_host: AwsHost | None = None
_http: Callable[[dict[str, Any], Any], dict[str, Any]] | None = None
_lock = threading.Lock()


def load_app(target: str) -> App:
    """The App named by ``module:attribute``."""
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in (attribute or "app").split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, App):
        raise TypeError(f"{target} is not a reactive App")
    return obj


def host() -> AwsHost:
    global _host
    with _lock:
        if _host is None:
            logging.getLogger("reactive").setLevel(os.environ.get("REACTIVE_LOG_LEVEL", "INFO"))
            target = os.environ.get("REACTIVE_APP")
            if not target:
                raise RuntimeError("environment variable REACTIVE_APP is not set (module:app)")
            budget = float(os.environ.get("REACTIVE_TIME_BUDGET", "2"))
            _host = AwsHost(load_app(target), AwsConfig.from_env(), time_budget=budget)
        return _host


def partition_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return host().on_partition_batch(event, context)


def ingress_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return host().on_ingress_batch(event, context)


def schedule_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return host().on_schedule(event, context)


def http_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """A function URL request: the HTTP API of :mod:`hosts.http` (``REACTIVE_API_KEY``)."""
    global _http
    if _http is None:
        from hosts.aws.api import lambda_handler

        made = lambda_handler(host(), os.environ.get("REACTIVE_API_KEY", ""))
        with _lock:
            _http = _http or made
    return _http(event, context)
