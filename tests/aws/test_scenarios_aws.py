"""The scenario suite (its TestSuite startup orchestration) on the AWS host over moto with
4 partitions: the real partition handler driven as the event source mapping would, on a
virtual clock (hosts/aws/testing.py), against what the emulator observes. The local
runner's real-time path is covered by the end-to-end tests."""

from __future__ import annotations

from tests.scenarios.suite import run_suite


def test_the_scenario_suite_runs_as_on_the_emulator() -> None:
    clean = run_suite(partitions=4, seed=0).comparable()
    aws = run_suite(partitions=4, seed=0, host="aws").comparable()
    for outcome in (clean, aws):  # unlocked read-modify-writes lose updates by schedule
        lost = outcome["result"][1]["TestLocks"]["ok"].pop("unlocked")
        assert lost in (1, 2)
    assert aws == clean
    assert aws["states"] and aws["result"][0] == "completed"
