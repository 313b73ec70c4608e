"""Every in-process host implements the one host interface, :class:`reactive.hosting.Host`
(checked at run time here, and statically by mypy through the typed list below): the
emulator, the local host, and the cloud test hosts over the local services (moto;
Azurite and the Event Hubs stand-in), which run with the ``services`` marker."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from hosts.emulator import Emulator, Faults
from hosts.local import LocalHost
from reactive import App, Orchestration, OrchestrationContext
from reactive.hosting import Host, statistics
from tests.features._support import local_host

if TYPE_CHECKING:  # checked by mypy only: importing them loads the cloud SDKs
    from hosts.aws.testing import AwsTestHost
    from hosts.azure.testing import AzureTestHost

    def _cloud_hosts_are_hosts(aws: AwsTestHost, azure: AzureTestHost) -> list[Host]:
        return [aws, azure]


class Twice(Orchestration[int]):
    value: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        ctx.log.info("doubling %d", self.value)
        await ctx.sleep(1)
        return self.value * 2


def _app() -> App:
    app = App("hosts-conform")
    app.register(Twice)
    return app


def _hosts(tmp: Path) -> list[Host]:
    app = _app()
    return [  # mypy checks each against the Protocol here
        Emulator(app, partitions=2),
        Emulator(app, partitions=2, faults=Faults(restore_probability=0.5, seed=3)),
        LocalHost(app, partitions=2),
        LocalHost(app, partitions=2, state_dir=tmp / "state"),
    ]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def _drive_through_the_interface(host: Host) -> None:
    """What the CLI, the benchmark and the suites do with a host, whichever it is."""
    assert isinstance(host, Host)
    lines = _Lines()
    host.app_log.addHandler(lines)
    host.app_log.setLevel(logging.INFO)
    try:
        client = host.client()
        began = host.now()
        iid = client.start(Twice(value=21))
        # live: it waits for its timer, and says so
        assert host.run(until=lambda: bool(host.describe(iid)))
        assert any("timer" in line or "sleep" in line for line in host.describe(iid) or [])
        seen: list[object] = []
        assert host.run(until=lambda: (s := client.status(iid)) is not None and s.done,
                        progress=seen.append)
        assert client.wait(iid) == 42
        assert host.now() - began >= 1  # the one-second timer fired on the host's clock
        counts = statistics(host)
        assert counts["deliveries"] > 0 and counts["unhandled"] == 0 == len(host.unhandled)
        assert host.describe(iid) is None  # finished: not live anywhere
        assert len(host.parts) == 2
        assert host.schema.app_name == "hosts-conform"
        assert lines.lines.count("doubling 21") == 1  # logged once, whatever replays
        assert all(item is host for item in seen)
    finally:
        host.app_log.removeHandler(lines)


@pytest.mark.parametrize("which", range(4))
def test_each_host_conforms_and_runs_through_the_interface(tmp_path: Path, which: int) -> None:
    _drive_through_the_interface(_hosts(tmp_path)[which])


@pytest.fixture
def cloud_host(request: pytest.FixtureRequest) -> Iterator[Host]:
    with local_host(request.param, _app(), 2, 0) as host:
        yield host


@pytest.mark.services
@pytest.mark.parametrize("cloud_host", ["aws", "azure"], indirect=True)
def test_the_cloud_test_hosts_conform_and_run_through_the_interface(cloud_host: Host) -> None:
    _drive_through_the_interface(cloud_host)


def test_an_object_missing_a_member_does_not_conform() -> None:
    class NoClient:
        schema = _app().compile()
        deliveries = activity_runs = restores = duplicates_dropped = 0
        unhandled: list[str] = []
        parts: list[object] = []

    assert not isinstance(NoClient(), Host)
