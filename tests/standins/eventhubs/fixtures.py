"""Pytest fixture: one Event Hubs stand-in per test session.

Use it from a conftest.py::

    from tests.standins.eventhubs.fixtures import eventhubs as eventhubs

and ask for ``eventhubs`` in a test; ``eventhubs.connection_string("orders")`` is what the SDK
needs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .server import StandIn, start_standin

# Hub name -> partition count. Tests that count events use a hub of their own.
HUBS: dict[str, int] = {
    "orders": 4,
    "results": 2,
    "positions": 2,
    "keys": 4,
    "spread": 4,
    "groups": 2,
    "epochs": 2,
    "bulk": 4,
    "large": 1,
    "aio": 2,
    "latest": 1,
    "misc": 2,
}


@pytest.fixture(scope="session")
def eventhubs() -> Iterator[StandIn]:
    standin = start_standin(HUBS)
    try:
        yield standin
    finally:
        standin.stop()  # SIGTERM to the stand-in's pid, SIGKILL if it lingers
