"""The scenario application, the TestSuite startup orchestration, and a harness that runs
an orchestration on the emulator and collects everything observable about the run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

from hosts.emulator import Emulator, Faults
from reactive import App, Future, Orchestration, OrchestrationContext
from tests.features._support import local_host

from . import counter, discipline, events, locks, places, states
from .common import Observations, TestFailure, TestOrchestration

CLASSES: list[type] = [
    TestFailure,
    # counter
    counter.Counter1, counter.Counter2, counter.IncrementUpdate, counter.ReadCounter1,
    counter.ReadCounter2, counter.IncrementThenRead, counter.CounterIncrementEvent,
    counter.DeriveGuid, counter.TestForks, counter.TestRandomActivityCount, counter.TestCounters,
    counter.TestRandomActivityCountParallel,
    # states
    states.AccountState, states.ReadBalance, states.TryWithdraw, states.Deposit,
    states.GlobalCounterState, states.ReadGlobalCounter, states.SomeEvent, states.CreateAccount,
    states.TestStates,
    # places, locks, events
    places.PlaceState, places.GetBalance, places.SetBalance, places.IncrementBalance,
    places.IncrementEvent, places.BadReadModifyWriteIncrement,
    places.GoodReadModifyWriteIncrement1, places.GoodReadModifyWriteIncrement2,
    places.ExecuteAt, places.RandomizeOrchestration, places.ExecuteEventAt,
    places.RandomizeEvent, locks.TestLocks, events.TestEvents, events.AccountState1,
    events.AccountState2, events.ReadBalance1, events.ReadBalance2, events.MultiEventThree,
    events.InitializationActivity, events.LockedMultiEventOrchestration,
    events.TestEventsWithInit, events.LockedEventThenReadSecond,
    # discipline and misuse
    discipline.MoveTwo, discipline.LockedProbe, discipline.ExistsProbe,
    discipline.LockedExistsProbe, discipline.NestedLocked,
    discipline.LockedActivity, discipline.CallLockedActivity,
    discipline.CallLockedActivityLocked, discipline.ReadOnlyProbe, discipline.TestDiscipline,
    discipline.PrematureReturn, discipline.AwaitForeign, discipline.TestMisuse,
]


async def attempt(future: Future[Any]) -> Any:
    """``{"ok": result}``, or ``{"failed": "<type>: <message>"}`` when the test raised:
    like the original suite, one failing test does not stop the others."""
    try:
        return {"ok": await future}
    except Exception as exc:
        return {"failed": f"{type(exc).__name__}: {exc}"}


class TestSuite(Orchestration[Observations]):
    """The original's startup orchestration: the tests one after the other (the three
    TestRandomActivityCount in parallel), then this port's extra scenarios. Returns each
    test's outcome by name (see :func:`attempt`)."""

    __test__: ClassVar[bool] = False

    async def execute(self, ctx: OrchestrationContext) -> Observations:
        ctx.log.info("TestSuite Start")
        observed: Observations = {}
        for test in (states.TestStates(), events.TestEvents(), events.TestEventsWithInit(),
                     locks.TestLocks()):
            observed[type(test).__name__] = await attempt(ctx.perform(test))
        parallel = [ctx.perform(counter.TestRandomActivityCount()) for _ in range(3)]
        observed["TestRandomActivityCount"] = [await attempt(f) for f in parallel]
        observed["TestForks"] = await attempt(ctx.perform(counter.TestForks()))
        extras: tuple[TestOrchestration, ...] = (
            counter.TestCounters(), discipline.TestDiscipline(), discipline.TestMisuse()
        )
        for test in extras:
            observed[type(test).__name__] = await attempt(ctx.perform(test))
        ctx.log.info("TestSuite End")
        return observed


def build_app(startup: bool = False) -> App:
    """A fresh application with every scenario class; ``startup`` adds TestSuite as its
    first-start orchestration."""
    app = App("localtests")
    app.register(*CLASSES, TestSuite)
    if startup:
        app.on_first_start(TestSuite())
    return app


SUITE_INSTANCE = "startup-0-TestSuite"
"""The instance id the runtime gives the (only) startup orchestration."""


@dataclass
class Outcome:
    """Everything observable about one run."""

    result: Any  # ("ok", value) or ("error", type name, message)
    states: dict[str, Any]  # "<State> <affinity> <key>" -> the state's fields
    lines: list[str]  # application log lines, in emission order
    unhandled: list[str]
    restores: int
    duplicates_dropped: int
    activity_runs: int

    def comparable(self) -> dict[str, Any]:
        """What must not change when faults are injected."""
        return {"result": self.result, "states": self.states, "unhandled": self.unhandled}

    def line_counts(self) -> Counter[str]:
        return Counter(self.lines)


def final_states(em: Emulator) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for part in em.parts:
        for (name, (affinity, key)), state in part.states.items():
            found[f"{name} {affinity} {key}"] = state.model_dump(mode="json")
    return dict(sorted(found.items()))


def _collect(em: Emulator, result: Any) -> Outcome:
    return Outcome(
        result=result,
        states=final_states(em),
        lines=em.app_lines(),
        unhandled=list(em.unhandled),
        restores=em.restores,
        duplicates_dropped=em.duplicates_dropped,
        activity_runs=em.activity_runs,
    )


def run_scenario(
    orchestration: Orchestration[Any],
    partitions: int = 5,
    seed: int = 0,
    faults: Faults | None = None,
    instance_id: str = "scenario",
) -> Outcome:
    """Start ``orchestration`` from a client, wait for it, then run to quiescence."""
    em = Emulator(build_app(), partitions=partitions, seed=seed, faults=faults)
    client = em.client()
    iid = client.start(orchestration, instance_id=instance_id)
    try:
        result: Any = ("ok", client.wait(iid))
    except Exception as exc:
        result = ("error", type(exc).__name__, str(exc))
    em.run()
    return _collect(em, result)


def run_suite(partitions: int = 5, seed: int = 0, faults: Faults | None = None,
              host: str = "emulator") -> Outcome:
    """Start the application with TestSuite as its startup orchestration, run it to
    quiescence, and collect the suite's result (``host``: emulator, or a kind of
    tests.features._support.local_host: local, folder, aws, azure)."""
    if host != "emulator":
        with local_host(host, build_app(startup=True), partitions, seed) as local:
            local.run()
            return _outcome(local)  # type: ignore[arg-type]
    em = Emulator(build_app(startup=True), partitions=partitions, seed=seed, faults=faults)
    em.run()
    return _outcome(em)


def _outcome(em: Emulator) -> Outcome:
    status = em.client().status(SUITE_INSTANCE)
    if status is None:
        result: Any = ("error", "missing", "the startup TestSuite instance does not exist")
    elif status.error is not None:
        result = ("error", type(status.error).__name__, str(status.error))
    else:
        result = (status.status, status.result)
    return _collect(em, result)
