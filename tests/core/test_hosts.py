"""Every in-process host implements the one host interface, :class:`reactive.hosting.Host`
(checked at run time here, and statically by mypy through the typed list below)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hosts.emulator import Emulator, Faults
from hosts.local import LocalHost
from reactive import App, Orchestration, OrchestrationContext
from reactive.hosting import Host, statistics


class Twice(Orchestration[int]):
    value: int

    async def execute(self, ctx: OrchestrationContext) -> int:
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


@pytest.mark.parametrize("which", range(4))
def test_each_host_conforms_and_runs_through_the_interface(tmp_path: Path, which: int) -> None:
    host = _hosts(tmp_path)[which]
    assert isinstance(host, Host)
    client = host.client()
    iid = client.start(Twice(value=21))
    assert host.run(until=lambda: (s := client.status(iid)) is not None and s.done)
    assert client.wait(iid) == 42
    counts = statistics(host)
    assert counts["deliveries"] > 0 and counts["unhandled"] == 0
    assert host.describe(iid) is None  # finished: not live anywhere
    assert len(host.parts) == 2


def test_an_object_missing_a_member_does_not_conform() -> None:
    class NoClient:
        schema = _app().compile()
        deliveries = activity_runs = restores = duplicates_dropped = 0
        unhandled: list[str] = []
        parts: list[object] = []

    assert not isinstance(NoClient(), Host)
