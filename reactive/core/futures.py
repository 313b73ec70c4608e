"""Combinations of futures the runtime builds for ``ctx.all``, ``ctx.any`` and ``finish``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reactive.errors import OrchestrationMisuseError
from reactive.futures import Future


class AllFuture(Future[list[Any]]):
    """Resolves when every child has resolved; fails with the first failure in argument
    order (``settle=True``: never fails, for ``finish()``).

    Linear in the number of children: each child's resolution only decrements a count,
    and the children are inspected once, when the last one resolves."""

    __slots__ = ("_children", "_remaining", "_settle")

    def __init__(
        self, owner: object, children: Sequence[Future[Any]], settle: bool = False
    ) -> None:
        super().__init__(owner)
        self._children = list(children)
        self._settle = settle
        self._remaining = len(self._children)
        for child in self._children:
            child._on_done(self._child_done)
        if not self._children:
            self._resolve(True, [])

    def _child_done(self, _: Future[Any]) -> None:
        self._remaining -= 1
        if self._remaining or self._done:
            return
        if not self._settle:
            for child in self._children:
                if not child._ok:
                    self._resolve(False, child._value)
                    return
        self._resolve(True, [c._value if c._ok else None for c in self._children])


class AnyFuture(Future[Future[Any]]):
    """Resolves with the first child future to resolve (argument order breaks ties)."""

    __slots__ = ()

    def __init__(self, owner: object, children: Sequence[Future[Any]]) -> None:
        super().__init__(owner)
        if not children:
            raise OrchestrationMisuseError("any() needs at least one future")
        for child in children:
            child._raced = True
        for child in children:
            if child._done:
                self._resolve(True, child)
                return
        for child in children:
            child._on_done(self._first)

    def _first(self, child: Future[Any]) -> None:
        self._resolve(True, child)
