"""The AWS host as a feature-suite host (kind ``aws``): :class:`hosts.aws.testing.AwsTestHost`
on a moto server.

The moto server: ``REACTIVE_MOTO_URL`` if set, otherwise one started on first use by
:func:`tests.services.servers.start_moto` and stopped by pid when the process exits. Each host
gets a deployment of its own (a random stem); on a server it started itself the module resets
moto when the host closes, so the server does not fill up over hundreds of scenarios.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping

from hosts.aws.testing import REGION, AwsTestHost, aws_test_host
from reactive import App
from tests.services.servers import MotoServer, reset_moto, start_moto

MOTO_URL_ENV = "REACTIVE_MOTO_URL"

_server: MotoServer | None = None
_server_lock = threading.Lock()


def moto_url() -> tuple[str, bool]:
    """The moto server's URL, and whether this process owns it (may reset it)."""
    global _server
    url = os.environ.get(MOTO_URL_ENV)
    if url:
        return url, False
    with _server_lock:
        if _server is None or not _server.alive():
            _server = start_moto()  # stopped by pid at exit (servers' atexit hook)
        return _server.url, True


@contextlib.contextmanager
def aws_host(app: App, partitions: int, seed: int) -> Iterator[AwsTestHost]:
    """A fresh deployment on the moto server, driven as a feature-suite host."""
    for name, value in _CREDENTIALS.items():
        os.environ.setdefault(name, value)
    url, owned = moto_url()
    try:
        with aws_test_host(app, url, partitions, seed) as host:
            yield host
    finally:
        if owned:
            reset_moto(url)


_CREDENTIALS: Mapping[str, str] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}
