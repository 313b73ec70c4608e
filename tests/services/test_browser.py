"""The browser fixture: headless Debian Chromium driven by Playwright clicks a button."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.services.servers import HOST

if TYPE_CHECKING:
    from playwright.sync_api import Browser

PAGE = b"""<!doctype html><title>smoke</title>
<button id="go" onclick="document.getElementById('out').textContent = 'clicked'">go</button>
<p id="out">waiting</p>"""


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def page_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer((HOST, 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{HOST}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_chromium_path(chromium_path: str) -> None:
    assert chromium_path == "/usr/bin/chromium"


def test_browser_clicks_a_button(browser: Browser, page_url: str) -> None:
    page = browser.new_page()
    try:
        page.goto(page_url)
        assert page.text_content("#out") == "waiting"
        page.click("#go")
        page.wait_for_function("document.getElementById('out').textContent === 'clicked'")
        assert page.text_content("#out") == "clicked"
    finally:
        page.close()


def test_browser_is_shared_within_the_module(browser: Browser, page_url: str) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(page_url)
        assert page.title() == "smoke"
    finally:
        context.close()
