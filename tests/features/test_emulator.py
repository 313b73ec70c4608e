"""The emulator itself: seeded, reproducible runs; option validation."""

from __future__ import annotations

from typing import Any

import pytest

from hosts.emulator import Emulator, Faults
from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    Update,
    UpdateContext,
)
from tests.features._support import faults


class ListKey(Affinity):
    board: str


class Items(State[ListKey]):
    items: list[str] = []


class Push(ListKey, Update[Items, int], create=True):
    item: str

    def execute(self, ctx: UpdateContext[Items]) -> int:
        ctx.state.items.append(self.item)
        return len(ctx.state.items)


class Pushed(ListKey, Read[Items, list[str]]):
    def execute(self, ctx: ReadContext[Items]) -> list[str]:
        return list(ctx.state.items)


class Label(Activity[str]):
    n: int

    def execute(self, ctx: ActivityContext) -> str:
        return f"item-{self.n}"


class Pusher(Orchestration[int]):
    n: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        label = await ctx.perform(Label(n=self.n))
        await ctx.sleep(self.n % 3)
        ctx.log.info("pushing %s", label)
        return await ctx.perform(Push(board="shared", item=label))


app = App("emulator")
app.register(Pusher, Label, Push, Pushed)


def race(em: Emulator) -> dict[str, Any]:
    """Ten instances race to append to one list: the order depends on the schedule."""
    client = em.client()
    ids = [client.start(Pusher(n=i)) for i in range(10)]
    positions = [client.wait(i) for i in ids]
    return {
        "ids": ids,
        "positions": positions,
        "items": client.perform(Pushed(board="shared")),
        "lines": em.app_lines(),
        "deliveries": em.deliveries,
    }


def test_the_same_seed_reproduces_the_same_run() -> None:
    first = race(Emulator(app, partitions=4, seed=7))
    second = race(Emulator(app, partitions=4, seed=7))
    assert first == second


def test_the_same_seed_reproduces_the_same_results_under_faults() -> None:
    plain = race(Emulator(app, partitions=4, seed=7))
    faulty = race(Emulator(app, partitions=4, seed=7, faults=faults(3)))
    for key in ("ids", "positions", "items", "lines"):
        assert faulty[key] == plain[key], key


def test_different_seeds_explore_different_schedules() -> None:
    orders = {tuple(race(Emulator(app, partitions=4, seed=s))["items"]) for s in range(8)}
    assert len(orders) > 1
    for order in orders:
        assert sorted(order) == sorted(f"item-{i}" for i in range(10))


@pytest.mark.parametrize("partitions", [1, 2, 5, 8])
def test_results_do_not_depend_on_the_partition_count(partitions: int) -> None:
    result = race(Emulator(app, partitions=partitions, seed=1))
    assert sorted(result["positions"]) == list(range(1, 11))
    assert sorted(result["items"]) == sorted(f"item-{i}" for i in range(10))


def test_invalid_options_are_rejected() -> None:
    with pytest.raises(ValueError):
        Emulator(app, partitions=0)
    with pytest.raises(ValueError):
        Faults(restore_probability=1.5)
    with pytest.raises(ValueError):
        Faults(duplicate_probability=-0.1)


def test_extreme_faults_still_give_the_fault_free_results() -> None:
    plain = race(Emulator(app, partitions=3, seed=2))
    extreme = Faults(roundtrip=True, restore_probability=1.0, duplicate_probability=1.0, seed=5)
    em = Emulator(app, partitions=3, seed=2, faults=extreme)
    faulty = race(em)
    assert em.restores > 0
    for key in ("ids", "positions", "items", "lines"):
        assert faulty[key] == plain[key], key
