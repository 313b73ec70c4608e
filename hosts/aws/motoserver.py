"""A moto server that keeps connections open, as real AWS endpoints do.

``moto_server`` runs moto's WSGI application on werkzeug's development server, which
answers every request with ``Connection: close`` (werkzeug 3 always does, whatever the
protocol version), so each boto3 call pays for a new TCP connection and a new server
thread. Here the same application runs under uvicorn (already a dependency of the HTTP
host), whose HTTP/1.1 parser keeps connections alive, so botocore's connection pool
reuses them; the WSGI application itself runs on a pool of threads.

    python -m hosts.aws.motoserver -p 5000     # binds 127.0.0.1 only; stop it by pid
"""

from __future__ import annotations

import argparse
import os
import warnings

import uvicorn
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

HOST = "127.0.0.1"  # a test double: never reachable from elsewhere

# WSGI threads: an SQS long poll holds one for up to 20 s, and a run has a poller per
# queue plus senders and clients, so a small pool would stall short calls behind them.
WORKERS = 64


def build_app(workers: int = WORKERS) -> object:
    """moto's WSGI dispatcher wrapped as an ASGI application."""
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
