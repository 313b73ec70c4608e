"""A moto server that keeps connections open, as real AWS endpoints do.

``moto_server`` runs moto's WSGI application on werkzeug's development server, which
answers every request with ``Connection: close`` (werkzeug 3 always does, whatever the
protocol version), so each boto3 call pays for a new TCP connection and a new server
thread. Here the same application runs under uvicorn (already a dependency of the HTTP
host), whose HTTP/1.1 parser keeps connections alive, so botocore's connection pool
reuses them; the WSGI application itself runs on a pool of threads.

Three of moto's helpers are replaced by equivalents that cost less (see
:func:`quicken_moto`): with them a ``ReceiveMessage`` no longer costs a pass over the whole
queue for each message it returns, and routing a request no longer lists moto's package
directory.

    python -m hosts.aws.motoserver -p 5000     # binds 127.0.0.1 only; stop it by pid
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
import warnings
from typing import Any

import uvicorn
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

HOST = "127.0.0.1"  # a test double: never reachable from elsewhere

# WSGI threads: an SQS long poll holds one for up to 20 s, and a run has a poller per
# queue plus senders and clients, so a small pool would stall short calls behind them.
WORKERS = 64


def quicken_moto() -> bool:
    """Replace three of moto's helpers with equivalents; False if this moto lacks them.

    - For each message a ``ReceiveMessage`` hands out, moto 5 checks the message against
      the queue's retention period by computing *every* attribute of the queue, the counts
      of visible, in-flight and delayed messages among them: a pass over the whole queue
      per message returned. The replacement reads the one attribute it needs.
    - moto's clock for SQS (``unix_time``, ``unix_time_millis``) builds two datetimes and
      imports a module on each call, and it is called for every message of a queue on
      every receive. Without a datetime argument it means ``time.time()``.
    - The dispatcher finds a request's service by listing moto's package directory (a
      ``stat`` per entry) under a lock every application thread takes; the listing never
      changes while the server runs, so it is read once.
    Profiled under the bench (py-spy on the server), the first two took about half of moto's
    CPU, growing with the number of messages in the queues."""
    from moto import backends as moto_backends
    from moto.core import utils
    from moto.sqs import models as sqs_models

    models: Any = sqs_models
    backend: Any = models.SQSBackend
    registry: Any = moto_backends
    if not (hasattr(backend, "is_message_valid_based_on_retention_period")
            and hasattr(models, "unix_time") and hasattr(models, "unix_time_millis")
            and hasattr(registry, "list_of_moto_modules")):
        return False
    modules = tuple(registry.list_of_moto_modules())
    slow_unix_time = utils.unix_time

    def unix_time(dt: datetime.datetime | None = None) -> float:
        return time.time() if dt is None else slow_unix_time(dt)

    def unix_time_millis(dt: datetime.datetime | None = None) -> float:
        return time.time() * 1000.0 if dt is None else slow_unix_time(dt) * 1000.0

    def is_message_valid_based_on_retention_period(
        self: Any, queue_name: str, message: Any
    ) -> bool:
        period = int(self.get_queue(queue_name).message_retention_period)
        return bool(period + message.sent_timestamp / 1000 > time.time())

    models.unix_time = unix_time
    models.unix_time_millis = unix_time_millis
    backend.is_message_valid_based_on_retention_period = (
        is_message_valid_based_on_retention_period)
    registry.list_of_moto_modules = lambda: modules
    return True


def build_app(workers: int = WORKERS) -> object:
    """moto's WSGI dispatcher wrapped as an ASGI application (with :func:`quicken_moto`)."""
    quicken_moto()
    with warnings.catch_warnings():
        # uvicorn marks its WSGI adapter deprecated in favour of a separate package;
        # it is still shipped and tested, and avoids one more dependency.
        warnings.simplefilter("ignore", DeprecationWarning)
        # the name is public at run time (re-bound after an optional import)
        from uvicorn.middleware.wsgi import WSGIMiddleware  # type: ignore[attr-defined]

        app = DomainDispatcherApplication(create_backend_app)
        return WSGIMiddleware(app, workers=workers)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m hosts.aws.motoserver",
        description="A moto server on 127.0.0.1 with keep-alive connections.")
    parser.add_argument("-p", "--port", type=int, default=5000, help="port (default 5000)")
    parser.add_argument("--workers", type=int, default=WORKERS,
                        help=f"threads running moto (default {WORKERS})")
    args = parser.parse_args(argv)
    # moto builds some URLs (SQS queue URLs, ...) from this port
    os.environ.setdefault("MOTO_PORT", str(args.port))
    # uvicorn stops on SIGTERM/SIGINT by itself; it closes idle kept-alive connections
    # after timeout_keep_alive seconds, longer than boto3 leaves a pooled one idle.
    uvicorn.run(build_app(args.workers), host=HOST, port=args.port,  # type: ignore[arg-type]
                log_level="warning", access_log=False, timeout_keep_alive=75,
                timeout_graceful_shutdown=2, lifespan="off")


if __name__ == "__main__":
    main()
