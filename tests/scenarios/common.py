"""Shared pieces of the scenario application: the failure type and the test base class."""

from __future__ import annotations

from typing import Any, ClassVar

from reactive import Orchestration, OrchestrationContext

Observations = dict[str, Any]
"""What a test orchestration saw, as JSON-ready data (str keys)."""


class TestFailure(Exception):
    """An application-level assertion failed; registered so it reaches callers with its type."""

    __test__: ClassVar[bool] = False


def check_equal(expected: Any, actual: Any, what: str) -> None:
    """The suite's assertion: raise :class:`TestFailure` unless ``actual == expected``."""
    if expected != actual:
        raise TestFailure(f"{what}: expected {expected!r}, actual {actual!r}")


class TestOrchestration(Orchestration[Observations]):
    """Base of the test orchestrations: logs "<Name> Start" / "<Name> End" (or "<Name> Test
    Failure ..." before re-raising) around :meth:`run`, and returns what ``run`` observed."""

    __test__: ClassVar[bool] = False

    async def execute(self, ctx: OrchestrationContext) -> Observations:
        name = type(self).__name__
        ctx.log.info("%s Start", name)
        try:
            observed = await self.run(ctx)
        except TestFailure as failure:
            ctx.log.info("%s Test Failure %s", name, failure)
            raise
        ctx.log.info("%s End", name)
        return observed

    async def run(self, ctx: OrchestrationContext) -> Observations:
        raise NotImplementedError(f"{type(self).__name__}.run is not defined")
