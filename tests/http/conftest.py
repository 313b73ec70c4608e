"""Fixtures: the API over a real LocalHost (a state folder driven in the background), an
in-process uvicorn server, and a headless browser."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi.testclient import TestClient

from hosts.http import create_app, follow_commits
from hosts.local import LocalHost
from reactive import App
from tests.http.opsapp import app as ops_app

KEY = "test-key"


@dataclass
class Env:
    http: TestClient
    host: LocalHost


@contextmanager
def driven(app: App, state: Path | None, partitions: int = 2) -> Iterator[LocalHost]:
    """A LocalHost (a folder without fsync, or memory) driven in a background thread."""
    host = LocalHost(app, partitions=partitions, state_dir=state, fsync=False)
    host.start_background()
    try:
        yield host
    finally:
        host.close()


def api_over(host: LocalHost, api_key: str | None, **kwargs: Any) -> Any:
    """The API as ``reactive serve`` builds it: grouped writes, waits told of commits."""
    app = create_app(host.schema, host.client(), host.status, api_key=api_key,
                     batch=host.batch, backlog=host.inbox.backlog, submit=host.submit,
                     **kwargs)
    follow_commits(app, host.status, host.on_commit)
    return app


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with driven(ops_app, tmp_path / "state") as host, TestClient(
        api_over(host, KEY), headers={"x-api-key": KEY}
    ) as http:
        yield Env(http, host)


# -- a real server in this process, and a headless browser ---------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class ThreadServer:
    """uvicorn serving ``app`` on a free 127.0.0.1 port in a thread of this process."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("the test server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's) driven by Playwright."""
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()
