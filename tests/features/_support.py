"""Helpers shared by the feature tests: fault-injected runs and key placement."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from hosts.emulator import Emulator, Faults
from reactive import Affinity, App
from reactive.core.partition import Partition

T = TypeVar("T")

FAULT_SEEDS = (1, 2, 3)


def faults(seed: int) -> Faults:
    """The fault mix every scenario must survive unchanged."""
    return Faults(roundtrip=True, restore_probability=0.5, duplicate_probability=0.3, seed=seed)


def fault_free_and_faulty(
    app: App,
    scenario: Callable[[Emulator], T],
    partitions: int = 4,
    seed: int = 0,
    fault_seeds: tuple[int, ...] = FAULT_SEEDS,
) -> T:
    """Run ``scenario`` on a fault-free emulator, then under faults with each seed; every
    faulty run must return exactly the fault-free result, which is returned."""
    expected = scenario(Emulator(app, partitions=partitions, seed=seed))
    restores = 0
    for fault_seed in fault_seeds:
        em = Emulator(app, partitions=partitions, seed=seed, faults=faults(fault_seed))
        got = scenario(em)
        restores += em.restores
        assert got == expected, f"fault seed {fault_seed}: {got!r} != fault-free {expected!r}"
    assert restores > 0, "the faulty runs restored no partition: the faults were not exercised"
    return expected


def key_on(
    app: App, affinity: type[Affinity], partition: int, partitions: int, prefix: str = "k"
) -> str:
    """A string key of ``affinity`` that the placement puts on ``partition``."""
    schema = app.compile()
    info = schema.affinities_by_name[affinity.__name__]
    for i in range(10_000):
        candidate = f"{prefix}{i}"
        obj = affinity.model_validate({info.key_field: candidate})
        if schema.owner(info.pkey(obj), partitions) == partition:
            return candidate
    raise AssertionError(f"no key of {affinity.__name__} lands on partition {partition}")


def instance_owner(em: Emulator, instance_id: str) -> int:
    return em.schema.instance_owner(instance_id, em.count)


def snapshot_bytes(part: Partition) -> dict[str, Any]:
    """A partition's snapshot after a trip through JSON bytes, as a host stores it."""
    data: dict[str, Any] = json.loads(json.dumps(part.snapshot()).encode())
    return data
