"""The scenario suite (its TestSuite startup orchestration) on the AWS host over moto,
4 partitions, against what the emulator observes."""

from __future__ import annotations

import time

from hosts.aws.config import AwsConfig
from hosts.aws.handler import AwsHost
from hosts.aws.local import LocalRunner
from tests.scenarios.suite import SUITE_INSTANCE, build_app, run_suite

WAIT = 400.0


def test_the_scenario_suite_runs_as_on_the_emulator(aws: AwsConfig) -> None:
    expected = run_suite(partitions=4).result
    host = AwsHost(build_app(startup=True), aws)
    with LocalRunner(host, partition_pollers=2, schedule_interval=0.5):
        client = host.client()
        deadline = time.monotonic() + WAIT
        while (status := client.status(SUITE_INSTANCE)) is None or not status.done:
            assert time.monotonic() < deadline, f"the suite did not finish: {status}"
            time.sleep(0.2)
    if status.error is not None:
        result: object = ("error", type(status.error).__name__, str(status.error))
    else:
        result = (status.status, status.result)
    assert result == expected
