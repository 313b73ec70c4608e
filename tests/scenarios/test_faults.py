"""The fault suite: the whole LocalTests suite under injected faults must give exactly the
results of the fault-free run with the same schedule seed.

Faults (hosts.emulator.Faults): every message round-trips through JSON; after a delivery
the receiving partition is, with some probability, snapshotted to bytes and replaced by a
restored copy (its orchestrations replay, its pending activities run again); messages are
delivered twice with some probability (the receiver must drop the copy). The fault dice
are separate from the scheduler's, so the faulty and fault-free runs make the same
scheduling choices, and everything observable must be identical: the suite's results, the
final value of every state, the unhandled errors, and the application log lines (each
emitted exactly once, so the multisets match although activities may run more than once).

By default 5 seeds run on 1, 3 and 5 partitions. For a longer sweep by hand:
``REACTIVE_FAULT_SEEDS=200 PYTHONPATH=. python3 -m pytest tests/scenarios/test_faults.py``
(``REACTIVE_FAULT_SEED_START`` moves the first seed, default 1).
"""

from __future__ import annotations

import functools
import os

import pytest

from hosts.emulator import Faults
from reactive import Orchestration

from . import counter, discipline, events, locks, states
from .suite import Outcome, run_scenario, run_suite

FIRST_SEED = int(os.environ.get("REACTIVE_FAULT_SEED_START", "1"))
SEEDS = range(FIRST_SEED, FIRST_SEED + int(os.environ.get("REACTIVE_FAULT_SEEDS", "5")))
PARTITIONS = [1, 3, 5]


def faults_for(seed: int, restore: float | None = None) -> Faults:
    """Round trips always; restores with probability 0.3, 0.4 or 0.5 (by seed) unless
    given; duplicates with probability 0.2."""
    return Faults(
        roundtrip=True,
        restore_probability=restore if restore is not None else 0.3 + 0.1 * (seed % 3),
        duplicate_probability=0.2,
        seed=seed,
    )


@functools.cache
def clean_suite(partitions: int, seed: int) -> Outcome:
    outcome = run_suite(partitions=partitions, seed=seed)
    assert outcome.result[0] == "completed", outcome.result
    return outcome


def assert_same_run(faulty: Outcome, clean: Outcome, partitions: int) -> None:
    # the faults really happened
    assert faulty.restores > 0
    if partitions > 1:  # one partition has no inter-partition channels to duplicate on
        assert faulty.duplicates_dropped > 0
    assert faulty.activity_runs >= clean.activity_runs  # at least once, maybe more
    # ...and changed nothing observable
    assert faulty.result == clean.result
    assert faulty.states == clean.states
    assert faulty.unhandled == clean.unhandled
    extra = faulty.line_counts() - clean.line_counts()
    missing = clean.line_counts() - faulty.line_counts()
    assert not extra and not missing, f"duplicated: {dict(extra)}, lost: {dict(missing)}"


@pytest.mark.parametrize("partitions", PARTITIONS)
@pytest.mark.parametrize("seed", SEEDS)
def test_suite_under_faults_matches_the_fault_free_run(partitions: int, seed: int) -> None:
    clean = clean_suite(partitions, seed)
    faulty = run_suite(partitions=partitions, seed=seed, faults=faults_for(seed))
    assert_same_run(faulty, clean, partitions)


@pytest.mark.slow
def test_suite_with_a_restore_after_every_delivery() -> None:
    """The harshest setting: every delivery is followed by a snapshot round trip."""
    clean = clean_suite(5, 0)
    faulty = run_suite(partitions=5, seed=0, faults=faults_for(0, restore=1.0))
    assert_same_run(faulty, clean, 5)


@pytest.mark.parametrize("partitions", PARTITIONS)
def test_fault_free_runs_are_reproducible(partitions: int) -> None:
    """The baseline itself: the same seed gives the same run (else comparing is moot)."""
    first, second = run_suite(partitions=partitions, seed=3), run_suite(partitions, seed=3)
    assert first.comparable() == second.comparable()
    assert first.lines == second.lines


SCENARIOS: list[Orchestration[object]] = [
    states.TestStates(),
    events.TestEvents(),
    events.TestEventsWithInit(),
    locks.TestLocks(),
    counter.TestRandomActivityCountParallel(),
    counter.TestForks(),
    counter.TestCounters(),
    discipline.TestDiscipline(),
    discipline.TestMisuse(),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: type(s).__name__)
@pytest.mark.parametrize("partitions", [3, 5])
def test_each_scenario_under_faults(scenario: Orchestration[object], partitions: int) -> None:
    """Each scenario alone, so that a divergence points at one test."""
    clean = run_scenario(scenario, partitions=partitions, seed=2)
    faulty = run_scenario(scenario, partitions=partitions, seed=2, faults=faults_for(2, 0.5))
    assert_same_run(faulty, clean, partitions)
