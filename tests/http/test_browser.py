"""The dashboard in a real browser (Debian's Chromium, headless): load it, start an
instance from its form, see it complete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hosts.http.live import local_inspector
from tests.http.conftest import ThreadServer, api_over, driven
from tests.http.opsapp import Approval
from tests.http.opsapp import app as ops_app


def test_dashboard_starts_an_instance_and_shows_it_complete(
    browser: Any, tmp_path: Path
) -> None:
    with driven(ops_app, tmp_path / "state") as host, ThreadServer(
        api_over(host, "browser-key")
    ) as server:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(f"{server.url}/#key=browser-key")
        page.wait_for_selector("#start-name option[value=Greet]", state="attached")
        page.select_option("#start-name", "Greet")
        assert '"name": ""' in page.input_value("#start-input")  # a template of its fields
        page.fill("#start-input", '{"name": 5}')
        page.click("#start-submit")
        page.wait_for_selector("#start-message.failed")
        assert "invalid input for Greet: name" in (page.text_content("#start-message") or "")
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
        page.select_option("#filter-status", "failed")
        page.click("#filters button[type=submit]")
        page.wait_for_selector("#instances tbody tr[data-id=from-the-browser]", state="detached")
        page.wait_for_selector("#partitions tbody tr td")
        assert errors == []


def test_dashboard_shows_a_wait_and_raises_the_event(browser: Any, tmp_path: Path) -> None:
    with driven(ops_app, tmp_path / "state") as host:
        history, describe = local_inspector(host)
        api = api_over(host, "k", history=history, describe=describe)
        with ThreadServer(api) as server:
            host.client().start(Approval(request="loan"), "waiting-1")
            page = browser.new_page()
            page.goto(f"{server.url}/#key=k&instance=waiting-1")
            page.wait_for_selector("#detail-waits li")
            assert page.text_content("#detail-waits li") == "event 'decision'"
            assert page.input_value("#event-name") == "decision"  # prefilled from the wait
            page.fill("#event-value", '"approved"')
            page.click("#event-form button[type=submit]")
            page.wait_for_function(
                "document.querySelector('#detail-status').textContent === 'completed'"
            )
            assert '"loan: approved"' in (page.text_content("#detail-result pre") or "")
