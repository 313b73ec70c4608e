"""The LocalTests scenarios, one by one and as the startup TestSuite, without faults.

Each scenario orchestration checks its own invariants while it runs; these tests check the
values it returns, the final states and the log lines of the run."""

from __future__ import annotations

from typing import Any

import pytest

from hosts.emulator import Emulator
from reactive import Orchestration

from . import counter, discipline, events, locks, states
from .places import Place
from .suite import Outcome, build_app, run_scenario, run_suite

PARTITIONS = [1, 3, 5]


def ok(outcome: Outcome) -> Any:
    """The scenario's result; fails the test with the scenario's error if it raised."""
    assert outcome.result[0] == "ok", f"scenario failed: {outcome.result[1:]}"
    assert outcome.unhandled == []
    return outcome.result[1]


def place_balances(outcome: Outcome) -> dict[str, int]:
    return {
        key.split()[-1]: value["balance"]
        for key, value in outcome.states.items()
        if key.startswith("PlaceState ")
    }


# -- TestStates -------------------------------------------------------------------------------


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_states_global_counter_and_account_lifecycle(partitions: int) -> None:
    outcome = run_scenario(states.TestStates(), partitions=partitions)
    seen = ok(outcome)
    assert seen["global_count"] == 5
    assert seen["errors"] == ["StateNotFoundError", "StateNotFoundError",
                              "SynchronizationDisciplineError", "SynchronizationDisciplineError"]
    assert seen["create_account"] == {
        "existed_before": False, "missing_read": "StateNotFoundError",
        "missing_withdraw": "StateNotFoundError", "exists_after": True, "balance": 11,
    }
    assert seen["balance_after_create"] == 11
    assert sorted(seen["withdrawals"]) == [False] * 5 + [True] * 5
    assert seen["final_balance"] == 1
    # the final states agree with what the orchestration read
    accounts = [v for k, v in outcome.states.items() if k.startswith("AccountState ")]
    assert accounts == [{"balance": 1}]
    assert outcome.states["GlobalCounterState GlobalCounterKey "] == {"count": 5}
    # initializers and updates logged exactly once each
    lines = outcome.lines
    assert lines.count("initializing singleton") == 1
    assert sum(line.startswith("initializing account ") for line in lines) == 1
    assert sum(line.startswith("withdrawing 2 from ") for line in lines) == 5
    assert sum(line.startswith("insufficient funds in ") for line in lines) == 5


# -- TestEvents / TestEventsWithInit ----------------------------------------------------------


@pytest.mark.parametrize("partitions", PARTITIONS)
@pytest.mark.parametrize("seed", [0, 7])
def test_events_per_place_counts(partitions: int, seed: int) -> None:
    outcome = run_scenario(events.TestEvents(), partitions=partitions, seed=seed)
    seen = ok(outcome)
    assert seen == {
        "single": [2, 2, 2],
        "pairs": [2, 2, 2],
        "mixed": [9, 9, 9],
        "randomized": [9, 9, 9],
        "with_locks": [13, 13, 13],
    }
    assert place_balances(outcome) == {"0": 0, "1": 0, "2": 0}
    # every event effect was applied (and logged) exactly once, in order at each place:
    # phases 1 and 2 count 1, 2; phases 3 and 4 count 1..9; in phase 5 the locked
    # increments (which do not log) interleave, so the events see 9 increasing values <= 13
    for place in Place:
        prefix = f"Increment {place.name} to "
        counts = [
            int(line[len(prefix):].split()[0]) for line in outcome.lines
            if line.startswith(prefix)
        ]
        assert counts[:22] == [1, 2, 1, 2, *range(1, 10), *range(1, 10)], place
        last = counts[22:]
        assert len(last) == 9 and last == sorted(set(last)) and last[-1] <= 13, place


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_events_with_initializers(partitions: int) -> None:
    outcome = run_scenario(events.TestEventsWithInit(), partitions=partitions)
    seen = ok(outcome)
    assert seen["first"] == {"accounts": [[101, 101]] * 3, "places": [1000, 1000]}
    assert seen["second"] == {"accounts": [[101, 101]] * 8, "places": [1000]}
    for account in range(11):
        assert outcome.states[f"AccountState1 AccountNumberKey {account}"] == {"balance": 101}
        assert outcome.states[f"AccountState2 AccountNumberKey {account}"] == {"balance": 101}
    # the places were touched only under the lock (created by SetBalance, reset to 0)
    assert place_balances(outcome) == {"1": 0, "2": 0}
    # one initializer activity per created AccountState1
    assert outcome.activity_runs == 11


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_locked_read_after_event_sees_every_subscriber(partitions: int) -> None:
    """A lock holder's reads after its event observe the event in every subscribing state,
    even while another subscriber of the same key is still running its initializer."""
    outcome = run_scenario(
        events.LockedEventThenReadSecond(account_ids=[50, 51]), partitions=partitions
    )
    assert ok(outcome) == [[101, 101], [101, 101]]


# -- TestLocks ------------------------------------------------------------------------------


@pytest.mark.parametrize("partitions", PARTITIONS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_locks_never_lose_updates(partitions: int, seed: int) -> None:
    outcome = run_scenario(locks.TestLocks(), partitions=partitions, seed=seed)
    seen = ok(outcome)
    assert seen["single_lock"] == [2, 2, 2]
    assert seen["all_locks"] == [2, 2, 2]
    assert seen["mixed"] == [3, 3, 3]
    assert seen["randomized"] == [4, 4, 4]
    assert seen["unlocked"] in (1, 2)  # 1 when the two increments interleaved
    assert place_balances(outcome) == {"0": 0, "1": 0, "2": 0}


def test_unlocked_increments_lose_an_update() -> None:
    """The original asserted 1: both unlocked increments read 0 before either wrote.

    Whether they interleave depends on the schedule. On one partition a partition processes
    the messages it sends itself in FIFO order, so both reads run before either write:
    always 1, whatever the seed. On five partitions (the original's process count) it is 1
    for schedule seed 1 when TestLocks runs alone; across seeds both outcomes occur, which
    shows the value comes from the schedule, while the locked increments never lose an
    update in any of these runs."""
    for seed in range(4):
        assert ok(run_scenario(locks.TestLocks(), partitions=1, seed=seed))["unlocked"] == 1
    # a seed-specific expectation: a change in the runtime's message pattern may move it
    assert ok(run_scenario(locks.TestLocks(), partitions=5, seed=1))["unlocked"] == 1
    outcomes = set()
    for seed in range(12):
        seen = ok(run_scenario(locks.TestLocks(), partitions=5, seed=seed))
        outcomes.add(seen["unlocked"])
        assert seen["randomized"] == [4, 4, 4]
    assert outcomes == {1, 2}


# -- counters ---------------------------------------------------------------------------------


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_forks_with_interleaved_finish(partitions: int) -> None:
    outcome = run_scenario(counter.TestForks(), partitions=partitions)
    assert ok(outcome) == {"first": [1, 1, 1], "batch_sums": [100, 100, 100]}
    counters = {
        int(key.split()[-1]): value["count"]
        for key, value in outcome.states.items()
        if key.startswith("Counter2 ")
    }
    assert counters == {i: 1 for i in [0, 1, 2, *range(100, 400)]}
    assert sum(line.endswith(") Start") for line in outcome.lines
               if line.startswith("IncrementThenRead(")) == 303


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_random_activity_count_three_in_parallel(partitions: int) -> None:
    outcome = run_scenario(counter.TestRandomActivityCountParallel(), partitions=partitions)
    runs = ok(outcome)["runs"]
    assert len(runs) == 3
    offsets = [run["offset"] for run in runs]
    assert len(set(offsets)) == 3
    for run in runs:
        assert 2 <= run["activities"] <= 4
        assert len(run["guids"]) == len(set(run["guids"])) == run["activities"]
        assert run["counts"] == [1] * 10
    # the number of activities depends on the random draws; each ran exactly once
    assert outcome.activity_runs == sum(run["activities"] for run in runs)
    counters = {k: v for k, v in outcome.states.items() if k.startswith("Counter2 ")}
    assert len(counters) == 30 and all(v == {"count": 1} for v in counters.values())
    # replaying the same instance ids gives the same draws
    again = ok(run_scenario(counter.TestRandomActivityCountParallel(), partitions=partitions))
    assert again["runs"] == runs


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_counter_updates_and_events_in_an_orchestration(partitions: int) -> None:
    outcome = run_scenario(counter.TestCounters(counter_id=11, k=6), partitions=partitions)
    assert ok(outcome) == {"returned": [1, 2, 3, 4, 5, 6], "after_fork": 7, "event_count": 6}
    assert outcome.states["Counter2 CounterKey 11"] == {"count": 7}
    assert outcome.states["Counter1 CounterKey 11"] == {"count": 6}


def test_counter_updates_from_a_client() -> None:
    em = Emulator(build_app(), partitions=3, seed=4)
    client = em.client()
    with pytest.raises(KeyError):  # StateNotFoundError is a KeyError
        client.perform(counter.ReadCounter2(counter_id=5))
    assert [client.perform(counter.IncrementUpdate(counter_id=5)) for _ in range(4)] == [1, 2, 3, 4]
    client.fork(counter.IncrementUpdate(counter_id=5))
    em.run()
    assert client.perform(counter.ReadCounter2(counter_id=5)) == 5
    for _ in range(3):
        client.perform(counter.CounterIncrementEvent(counter_id=5))
    assert client.perform(counter.ReadCounter1(counter_id=5)) == 3
    assert em.unhandled == []


# -- discipline and misuse ------------------------------------------------------------------


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_lock_discipline_errors_reach_the_caller(partitions: int) -> None:
    outcome = run_scenario(discipline.TestDiscipline(), partitions=partitions)
    seen = ok(outcome)
    refused = "SynchronizationDisciplineError"
    assert seen["outcomes"] == {
        "move_two": refused,
        "read_outside": refused,
        "update_outside": refused,
        "event_outside": refused,
        "finish": refused,
        "locked_orchestration_outside": refused,
        "exists_outside": refused,
        "exists_unlocked": refused,
        "exists_locked": "ok",
        "locked_activity_unlocked": refused,
        "locked_activity_locked": "ok",
        "read_only_read": "ok",
        "read_only_update": refused,
    }
    assert seen["nested"] == 1
    assert seen["after"] == [1, 1, 2]
    # the refused calls changed nothing: every place ends at 0 after the final reset
    assert place_balances(outcome) == {"0": 0, "1": 0, "2": 0}


def test_misuse_awaiting_a_foreign_awaitable_fails() -> None:
    outcome = run_scenario(discipline.AwaitForeign(), partitions=3)
    assert outcome.result[:2] == ("error", "OrchestrationMisuseError")


def test_misuse_returning_with_pending_operation_fails() -> None:
    """Acceptance scenario 20: returning while a performed operation is pending fails the
    orchestration (the original's "completed prematurely" error) and its caller hears it."""
    outcome = run_scenario(discipline.PrematureReturn(), partitions=3)
    assert outcome.result[:2] == ("error", "OrchestrationMisuseError")
    seen = ok(run_scenario(discipline.TestMisuse(), partitions=3))
    assert seen == {"premature_return": "OrchestrationMisuseError",
                    "await_foreign": "OrchestrationMisuseError"}


# -- the whole suite as the startup orchestration ---------------------------------------------


def suite_results(outcome: Outcome) -> dict[str, Any]:
    assert outcome.result[0] == "completed", outcome.result
    results: dict[str, Any] = outcome.result[1]
    return results


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_suite_runs_every_test_from_startup(partitions: int) -> None:
    outcome = run_suite(partitions=partitions, seed=0)
    results = suite_results(outcome)
    assert list(results) == [
        "TestStates", "TestEvents", "TestEventsWithInit", "TestLocks",
        "TestRandomActivityCount", "TestForks", "TestCounters", "TestDiscipline", "TestMisuse",
    ]
    lines = outcome.lines
    assert lines[0] == "TestSuite Start" and lines[-1] == "TestSuite End"
    for name in ("TestEvents", "TestEventsWithInit", "TestLocks", "TestForks", "TestCounters",
                 "TestDiscipline", "TestMisuse"):
        assert lines.count(f"{name} Start") == 1, name
    assert lines.count("TestRandomActivityCount Start") == 3
    assert lines.count("LockedMultiEventOrchestration Start") == 2
    # the scenarios that do not hit a known core bug pass inside the suite as well
    assert results["TestEvents"]["ok"]["with_locks"] == [13, 13, 13]
    assert results["TestEventsWithInit"]["ok"]["second"]["accounts"] == [[101, 101]] * 8
    assert results["TestLocks"]["ok"]["randomized"] == [4, 4, 4]
    if partitions == 1:  # one partition always interleaves the unlocked increments
        assert results["TestLocks"]["ok"]["unlocked"] == 1
    assert results["TestForks"]["ok"]["batch_sums"] == [100, 100, 100]
    assert [r["ok"]["counts"] for r in results["TestRandomActivityCount"]] == [[1] * 10] * 3
    assert results["TestDiscipline"]["ok"]["after"] == [1, 1, 2]
    assert outcome.unhandled == []


@pytest.mark.parametrize("partitions", PARTITIONS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_suite_has_no_failures(partitions: int, seed: int) -> None:
    results = suite_results(run_suite(partitions=partitions, seed=seed))
    failed = {
        name: result
        for name, result in results.items()
        for result in (result if isinstance(result, list) else [result])
        if "failed" in result
    }
    assert failed == {}
    assert results["TestStates"]["ok"]["final_balance"] == 1
    assert results["TestMisuse"]["ok"]["premature_return"] == "OrchestrationMisuseError"


def test_scenarios_are_registered_operations() -> None:
    schema = build_app().compile()
    for cls in (states.TestStates, events.TestEvents, events.TestEventsWithInit,
                locks.TestLocks, counter.TestForks, counter.TestRandomActivityCount):
        assert issubclass(cls, Orchestration)
        assert schema.info(cls).name == cls.__name__


@pytest.mark.parametrize(("host", "partitions"), [("local", 3), ("folder", 3), ("azure", 4)])
def test_the_suite_gives_the_same_results_on_the_local_host(host: str, partitions: int) -> None:
    """The whole suite through the partition workers (in memory, in a state folder, on the
    Azure host's functions): the same result, final states, unhandled errors and log lines
    as on the emulator."""
    clean = run_suite(partitions=partitions, seed=0).comparable()
    local = run_suite(partitions=partitions, seed=0, host=host).comparable()
    for outcome in (clean, local):  # unlocked read-modify-writes lose updates by schedule
        lost = outcome["result"][1]["TestLocks"]["ok"].pop("unlocked")
        assert lost in (1, 2)
    assert local == clean
    assert local["states"] and local["result"][0] == "completed"
