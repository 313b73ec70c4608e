"""Read-only orchestrations may read (and call read-only orchestrations), nothing else."""

from __future__ import annotations

from typing import Any

import pytest

from hosts.emulator import Emulator
from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    Event,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    ReadOrchestration,
    State,
    SubscriptionContext,
    SynchronizationDisciplineError,
    Update,
    UpdateContext,
    subscribe,
)
from tests.features._support import fault_free_and_faulty


class ShelfKey(Affinity):
    shelf: str


class Shelved(ShelfKey, Event):
    pass


class Shelf(State[ShelfKey]):
    books: int = 0

    @subscribe(Shelved)
    def on_shelved(self, ctx: SubscriptionContext, event: Shelved) -> None:
        self.books += 1


class AddBook(ShelfKey, Update[Shelf, int], create=True):
    def execute(self, ctx: UpdateContext[Shelf]) -> int:
        ctx.state.books += 1
        return ctx.state.books


class CountBooks(ShelfKey, Read[Shelf, int]):
    def execute(self, ctx: ReadContext[Shelf]) -> int:
        return ctx.state.books


class Lookup(Activity[int]):
    def execute(self, ctx: ActivityContext) -> int:
        return 1


class Writer(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return await ctx.perform(AddBook(shelf="w"))


class CountAll(ReadOrchestration[int]):
    shelves: list[str]

    async def execute(self, ctx: OrchestrationContext) -> int:
        counts = await ctx.all(*(ctx.perform(CountBooks(shelf=s)) for s in self.shelves))
        return sum(counts)


class Summary(ReadOrchestration[list[int]]):
    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        total = await ctx.perform(CountAll(shelves=["a", "b"]))
        single = await ctx.perform(CountBooks(shelf="a"))
        return [total, single]


class TriesTo(ReadOrchestration[str]):
    what: str

    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            if self.what == "update":
                ctx.perform(AddBook(shelf="a"))
            elif self.what == "event":
                ctx.perform(Shelved(shelf="a"))
            elif self.what == "activity":
                ctx.perform(Lookup())
            elif self.what == "orchestration":
                ctx.perform(Writer())
            elif self.what == "fork read":
                ctx.fork(CountBooks(shelf="a"))
            elif self.what == "fork update":
                ctx.fork(AddBook(shelf="a"))
        except SynchronizationDisciplineError as exc:
            return f"refused: {exc}"
        return "allowed"


app = App("read-only")
app.register(AddBook, CountBooks, Lookup, Writer, CountAll, Summary, TriesTo, Shelved)


def test_read_only_orchestrations_read_and_call_read_only_orchestrations() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        for shelf, n in (("a", 2), ("b", 3)):
            for _ in range(n):
                client.perform(AddBook(shelf=shelf))
        return client.perform(Summary())

    assert fault_free_and_faulty(app, scenario) == [5, 2]


@pytest.mark.parametrize(
    "what", ["update", "event", "activity", "orchestration", "fork read", "fork update"]
)
def test_read_only_orchestrations_may_not_do_anything_else(what: str) -> None:
    em = Emulator(app, partitions=2)
    client = em.client()
    client.perform(AddBook(shelf="a"))
    result = client.perform(TriesTo(what=what))
    assert result.startswith("refused: ")
    assert "TriesTo" in result
    em.run()
    assert client.perform(CountBooks(shelf="a")) == 1  # nothing was changed


def test_an_uncaught_refusal_fails_the_read_only_orchestration() -> None:
    class Sneaky(ReadOrchestration[int]):
        async def execute(self, ctx: OrchestrationContext) -> int:
            return await ctx.perform(AddBook(shelf="a"))

    local = App("sneaky")
    local.register(Sneaky, AddBook)
    client = Emulator(local, partitions=2).client()
    with pytest.raises(SynchronizationDisciplineError):
        client.perform(Sneaky())
