from __future__ import annotations

import pytest

from hosts.emulator import Emulator, Faults
from samples.pingpong.app import ROUNDS, ClientState, ReadPings, ReadPongs, ServerState, app


@pytest.mark.parametrize(
    "faults",
    [
        None,
        *(
            Faults(roundtrip=True, restore_probability=0.3, duplicate_probability=0.2, seed=s)
            for s in (1, 2, 3)
        ),
    ],
)
def test_a_hundred_rounds_then_quiescence(faults: Faults | None) -> None:
    em = Emulator(app, partitions=2, faults=faults)
    assert em.run() is True  # returns only once nothing is left to deliver
    assert not em.step() and em.next_due() is None
    client = em.client()
    assert client.perform(ReadPings()) == ROUNDS
    assert client.perform(ReadPongs()) == ROUNDS
    assert em.unhandled == []
    if faults is not None:
        assert em.restores > 0


def test_states_live_on_their_pinned_partitions() -> None:
    em = Emulator(app, partitions=2)
    em.run()
    placed = {name: i for i, part in enumerate(em.parts) for (name, _) in part.states}
    assert placed == {ClientState.__name__: 0, ServerState.__name__: 1}
