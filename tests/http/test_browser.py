"""The dashboard in a real browser (Debian's Chromium, headless): load it, start an
instance from its form, see it complete."""

from __future__ import annotations

from typing import Any

from hosts.http import create_app
from tests.http.conftest import ThreadServer
from tests.http.fakes import DictStatusStore, EmulatorClient2
from tests.http.opsapp import app as ops_app


def test_dashboard_starts_an_instance_and_shows_it_complete(browser: Any) -> None:
    status = DictStatusStore()
    client = EmulatorClient2(ops_app, status)
    app = create_app(ops_app.compile(), client, status, api_key="browser-key")
    with ThreadServer(app) as server:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/#key=browser-key")
        page.wait_for_selector("#start-name option[value=Greet]", state="attached")
        page.select_option("#start-name", "Greet")
        page.fill("#start-input", '{"name": "browser", "times": 2}')
        page.fill("#start-id", "from-the-browser")
        page.click("#start-submit")
        page.wait_for_function(
            "document.querySelector('#detail-status').textContent === 'completed'"
        )
        assert page.text_content("#detail-id") == "from-the-browser"
        assert "hello browser hello browser" in (page.text_content("#detail-result pre") or "")
        page.wait_for_selector("#instances tbody tr[data-id=from-the-browser]")
        assert "completed" in (
            page.text_content("#instances tbody tr[data-id=from-the-browser]") or ""
        )
        assert errors == []
