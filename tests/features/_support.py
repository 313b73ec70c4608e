"""Helpers shared by the feature tests: fault-injected runs and key placement."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from hosts.emulator import Emulator, Faults
from hosts.local import LocalHost, VirtualClock
from reactive import Affinity, App
from reactive.core.partition import Partition
from reactive.hosting import Host

T = TypeVar("T")

FAULT_SEEDS = (1, 2, 3)
# hosts every scenario also runs on: the local host's workers in memory and in a folder
OTHER_HOSTS = tuple(h for h in os.environ.get("REACTIVE_FEATURE_HOSTS", "local,folder,aws,azure")
                    .split(",") if h)
# hosts made by a factory of their own: kind -> "module:function(app, partitions, seed)",
# a context manager yielding the host (imported on first use): the library's test hosts
# (hosts/aws/testing.py, hosts/azure/testing.py) on the services the fixtures start
HOST_FACTORIES = {
    "aws": "tests.aws.feature_host:aws_host",
    "azure": "tests.azure.feature_host:azure_host",
}


@contextlib.contextmanager
def local_host(kind: str, app: App, partitions: int, seed: int) -> Iterator[Host]:
    """A LocalHost on a virtual clock, in memory (``local``) or in a temporary folder; or
    the host a factory in HOST_FACTORIES makes (imported only when asked for). Each
    implements the one host interface."""
    if kind in HOST_FACTORIES:
        module, _, name = HOST_FACTORIES[kind].partition(":")
        with getattr(importlib.import_module(module), name)(app, partitions, seed) as other:
            yield other
        return
    with tempfile.TemporaryDirectory(prefix="reactive-feature-") as folder:
        host = LocalHost(app, partitions=partitions, seed=seed, clock=VirtualClock(),
                         state_dir=Path(folder) if kind == "folder" else None, fsync=False)
        try:
            yield host
        finally:
            host.close()


def faults(seed: int) -> Faults:
    """The fault mix every scenario must survive unchanged."""
    return Faults(roundtrip=True, restore_probability=0.5, duplicate_probability=0.3, seed=seed)


def fault_free_and_faulty(
    app: App,
    scenario: Callable[[Emulator], T],
    partitions: int = 4,
    seed: int = 0,
    fault_seeds: tuple[int, ...] = FAULT_SEEDS,
    same_on_every_host: bool = True,
) -> T:
    """Run ``scenario`` on a fault-free emulator, then under faults with each seed; every
    faulty run must return exactly the fault-free result, which is returned. The scenario
    also runs on the local host's workers (in memory and in a folder), with the same
    result unless ``same_on_every_host`` is false (a result made of timestamps: the
    emulator's virtual clock ticks a millisecond per delivery, the local host's does not)."""
    expected = scenario(Emulator(app, partitions=partitions, seed=seed))
    for kind in OTHER_HOSTS:  # the same scenario through the partition workers
        with local_host(kind, app, partitions, seed) as host:
            got = scenario(host)  # type: ignore[arg-type]
        if same_on_every_host:
            assert got == expected, f"{kind} host: {got!r} != emulator {expected!r}"
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
