"""Seeded random schedules: each one runs a tiny random workload (bank transfers, counter
increments and events, maybe a pipeline with activities and timers) on 1 to 5 partitions,
with a random batch size (and sometimes a zero time budget: one batch per invocation),
in a random partition order, crashing invocations at random
steps, delivering records twice, and sometimes overtaking invocations with a second host
loop; then checks the invariants: money conserved and balances as the transfers imply,
counters exact, every orchestration completed exactly once with the right result, each
orchestration log line emitted exactly once, every activity run at least once.

By default 1,200 schedules run (in 12 chunks). For a longer sweep by hand:
``REACTIVE_SCHEDULES=10000 PYTHONPATH=. python3 -m pytest tests/hostloop/test_schedules.py``
(``REACTIVE_SCHEDULE_START`` moves the first seed, default 0; one failing schedule is
re-run alone with ``REACTIVE_SCHEDULE_START=<seed> REACTIVE_SCHEDULES=1``).
"""

from __future__ import annotations

import os
import random
from collections import Counter
from dataclasses import dataclass

import pytest

from .harness import STEPS, Workload, check, random_workload, run_workload

FIRST = int(os.environ.get("REACTIVE_SCHEDULE_START", "0"))
TOTAL = int(os.environ.get("REACTIVE_SCHEDULES", "1200"))
CHUNKS = min(12, TOTAL)

# how many schedules ran and failed in this process (the conftest prints it at the end)
RAN: Counter[str] = Counter()


@dataclass(frozen=True)
class Schedule:
    seed: int
    workload: Workload
    partitions: int
    batch_size: int
    crash_steps: tuple[str, ...]
    crash_probability: float
    duplicate_probability: float
    extra_loops: int
    overtake_probability: float
    time_budget: float | None  # 0: every invocation stops after one batch, with a backlog


def schedule(seed: int) -> Schedule:
    rng = random.Random(f"schedule-{seed}")
    workload = random_workload(rng)
    crash_steps = tuple(step for step in STEPS if rng.random() < 0.6) or STEPS
    extra_loops = 1 if rng.random() < 0.2 else 0
    return Schedule(
        seed=seed,
        workload=workload,
        partitions=rng.randint(1, 5),
        batch_size=rng.randint(1, 8),
        crash_steps=crash_steps,
        crash_probability=rng.choice([0.0, 0.1, 0.25, 0.4]),
        duplicate_probability=rng.choice([0.0, 0.1, 0.3]),
        extra_loops=extra_loops,
        overtake_probability=0.3 if extra_loops else 0.0,
        time_budget=0.0 if rng.random() < 0.25 else None,
    )


def run_schedule(seed: int) -> None:
    """Run schedule ``seed`` and check the invariants (AssertionError if one breaks)."""
    s = schedule(seed)
    outcome = run_workload(
        s.workload,
        partitions=s.partitions,
        seed=seed,
        batch_size=s.batch_size,
        crash_steps=s.crash_steps,
        crash_probability=s.crash_probability,
        duplicate_probability=s.duplicate_probability,
        extra_loops=s.extra_loops,
        overtake_probability=s.overtake_probability,
        time_budget=s.time_budget,
    )
    check(outcome, s.workload)


def chunk(n: int) -> range:
    size, extra = divmod(TOTAL, CHUNKS)
    start = FIRST + n * size + min(n, extra)
    return range(start, start + size + (1 if n < extra else 0))


@pytest.mark.parametrize("n", range(CHUNKS))
def test_random_schedules(n: int) -> None:
    failures: list[tuple[int, str]] = []
    for seed in chunk(n):
        RAN["schedules"] += 1
        try:
            run_schedule(seed)
        except AssertionError as exc:
            RAN["failed"] += 1
            failures.append((seed, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"))
    if failures:
        kinds = Counter(text.split(": ")[1] for _, text in failures)
        shown = "\n".join(f"  seed {seed}: {schedule(seed)}\n    {text}" for seed, text in
                          failures[:3])
        pytest.fail(
            f"{len(failures)} of {len(chunk(n))} schedules broke an invariant "
            f"({dict(kinds)}); first ones:\n{shown}",
            pytrace=False,
        )


def test_the_schedules_vary() -> None:
    """The sweep really covers what it claims: 1 to 5 partitions, batch sizes, crashes at
    every step, duplicates, overtaking loops, workloads with and without each part."""
    sample = [schedule(seed) for seed in range(FIRST, FIRST + 200)]
    assert {s.partitions for s in sample} == {1, 2, 3, 4, 5}
    assert {s.batch_size for s in sample} >= {1, 8}
    assert set().union(*(s.crash_steps for s in sample if s.crash_probability)) == set(STEPS)
    assert any(s.duplicate_probability for s in sample)
    assert any(s.extra_loops for s in sample)
    assert any(s.workload.pipelines for s in sample)
    assert any(s.workload.transfers for s in sample)
    assert any(s.workload.bumps for s in sample)
    assert any(not s.crash_probability for s in sample)
    assert any(s.time_budget == 0.0 for s in sample)
