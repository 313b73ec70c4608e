"""Fan-in combinators: ctx.all and ctx.any cost time linear in the number of futures."""

from __future__ import annotations

from typing import Any

import pytest

from reactive.core.futures import AllFuture, AnyFuture
from reactive.futures import Future


class CountingFuture(Future[int]):
    """A future that counts how often anyone asks whether it is done."""

    __slots__ = ("_really_done",)
    checks = 0

    @property
    def _done(self) -> bool:
        CountingFuture.checks += 1
        return self._really_done

    @_done.setter
    def _done(self, value: bool) -> None:
        self._really_done = value


@pytest.fixture(autouse=True)
def _reset() -> None:
    CountingFuture.checks = 0


def test_all_looks_at_each_child_a_constant_number_of_times() -> None:
    n = 4000
    owner = object()
    children = [CountingFuture(owner) for _ in range(n)]
    combined = AllFuture(owner, children)
    for i, child in enumerate(children):
        child._resolve(True, i)
    assert combined.result() == list(range(n))
    # a re-check of every child on each resolution would make this about n * n / 2
    assert CountingFuture.checks <= 10 * n


def test_all_still_fails_with_the_first_failure_in_argument_order() -> None:
    owner = object()
    children: list[Future[Any]] = [Future(owner) for _ in range(3)]
    combined = AllFuture(owner, children)
    children[2]._resolve(False, ValueError("late in order, early in time"))
    children[0]._resolve(True, 1)
    assert not combined.done()
    children[1]._resolve(False, KeyError("first in order"))
    with pytest.raises(KeyError, match="first in order"):
        combined.result()


def test_all_counts_a_future_passed_twice_and_already_resolved_ones() -> None:
    owner = object()
    done: Future[int] = Future(owner)
    done._resolve(True, 7)
    pending: Future[int] = Future(owner)
    combined = AllFuture(owner, [done, pending, pending])
    assert not combined.done()
    pending._resolve(True, 8)
    assert combined.result() == [7, 8, 8]


def test_any_looks_at_each_child_a_constant_number_of_times() -> None:
    n = 4000
    owner = object()
    children = [CountingFuture(owner) for _ in range(n)]
    first = AnyFuture(owner, children)
    for i in reversed(range(n)):
        children[i]._resolve(True, i)
    assert first.result() is children[-1]
    assert CountingFuture.checks <= 10 * n
