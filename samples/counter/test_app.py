from __future__ import annotations

import pytest

from hosts.emulator import Emulator, Faults
from reactive import StateNotFoundError
from samples.counter.app import (
    Count,
    CounterKey,
    EventCount,
    Increment,
    Incremented,
    IncrementMany,
    app,
)

FAULTS = [
    Faults(roundtrip=True, restore_probability=0.3, duplicate_probability=0.2, seed=s)
    for s in (1, 2, 3)
]


def test_first_increment_creates_the_counter() -> None:
    client = Emulator(app, partitions=4).client()
    with pytest.raises(StateNotFoundError):
        client.perform(Count(counter=7))
    assert client.perform(Increment(counter=7)) == 1
    assert client.perform(Count(counter=7)) == 1


def test_client_increments_count_up_in_order() -> None:
    client = Emulator(app, partitions=4).client()
    assert [client.perform(Increment(counter=3)) for _ in range(10)] == list(range(1, 11))
    assert client.perform(Count(counter=3)) == 10
    assert client.perform(Increment(counter=4)) == 1  # other ids are independent


@pytest.mark.parametrize("faults", [None, *FAULTS])
@pytest.mark.parametrize("parallel", [False, True])
def test_orchestration_increments_count_up_in_order(parallel: bool, faults: Faults | None) -> None:
    client = Emulator(app, partitions=4, faults=faults).client()
    assert client.perform(IncrementMany(counter=5, times=20, parallel=parallel)) == list(
        range(1, 21)
    )
    assert client.perform(Count(counter=5)) == 20


def test_forked_increment_is_visible_after_the_run() -> None:
    em = Emulator(app, partitions=4)
    client = em.client()
    for _ in range(3):
        client.fork(Increment(counter=11))
    em.run()
    assert client.perform(Count(counter=11)) == 3


@pytest.mark.parametrize("faults", [None, *FAULTS])
def test_events_count(faults: Faults | None) -> None:
    em = Emulator(app, partitions=4, faults=faults)
    client = em.client()
    for _ in range(6):
        client.perform(Incremented(counter=2))
    for _ in range(4):
        client.fork(Incremented(counter=2))
    em.run()
    assert client.perform(EventCount(counter=2)) == 10
    assert em.unhandled == []


def test_update_and_event_counters_are_separate_states() -> None:
    client = Emulator(app, partitions=4).client()
    client.perform(Incremented(counter=9))
    with pytest.raises(StateNotFoundError):
        client.perform(Count(counter=9))
    client.perform(Increment(counter=9))
    client.perform(Increment(counter=9))
    assert client.perform(EventCount(counter=9)) == 1
    assert client.perform(Count(counter=9)) == 2


def test_reading_a_missing_counter_fails() -> None:
    client = Emulator(app, partitions=4).client()
    with pytest.raises(StateNotFoundError):
        client.perform(Count(counter=42))
    with pytest.raises(StateNotFoundError):
        client.perform(EventCount(counter=42))


def test_round_robin_placement() -> None:
    em = Emulator(app, partitions=4)
    client = em.client()
    for k in range(6):
        client.perform(Increment(counter=k))
    info = em.schema.affinities_by_name["CounterKey"]
    for k in range(6):
        key = ("UpdateCounter", info.pkey(CounterKey(counter=k)))
        assert [key in part.states for part in em.parts] == [i == k % 4 for i in range(4)]
