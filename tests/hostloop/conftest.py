"""Reports how many random schedules the worker sweep ran, per transport."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from .test_schedules import RAN

    for kind in ("fifo", "eventhubs", "folder", "folder-grouped"):
        if RAN[kind]:
            terminalreporter.write_line(
                f"hostloop: {RAN[kind]:,} random schedules on {kind}, "
                f"{RAN[kind + ' failed']:,} failed"
            )
