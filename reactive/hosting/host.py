"""The one interface of a host that runs an application in this process: what the CLI,
the benchmark and the test suites drive, whichever host it is (the emulator, the local
host in memory or over a state folder)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from reactive.client import Client
from reactive.core.partition import Partition
from reactive.schema import Schema


@runtime_checkable
class Host(Protocol):
    schema: Schema
    app_log: logging.Logger  # the application's log lines, for a caller to route
    unhandled: list[str]  # errors nobody awaited, in the order they happened

    # statistics, counted since the host was made (read-only to callers: a host may count
    # them in attributes or derive them from its invocations' figures)
    @property
    def deliveries(self) -> int: ...

    @property
    def activity_runs(self) -> int: ...

    @property
    def restores(self) -> int: ...

    @property
    def duplicates_dropped(self) -> int: ...

    @property
    def parts(self) -> Sequence[Partition]:
        """The live partitions (for inspection; a durable host loads them)."""
        ...

    def client(self) -> Client: ...

    def now(self) -> float:
        """The host's clock (virtual or real), in epoch seconds."""
        ...

    def run(
        self,
        until: Callable[[], bool] | None = None,
        progress: Callable[[Any], None] | None = None,
    ) -> bool:
        """Run until ``until()`` holds or nothing is left to do; whether ``until`` holds
        (True when there is none). ``progress`` is called with the host now and then."""
        ...

    def describe(self, instance_id: str) -> list[str] | None:
        """What a live instance waits for, one line per awaited call (None if not live)."""
        ...


def statistics(host: Host) -> dict[str, int]:
    """The host's counters by name, as the CLI and the benchmark report them."""
    return {
        "deliveries": host.deliveries,
        "activity_runs": host.activity_runs,
        "restores": host.restores,
        "duplicates_dropped": host.duplicates_dropped,
        "unhandled": len(host.unhandled),
    }


__all__ = ["Host", "statistics"]
