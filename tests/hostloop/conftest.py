"""Reports how many random schedules the host-loop sweep ran."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .test_schedules import RAN

    if RAN["schedules"]:
        terminalreporter.write_line(
            f"hostloop: {RAN['schedules']:,} random schedules ran, {RAN['failed']:,} failed"
        )
