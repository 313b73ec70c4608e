"""Pytest fixtures for local servers and the browser (a plugin: tests/conftest.py loads it).

Lazy: a server starts the first time a test asks for it and stops, by pid, when the
session ends (``browser`` lives for one test module). A test that uses one of these
fixtures is marked ``services``; such tests are skipped only when asked
(``--skip-services`` or ``REACTIVE_SKIP_SERVICES=1``), never under CI. A server or browser
that is missing makes the test fail with a one-line reason.

    def test_s3(moto_endpoint: str) -> None:
        s3 = boto3.client("s3", **aws_client_kwargs(moto_endpoint))

    def test_blob(azurite: Azurite) -> None:
        service = BlobServiceClient.from_connection_string(azurite.connection_string)

    def test_page(browser: Browser) -> None:
        page = browser.new_page()
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.services.servers import Azurite, ServerError, start_azurite, start_moto

if TYPE_CHECKING:
    from playwright.sync_api import Browser

CHROMIUM = Path(os.environ.get("REACTIVE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SKIP_ENV = "REACTIVE_SKIP_SERVICES"
SERVICE_FIXTURES = frozenset({"moto_endpoint", "azurite", "chromium_path", "browser"})
_SKIPPED = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--skip-services",
        action="store_true",
        default=False,
        help="skip tests that need a local server or the browser (marker `services`); "
        f"also {SKIP_ENV}=1. Refused under CI.",
    )


def pytest_configure(config: pytest.Config) -> None:
    if _skip_requested(config) and _truthy(os.environ.get("CI")):
        raise pytest.UsageError(
            f"--skip-services / {SKIP_ENV} is not allowed under CI: service tests must run there"
        )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip = _skip_requested(config)
    skipped = 0
    for item in items:
        uses = SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses and item.get_closest_marker("services") is None:
            item.add_marker(pytest.mark.services)
        if skip and item.get_closest_marker("services") is not None:
            item.add_marker(pytest.mark.skip(reason=f"services skipped on request ({SKIP_ENV})"))
            skipped += 1
    config.stash[_SKIPPED] = skipped


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _skip_requested(terminalreporter.config):
        skipped = terminalreporter.config.stash.get(_SKIPPED, 0)
        terminalreporter.write_line(
            f"services: {skipped} service-backed tests skipped on request", yellow=True
        )


def _skip_requested(config: pytest.Config) -> bool:
    return bool(config.getoption("--skip-services")) or _truthy(os.environ.get(SKIP_ENV))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() not in ("", "0", "false", "no")


# ---------------------------------------------------------------- servers


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """URL of a ``moto_server`` for this session (pass it as ``endpoint_url``).

    Shared by every test: use unique bucket and queue names, or ``reset_moto(url)``.
    """
    try:
        server = start_moto()
    except ServerError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite for this session: ``.blob_endpoint``, ``.queue_endpoint``,
    ``.table_endpoint``, ``.connection_string``, ``.account_name``, ``.account_key``."""
    if shutil.which("node") is None:
        pytest.fail("azurite: node is not installed (Azurite runs on node 20+)", pytrace=False)
    try:
        server = start_azurite()
    except ServerError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium (``make test`` installs it); never a downloaded browser."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"chromium: {CHROMIUM} is missing; `make test` installs it with "
            "`apt-get install -y --no-install-recommends chromium` (needs root or sudo)",
            pytrace=False,
        )
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    """A headless Chromium driven by Playwright (sync API), shared by one test module.

    Module-scoped, not session-scoped: while Playwright's sync API lives it marks an
    event loop as running in the main thread, so ``asyncio.run`` in any later test would
    fail. Keep browser tests in their own modules.
    """
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    try:
        launched = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
    except Exception as error:
        playwright.stop()
        first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        pytest.fail(
            f"chromium: Playwright could not launch {chromium_path}: {first}", pytrace=False
        )
    try:
        yield launched
    finally:
        try:
            launched.close()
        finally:
            playwright.stop()
