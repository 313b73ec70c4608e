"""Crash at each step of the host loop, and duplicate deliveries: the workload's results
must equal the crash-free run's.

Each test runs the big workload (bank transfers, counter increments and events, pipelines
with activities, a durable timer and a retried activity) on an in-memory LocalHost whose
invocations crash, with a seeded probability, at one step ("processed", "sent-one", "sent",
"saved"); the driver catches the crash and carries on invoking.
"""

from __future__ import annotations

import functools
import json

import pytest

from .harness import (
    STEPS,
    Outcome,
    big_workload,
    check,
    duplicate_deliveries,
    new_host,
    run_workload,
    same_results,
)

WORKLOAD = big_workload()
SEEDS = (1, 2)


@functools.cache
def clean_run(partitions: int, seed: int) -> Outcome:
    outcome = run_workload(WORKLOAD, partitions=partitions, seed=seed)
    check(outcome, WORKLOAD)
    assert not outcome.stats.crashes
    return outcome


def test_the_clean_run_has_the_expected_results() -> None:
    """The reference itself: it completes everything, and its timers really ran."""
    clean = clean_run(4, 1)
    assert clean.stats.clock_moves >= 2  # the pipelines' sleeps and Flaky's retry timers
    assert clean_run(3, 2).statuses["bank"] == clean.statuses["bank"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("partitions", [3, 4])
@pytest.mark.parametrize("step", STEPS)
def test_crashes_at_one_step_change_nothing(step: str, partitions: int, seed: int) -> None:
    clean = clean_run(partitions, seed)
    faulty = run_workload(
        WORKLOAD, partitions=partitions, seed=seed, crash_steps=(step,), crash_probability=0.35
    )
    assert faulty.stats.crashes[step] > 0, f"no invocation crashed at {step!r}"
    check(faulty, WORKLOAD)
    same_results(faulty, clean, WORKLOAD)


@pytest.mark.parametrize("seed", SEEDS)
def test_crashes_with_small_batches_change_nothing(seed: int) -> None:
    """Batches of one or two records: "processed" and "sent" happen many times per
    invocation, so crashes land in the middle of an invocation's work."""
    clean = clean_run(4, seed)
    for batch_size in (1, 2):
        faulty = run_workload(
            WORKLOAD,
            partitions=4,
            seed=seed,
            batch_size=batch_size,
            crash_steps=("processed", "sent-one", "sent"),
            crash_probability=0.5,
        )
        assert sum(faulty.stats.crashes.values()) > 0
        check(faulty, WORKLOAD)
        same_results(faulty, clean, WORKLOAD)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("partitions", [1, 4])
def test_duplicate_deliveries_are_dropped(partitions: int, seed: int) -> None:
    """Records appended twice, and old records appended again later: every copy must be
    dropped (counters and balances would be off otherwise)."""
    clean = clean_run(partitions, seed) if partitions != 1 else None
    faulty = run_workload(WORKLOAD, partitions=partitions, seed=seed, duplicate_probability=0.3)
    assert faulty.stats.invocations > 0
    check(faulty, WORKLOAD)
    if clean is not None:
        same_results(faulty, clean, WORKLOAD)


def test_duplicates_were_really_injected() -> None:
    host = new_host(3)
    wrapper = duplicate_deliveries(host, seed=1, probability=0.3)
    client = host.client()
    for iid, orchestration in WORKLOAD.instances().items():
        client.start(orchestration, instance_id=iid)
    host.run()
    assert wrapper.duplicated > 10
    # copies of partition-to-partition messages (stamped with a sequence number) exist
    stamped: list[tuple[int, int, int]] = []
    for p in range(3):
        for record in host.transport.read(p, 0, 1_000_000):
            env = json.loads(record.data)
            if env["q"]:
                stamped.append((p, env["s"], env["q"]))
    assert len(stamped) > len(set(stamped))


@pytest.mark.parametrize("seed", SEEDS)
def test_crashes_everywhere_with_duplicates(seed: int) -> None:
    clean = clean_run(4, seed)
    faulty = run_workload(
        WORKLOAD,
        partitions=4,
        seed=seed,
        crash_steps=STEPS,
        crash_probability=0.3,
        duplicate_probability=0.2,
    )
    assert len(faulty.stats.crashes) >= 3
    check(faulty, WORKLOAD)
    same_results(faulty, clean, WORKLOAD)
