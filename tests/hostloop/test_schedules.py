"""Seeded random schedules: each one runs a tiny random workload (bank transfers, counter
increments and events, maybe a pipeline with activities and timers) on 1 to 5 partitions
over a transport (the SQS FIFO double, the Event Hubs double, or the local host's logs in
a state folder, each invocation alone or sharing transactions as the folder's group
commit does), crashing invocations at random steps, letting a second invocation of a
partition commit first, losing acknowledgements, sending duplicates and retrying client
requests; then checks the invariants: money conserved and balances as the transfers
imply, counters exact, every orchestration completed exactly once with the right result,
each log line emitted exactly once, every activity run at least once, nothing left.

By default 1,000 schedules run per broker double and 100 on each folder mode. For a longer
sweep by hand: ``REACTIVE_SCHEDULES=10000 PYTHONPATH=. python3 -m pytest
tests/hostloop/test_schedules.py`` (``REACTIVE_SCHEDULE_START`` moves the first seed,
default 0; one failing schedule is re-run alone with ``REACTIVE_SCHEDULE_START=<seed>
REACTIVE_SCHEDULES=1``).
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from hosts.local import LocalHost, VirtualClock

from .harness import STEPS, Faults, Workload, app, check, random_workload, run_workload

FIRST = int(os.environ.get("REACTIVE_SCHEDULE_START", "0"))
TOTAL = int(os.environ.get("REACTIVE_SCHEDULES", "1000"))
FOLDER_TOTAL = max(1, TOTAL // 10)
CHUNKS = min(10, TOTAL)

# how many schedules ran and failed in this process (the conftest prints it at the end)
RAN: Counter[str] = Counter()


@dataclass(frozen=True)
class Schedule:
    seed: int
    workload: Workload
    partitions: int
    faults: Faults
    time_budget: float  # 0: an invocation commits after every activity or timer


def schedule(seed: int) -> Schedule:
    rng = random.Random(f"schedule-{seed}")
    workload = random_workload(rng)
    crash_steps = tuple(step for step in STEPS if rng.random() < 0.6) or STEPS
    concurrent = rng.random() < 0.3
    faults = Faults(
        crash_steps=crash_steps,
        crash_probability=rng.choice([0.0, 0.1, 0.25, 0.4]),
        overtake_probability=0.3 if concurrent else 0.0,
        second_consumer=0.3 if concurrent else 0.0,
        lost_ack=rng.choice([0.0, 0.1, 0.3]),
        duplicate_sends=rng.choice([0.0, 0.1, 0.3]),
        client_retries=rng.choice([0.0, 0.5]),
    )
    return Schedule(seed, workload, rng.randint(1, 5), faults,
                    0.0 if rng.random() < 0.25 else 5.0)


def run_schedule(kind: str, seed: int) -> None:
    """Run schedule ``seed`` and check the invariants (AssertionError if one breaks)."""
    s = schedule(seed)
    if kind in ("folder", "folder-grouped"):
        grouped = kind == "folder-grouped"
        # one driver per folder: its invocations never overlap, they share transactions;
        # a block failing after its output repeats that output (test_crash_matrix)
        steps = tuple(step for step in s.faults.crash_steps if step != "delivered")
        faults = (dataclasses.replace(s.faults, overtake_probability=0.0, second_consumer=0.0,
                                      crash_steps=steps or ("published",))
                  if grouped else s.faults)
        with tempfile.TemporaryDirectory(prefix="reactive-schedule-") as folder:
            host = LocalHost(app, partitions=s.partitions, state_dir=Path(folder),
                             clock=VirtualClock(), seed=seed, fsync=False)
            try:
                outcome = run_workload(s.workload, "local", s.partitions, seed, faults,
                                       s.time_budget, host, group_commit=grouped)
            finally:
                host.close()
    else:
        outcome = run_workload(s.workload, kind, s.partitions, seed, s.faults, s.time_budget)
    check(outcome, s.workload)


def chunk(n: int, total: int) -> range:
    chunks = min(CHUNKS, total)
    if n >= chunks:
        return range(0)
    size, extra = divmod(total, chunks)
    start = FIRST + n * size + min(n, extra)
    return range(start, start + size + (1 if n < extra else 0))


@pytest.mark.parametrize("kind", ["fifo", "eventhubs", "folder", "folder-grouped"])
@pytest.mark.parametrize("n", range(CHUNKS))
def test_random_schedules(kind: str, n: int) -> None:
    seeds = chunk(n, FOLDER_TOTAL if kind.startswith("folder") else TOTAL)
    failures: list[tuple[int, str]] = []
    for seed in seeds:
        RAN[kind] += 1
        try:
            run_schedule(kind, seed)
        except AssertionError as exc:
            RAN[f"{kind} failed"] += 1
            failures.append((seed, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"))
    if failures:
        kinds = Counter(text.split(": ")[1] for _, text in failures)
        shown = "\n".join(f"  seed {seed}: {schedule(seed)}\n    {text}" for seed, text in
                          failures[:3])
        pytest.fail(
            f"{kind}: {len(failures)} of {len(seeds)} schedules broke an invariant "
            f"({dict(kinds)}); first ones:\n{shown}",
            pytrace=False,
        )


def test_the_schedules_vary() -> None:
    """The sweep really covers what it claims: 1 to 5 partitions, crashes at every step,
    duplicates, concurrent invocations, retries, workloads with and without each part."""
    sample = [schedule(seed) for seed in range(FIRST, FIRST + 200)]
    assert {s.partitions for s in sample} == {1, 2, 3, 4, 5}
    assert set().union(*(s.faults.crash_steps for s in sample
                         if s.faults.crash_probability)) == set(STEPS)
    assert any(s.faults.duplicate_sends for s in sample)
    assert any(s.faults.overtake_probability for s in sample)
    assert any(s.faults.lost_ack for s in sample)
    assert any(s.faults.client_retries for s in sample)
    assert any(s.workload.pipelines for s in sample)
    assert any(s.workload.transfers for s in sample)
    assert any(s.workload.bumps for s in sample)
    assert any(not s.faults.crash_probability for s in sample)
    assert any(s.time_budget == 0.0 for s in sample)
