"""Placement: which partition owns a key or an orchestration instance."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from hosts.emulator import Emulator
from reactive import (
    Affinity,
    App,
    Orchestration,
    OrchestrationContext,
    SingletonAffinity,
    State,
    Update,
    UpdateContext,
)
from reactive.schema import Schema

ROOT = Path(__file__).resolve().parents[2]


class UserKey(Affinity):
    user: str


class SlotKey(Affinity, round_robin=True):
    slot: int


class LabelKey(Affinity, round_robin=True):
    label: str


class PinnedKey(Affinity, partition=2):
    pinned: str


class GroupKey(Affinity):
    group: str


class Ledger(SingletonAffinity):
    pass


class Server(SingletonAffinity, partition=1):
    pass


class User(State[UserKey]):
    n: int = 0


class Slot(State[SlotKey]):
    n: int = 0


class Pinned(State[PinnedKey]):
    n: int = 0


class Books(State[Ledger]):
    n: int = 0


class ServerState(State[Server]):
    n: int = 0


class TouchUser(UserKey, Update[User, int], create=True):
    def execute(self, ctx: UpdateContext[User]) -> int:
        ctx.state.n += 1
        return ctx.state.n


class TouchSlot(SlotKey, Update[Slot, int], create=True):
    def execute(self, ctx: UpdateContext[Slot]) -> int:
        ctx.state.n += 1
        return ctx.state.n


class TouchPinned(PinnedKey, Update[Pinned, int], create=True):
    def execute(self, ctx: UpdateContext[Pinned]) -> int:
        ctx.state.n += 1
        return ctx.state.n


class TouchBooks(Ledger, Update[Books, int], create=True):
    def execute(self, ctx: UpdateContext[Books]) -> int:
        ctx.state.n += 1
        return ctx.state.n


class TouchServer(Server, Update[ServerState, int], create=True):
    def execute(self, ctx: UpdateContext[ServerState]) -> int:
        ctx.state.n += 1
        return ctx.state.n


class Noop(Orchestration[None]):
    async def execute(self, ctx: OrchestrationContext) -> None:
        return None


app = App("placement")
app.register(TouchUser, TouchSlot, TouchPinned, TouchBooks, TouchServer, Noop, LabelKey, GroupKey)


def schema() -> Schema:
    return app.compile()


def owner(affinity: Affinity, partitions: int) -> int:
    s = schema()
    info = s.affinities_by_name[type(affinity).__name__]
    return s.owner(info.pkey(affinity), partitions)


def where_state_lives(em: Emulator, state: str) -> set[int]:
    return {p.index for p in em.parts for (name, _) in p.states if name == state}


PLACEMENT_SCRIPT = """
import json, sys
from tests.core.test_placement import UserKey, SlotKey, owner, schema
keys = [f"user-{i}" for i in range(200)] + ["", "ünïcode", "with space", "42"]
out = {
    "keys": {k: [owner(UserKey(user=k), n) for n in (1, 2, 3, 4, 7, 16, 64)] for k in keys},
    "slots": [owner(SlotKey(slot=i), 5) for i in range(20)],
    "instances": {k: [schema().instance_owner(k, n) for n in (2, 4, 16)] for k in keys},
}
json.dump(out, sys.stdout, sort_keys=True)
"""


def _placement_in_subprocess(hash_seed: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", PLACEMENT_SCRIPT],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_placement_is_stable_across_processes_with_different_hash_seeds() -> None:
    first = _placement_in_subprocess("1")
    second = _placement_in_subprocess("987654")
    assert first == second
    local = json.loads(json.dumps(first))
    counts = (1, 2, 3, 4, 7, 16, 64)
    assert local["keys"]["user-0"] == [owner(UserKey(user="user-0"), n) for n in counts]
    assert local["instances"]["user-7"] == [
        schema().instance_owner("user-7", n) for n in (2, 4, 16)
    ]


def test_placement_is_in_range_and_deterministic() -> None:
    for n in (1, 2, 3, 8, 33):
        for i in range(300):
            p = owner(UserKey(user=f"u{i}"), n)
            assert 0 <= p < n
            assert p == owner(UserKey(user=f"u{i}"), n)
            q = Schema.instance_owner(f"i{i}", n)
            assert 0 <= q < n


def test_one_partition_owns_everything() -> None:
    assert {owner(UserKey(user=f"u{i}"), 1) for i in range(50)} == {0}
    assert owner(Server(), 1) == 0
    assert owner(PinnedKey(pinned="x"), 1) == 0


def test_affinity_name_is_part_of_the_hash() -> None:
    same = [
        owner(UserKey(user=f"k{i}"), 64) == owner(GroupKey(group=f"k{i}"), 64) for i in range(100)
    ]
    assert not all(same)


def test_keys_spread_over_partitions() -> None:
    partitions = 4
    counts = Counter(owner(UserKey(user=f"user-{i}"), partitions) for i in range(4000))
    assert set(counts) == set(range(partitions))
    for p in range(partitions):
        assert 800 <= counts[p] <= 1200, counts


def test_instances_spread_over_partitions() -> None:
    partitions = 8
    counts = Counter(Schema.instance_owner(f"instance-{i}", partitions) for i in range(8000))
    assert set(counts) == set(range(partitions))
    for p in range(partitions):
        assert 800 <= counts[p] <= 1200, counts


def test_growing_the_partition_count_moves_keys_only_to_the_new_partition() -> None:
    moved = 0
    for i in range(2000):
        before = owner(UserKey(user=f"u{i}"), 4)
        after = owner(UserKey(user=f"u{i}"), 5)
        if before != after:
            moved += 1
            assert after == 4
    assert 200 <= moved <= 600  # about a fifth


def test_round_robin_places_integer_keys_by_modulo() -> None:
    for partitions in (1, 3, 5):
        assert [owner(SlotKey(slot=i), partitions) for i in range(12)] == [
            i % partitions for i in range(12)
        ]


def test_round_robin_with_non_integer_keys_falls_back_to_hashing() -> None:
    spots = {owner(LabelKey(label=f"l{i}"), 4) for i in range(100)}
    assert spots == {0, 1, 2, 3}


def test_singletons_live_on_partition_zero() -> None:
    for partitions in (1, 2, 5):
        assert owner(Ledger(), partitions) == 0


def test_pins() -> None:
    assert owner(Server(), 4) == 1
    assert {owner(PinnedKey(pinned=f"p{i}"), 4) for i in range(50)} == {2}


@pytest.mark.parametrize("partitions", [3, 4])
def test_states_are_stored_at_their_owner(partitions: int) -> None:
    em = Emulator(app, partitions=partitions)
    client = em.client()
    for i in range(12):
        client.perform(TouchUser(user=f"u{i}"))
        client.perform(TouchSlot(slot=i))
    client.perform(TouchPinned(pinned="x"))
    client.perform(TouchBooks())
    client.perform(TouchServer())
    assert where_state_lives(em, "Books") == {0}
    assert where_state_lives(em, "ServerState") == {1}
    assert where_state_lives(em, "Pinned") == {2}
    for part in em.parts:
        for (name, key) in part.states:
            if name == "User":
                assert owner(UserKey(user=json.loads(key[1])), partitions) == part.index
            if name == "Slot":
                assert json.loads(key[1]) % partitions == part.index
    assert len(where_state_lives(em, "User")) > 1


def test_orchestration_instances_run_at_the_owner_of_their_id() -> None:
    em = Emulator(app, partitions=4)
    client = em.client()
    for i in range(20):
        iid = f"noop-{i}"
        client.wait(client.start(Noop(), instance_id=iid))
        home = Schema.instance_owner(iid, 4)
        assert em.parts[home].instance_status(iid) is not None
        assert all(p.instance_status(iid) is None for p in em.parts if p.index != home)
