"""The fault-matrix harness for the serverless host loop.

A workload (bank transfers, counter increments, events, and a pipeline orchestration with
activities, a durable timer and an activity retried after a durable timer) runs on a
:class:`LocalHost` driven by :func:`drive`, which invokes partitions in a seeded random
order and can make invocations crash at any step of the host loop (the loop's ``hook``
raises :class:`Crash`), and by a transport wrapper that delivers records more than once.
:func:`check` then compares what the system computed with what the workload implies.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hosts.emulator.local import LocalHost, VirtualClock
from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    Orchestration,
    OrchestrationContext,
    RetryPolicy,
    State,
)
from reactive.hosting.loop import Hook, HostLoop
from reactive.hosting.seams import Record, StaleSnapshotError, Transport
from samples.bank.app import (
    AccountKey,
    AccountState,
    Balance,
    Deposit,
    GetAccount,
    GetUser,
    SignUp,
    SignUpError,
    Transfer,
    UserState,
    Withdraw,
)
from samples.counter.app import (
    Count,
    CounterKey,
    EventCount,
    EventCounter,
    Increment,
    Incremented,
    IncrementMany,
    UpdateCounter,
)

STEPS = ("processed", "sent-one", "sent", "saved")

app = App("hostloop")
app.register(UserState, AccountState, GetUser, GetAccount, Balance, Deposit, Withdraw)
app.register(SignUp, Transfer, SignUpError)
app.register(UpdateCounter, EventCounter, Increment, Count, EventCount, IncrementMany, Incremented)

# every activity execution, by a name that says which one (reset by run_workload)
ACTIVITY_RUNS: Counter[str] = Counter()

FLAKY_VALUE = 7


@app.register
class Square(Activity[int]):
    tag: str
    x: int

    def execute(self, ctx: ActivityContext) -> int:
        ACTIVITY_RUNS[f"square {self.tag} {self.x}"] += 1
        return self.x * self.x


@app.register
class Flaky(Activity[int]):
    """Fails its first attempt; the retry waits for a durable timer."""

    tag: str
    retry: ClassVar[RetryPolicy | None] = RetryPolicy(max_attempts=3, first_delay=5.0)

    def execute(self, ctx: ActivityContext) -> int:
        ACTIVITY_RUNS[f"flaky {self.tag} attempt {ctx.attempt}"] += 1
        if ctx.attempt == 1:
            raise RuntimeError(f"flaky {self.tag}: the first attempt always fails")
        return FLAKY_VALUE


@app.register
class Pipeline(Orchestration[int]):
    """Squares 1..n with activities, sleeps on a durable timer, then calls Flaky."""

    tag: str
    n: int
    delay: float

    async def execute(self, ctx: OrchestrationContext) -> int:
        squares: list[int] = await ctx.all(
            *(ctx.perform(Square(tag=self.tag, x=x)) for x in range(1, self.n + 1))
        )
        await ctx.sleep(self.delay)
        bonus = await ctx.perform(Flaky(tag=self.tag))
        total = sum(squares) + bonus
        ctx.log.info("pipeline %s finished with %d", self.tag, total)
        return total


@app.register
class BumpEvents(Orchestration[int]):
    """Raises ``Incremented`` for one counter ``times`` times, one after the other."""

    counter: int
    times: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        for _ in range(self.times):
            await ctx.perform(Incremented(counter=self.counter))
        ctx.log.info("bumped event counter %d %d times", self.counter, self.times)
        return self.times


@app.register
class BankDay(Orchestration[list[bool]]):
    """Signs up the users, deposits ``initial`` on each checking account, then runs every
    transfer concurrently (each holding the locks of both of its accounts)."""

    users: list[str]
    initial: int
    transfers: list[tuple[str, str, int]]

    async def execute(self, ctx: OrchestrationContext) -> list[bool]:
        await ctx.all(
            *(
                ctx.perform(
                    SignUp(user=u, name=u.title(), checking=checking(u), savings=savings(u))
                )
                for u in self.users
            )
        )
        await ctx.all(
            *(ctx.perform(Deposit(account=checking(u), amount=self.initial)) for u in self.users)
        )
        results = await ctx.all(
            *(ctx.perform(Transfer(src=s, dst=d, amount=a)) for s, d, a in self.transfers)
        )
        ctx.log.info("bank day done: %d of %d transfers", sum(results), len(results))
        return results


def checking(user: str) -> str:
    return f"{user}-checking"


def savings(user: str) -> str:
    return f"{user}-savings"


# -- workloads ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What the client starts. Transfers only take from checking accounts, never more in
    total than ``initial``, so every transfer succeeds in any order and the final balances
    do not depend on the schedule."""

    users: tuple[str, ...]
    initial: int
    transfers: tuple[tuple[str, str, int], ...]
    increments: tuple[tuple[int, int, bool], ...]  # (counter, times, parallel)
    bumps: tuple[tuple[int, int], ...]  # (event counter, times)
    pipelines: tuple[tuple[str, int, float], ...]  # (tag, n, delay)

    def accounts(self) -> list[str]:
        return [a for u in self.users for a in (checking(u), savings(u))]

    def instances(self) -> dict[str, Orchestration[Any]]:
        """Instance id -> orchestration, in the order the client starts them."""
        out: dict[str, Orchestration[Any]] = {}
        if self.users:
            out["bank"] = BankDay(
                users=list(self.users), initial=self.initial, transfers=list(self.transfers)
            )
        for i, (counter, times, parallel) in enumerate(self.increments):
            out[f"inc-{i}"] = IncrementMany(counter=counter, times=times, parallel=parallel)
        for i, (counter, times) in enumerate(self.bumps):
            out[f"bump-{i}"] = BumpEvents(counter=counter, times=times)
        for tag, n, delay in self.pipelines:
            out[f"pipeline-{tag}"] = Pipeline(tag=tag, n=n, delay=delay)
        return out

    # what the workload implies, computed from its definition alone

    def expected_balances(self) -> dict[str, int]:
        balances = {a: 0 for a in self.accounts()}
        for u in self.users:
            balances[checking(u)] += self.initial
        for src, dst, amount in self.transfers:
            balances[src] -= amount
            balances[dst] += amount
        return balances

    def expected_counts(self) -> dict[int, int]:
        counts: Counter[int] = Counter()
        for counter, times, _ in self.increments:
            counts[counter] += times
        return dict(counts)

    def expected_event_counts(self) -> dict[int, int]:
        counts: Counter[int] = Counter()
        for counter, times in self.bumps:
            counts[counter] += times
        return dict(counts)

    def expected_lines(self) -> Counter[str]:
        lines: Counter[str] = Counter()
        for u in self.users:
            lines[f"signed up {u} with accounts {[checking(u), savings(u)]}"] += 1
        if self.users:
            n = len(self.transfers)
            lines[f"bank day done: {n} of {n} transfers"] += 1
        for counter, times in self.bumps:
            lines[f"bumped event counter {counter} {times} times"] += 1
        for tag, n, _ in self.pipelines:
            lines[f"pipeline {tag} finished with {pipeline_total(n)}"] += 1
        return lines


def pipeline_total(n: int) -> int:
    return sum(x * x for x in range(1, n + 1)) + FLAKY_VALUE


def big_workload() -> Workload:
    """The fault matrix's workload: 4 users, 12 transfers, 6 counter orchestrations (two
    share a counter), 2 event bumpers and 2 pipelines."""
    users = ("ann", "ben", "cat", "dan")
    transfers = (
        ("ann-checking", "ben-checking", 10),
        ("ben-checking", "cat-savings", 7),
        ("cat-checking", "ann-checking", 5),
        ("dan-checking", "ann-savings", 20),
        ("ann-checking", "dan-checking", 3),
        ("ben-checking", "ann-checking", 9),
        ("cat-checking", "dan-savings", 11),
        ("dan-checking", "cat-checking", 4),
        ("ann-checking", "ann-savings", 8),
        ("ben-checking", "ben-savings", 6),
        ("cat-checking", "ben-checking", 2),
        ("dan-checking", "ben-checking", 1),
    )
    return Workload(
        users=users,
        initial=100,
        transfers=transfers,
        increments=((0, 5, False), (1, 4, True), (2, 3, False), (3, 6, True), (5, 3, False),
                    (5, 4, True)),
        bumps=((1, 3), (4, 2)),
        pipelines=(("p1", 3, 30.0), ("p2", 2, 90.0)),
    )


def random_workload(rng: random.Random) -> Workload:
    """A tiny random workload for the schedule sweep."""
    users = tuple(rng.sample(["ann", "ben", "cat"], rng.randint(0, 2)))
    initial = 10
    accounts = [a for u in users for a in (checking(u), savings(u))]
    transfers: list[tuple[str, str, int]] = []
    budget = {checking(u): initial for u in users}
    for _ in range(rng.randint(0, 3) if users else 0):
        src = rng.choice(sorted(budget))
        amount = rng.randint(0, budget[src])
        budget[src] -= amount
        transfers.append((src, rng.choice(accounts), amount))
    increments = tuple(
        (rng.randint(0, 3), rng.randint(1, 3), rng.random() < 0.5) for _ in range(rng.randint(0, 2))
    )
    bumps = tuple((rng.randint(0, 3), rng.randint(1, 2)) for _ in range(rng.randint(0, 1)))
    pipelines = tuple(
        (f"r{i}", rng.randint(1, 2), float(rng.randint(1, 60))) for i in range(rng.randint(0, 1))
    )
    if not (users or increments or bumps or pipelines):
        increments = ((0, 1, False),)
    return Workload(users, initial, tuple(transfers), increments, bumps, pipelines)


# -- faults --------------------------------------------------------------------------------


class Crash(Exception):
    """Raised from the loop's hook: the invocation dies at ``step``."""

    def __init__(self, step: str) -> None:
        super().__init__(f"simulated crash at {step!r}")
        self.step = step


def crash_at(step: str) -> Hook:
    def hook(reached: str) -> None:
        if reached == step:
            raise Crash(step)

    return hook


class DuplicatingTransport:
    """Wraps a transport: with probability ``probability`` each appended record is appended
    twice, and an earlier record of the same log is appended again later (a late
    re-delivery). Receivers must drop every copy."""

    def __init__(self, inner: Transport, partitions: int, seed: int, probability: float) -> None:
        self.inner = inner
        self.rng = random.Random(f"duplicates-{seed}")
        self.probability = probability
        self.history: list[list[bytes]] = [[] for _ in range(partitions)]
        self.duplicated = 0

    def append(self, partition: int, payloads: Sequence[bytes]) -> None:
        out: list[bytes] = []
        history = self.history[partition]
        for data in payloads:
            out.append(data)
            history.append(data)
            if self.rng.random() < self.probability:
                out.append(data)
                self.duplicated += 1
        if history and self.rng.random() < self.probability:
            out.append(self.rng.choice(history))
            self.duplicated += 1
        self.inner.append(partition, out)

    def read(self, partition: int, after: int, limit: int) -> list[Record]:
        return self.inner.read(partition, after, limit)

    def acknowledge(self, partition: int, upto: int) -> None:
        self.inner.acknowledge(partition, upto)


def duplicate_deliveries(host: LocalHost, seed: int, probability: float) -> DuplicatingTransport:
    """Make every append of ``host`` (client requests, partition messages, timer ticks and
    activity results) go through a :class:`DuplicatingTransport`."""
    wrapper = DuplicatingTransport(host.transport, host.count, seed, probability)
    host.transport = wrapper
    host.loop.transport = wrapper
    return wrapper


def second_loop(host: LocalHost) -> HostLoop:
    """Another host loop on the same transport and store (a second, concurrent instance of
    the serverless function), logging into the same host."""

    def on_log(partition: int, level: int, text: str) -> None:
        host.logs.append((partition, level, text))

    return HostLoop(
        host.schema,
        host.loop.transport,
        host.store,
        host.loop.options,
        clock=host.clock,
        on_log=on_log,
        on_unhandled=host.unhandled.append,
        emitted=host.loop.emitted,  # one sink: it must not receive an entry twice
    )


# -- driving --------------------------------------------------------------------------------


@dataclass
class DriveStats:
    invocations: int = 0
    crashes: Counter[str] = field(default_factory=Counter)
    stale: int = 0  # invocations that lost the snapshot race
    overtaken: int = 0  # invocations another invocation of the same partition overtook
    clock_moves: int = 0


class Stuck(AssertionError):
    """The driver gave up: the system did not reach quiescence."""


def overtake(host: LocalHost, inner: HostLoop, index: int, stats: DriveStats) -> Hook:
    """A hook for an invocation of ``index``: when it has sent its first messages, a whole
    invocation of the same partition runs on ``inner``. If that one saves a snapshot, the
    first one must lose its save with StaleSnapshotError (checked by :func:`drive`)."""
    fired = False

    def hook(step: str) -> None:
        nonlocal fired
        if step != "sent" or fired:
            return
        fired = True
        before = host.store.load(index)[1]
        try:
            inner.invoke(index)
        except StaleSnapshotError:  # the inner loop's warm state was itself stale
            stats.stale += 1
            return
        if host.store.load(index)[1] != before:
            stats.overtaken += 1
            raise _Overtaken  # marker: the outer invocation must now fail to save

    return hook


class _Overtaken(Exception):
    pass


def drive(
    host: LocalHost,
    rng: random.Random,
    crash_steps: Sequence[str] = (),
    crash_probability: float = 0.0,
    loops: Sequence[HostLoop] = (),
    overtake_probability: float = 0.0,
    max_invocations: int = 50_000,
) -> DriveStats:
    """Invoke partitions in a seeded random order until every partition is idle with no
    timer pending, advancing the virtual clock to the next timer when nothing else can run
    (the idle logic of ``LocalHost.run``).

    Each invocation crashes, with probability ``crash_probability``, at one of
    ``crash_steps``; the driver catches the crash and carries on. With ``loops`` (other host
    loops on the same transport and store), each invocation runs on one of the loops at
    random, and with probability ``overtake_probability`` another loop runs a whole
    invocation of the same partition in the middle of it (see :func:`overtake`): the
    overtaken invocation must then raise StaleSnapshotError when it saves."""
    stats = DriveStats()
    clock = host.clock
    assert isinstance(clock, VirtualClock), "the driver needs the host's virtual clock"
    due: dict[int, float | None] = {}
    choices = [host.loop, *loops]
    while True:
        order = list(range(host.count))
        rng.shuffle(order)
        busy = False
        for index in order:
            loop = rng.choice(choices)
            hooks: list[Hook] = []
            if crash_steps and rng.random() < crash_probability:
                hooks.append(crash_at(rng.choice(list(crash_steps))))
            if loops and rng.random() < overtake_probability:
                inner = rng.choice([c for c in choices if c is not loop])
                hooks.insert(0, overtake(host, inner, index, stats))
            overtaken = False

            def hook(step: str, hooks: list[Hook] = hooks) -> None:
                nonlocal overtaken
                for h in hooks:
                    try:
                        h(step)
                    except _Overtaken:
                        overtaken = True

            stats.invocations += 1
            if stats.invocations > max_invocations:
                raise Stuck(f"no quiescence after {max_invocations} invocations: {stats}")
            try:
                report = loop.invoke(index, hook if hooks else None)
            except Crash as crash:
                stats.crashes[crash.step] += 1
                busy = True
                continue
            except StaleSnapshotError:
                stats.stale += 1
                busy = True
                continue
            if overtaken:
                raise AssertionError(
                    f"partition {index}: an invocation overtaken by another one that saved "
                    "its snapshot saved its own as well (no StaleSnapshotError)"
                )
            due[index] = report.next_due
            if report.processed or report.sent or report.activities or report.backlog:
                busy = True
        if busy:
            continue
        dues = [d for d in due.values() if d is not None]
        if not dues:
            return stats
        clock.now = max(clock.now, min(dues))
        stats.clock_moves += 1


# -- running and checking ---------------------------------------------------------------------


@dataclass
class Outcome:
    """Everything observable at the end of a run."""

    statuses: dict[str, tuple[str, Any]]  # instance id -> (status, result or error text)
    balances: dict[str, int | None]
    counts: dict[int, int | None]
    event_counts: dict[int, int | None]
    lines: Counter[str]
    activity_runs: Counter[str]
    unhandled: list[str]
    stats: DriveStats


def new_host(
    partitions: int, seed: int = 0, batch_size: int = 256, time_budget: float | None = None
) -> LocalHost:
    return LocalHost(
        app, partitions=partitions, seed=seed, batch_size=batch_size, time_budget=time_budget
    )


def state_of(host: LocalHost, cls: type[State[Any]], key: Affinity) -> Any:
    """The stored state of ``cls`` at ``key`` (None if it does not exist), read from the
    owning partition as of its last snapshot."""
    schema = host.schema
    info = schema.states[cls]
    pkey = info.affinity.pkey(key)
    return host.partition(schema.owner(pkey, host.count)).states.get((info.name, pkey))


def observe(host: LocalHost, workload: Workload, stats: DriveStats) -> Outcome:
    # read what the store holds: with several loops, the host's own warm copy of a
    # partition may be older than a snapshot another loop saved
    host.loop.forget()
    client = host.client()
    statuses: dict[str, tuple[str, Any]] = {}
    for iid in workload.instances():
        status = client.status(iid)
        if status is None:
            statuses[iid] = ("unknown", None)
        elif status.error is not None:
            statuses[iid] = (status.status, f"{type(status.error).__name__}: {status.error}")
        else:
            statuses[iid] = (status.status, status.result)

    def value(cls: type[State[Any]], key: Affinity, attr: str) -> int | None:
        state = state_of(host, cls, key)
        return None if state is None else int(getattr(state, attr))

    counters = sorted(set(workload.expected_counts()) | set(workload.expected_event_counts()))
    return Outcome(
        statuses=statuses,
        balances={
            a: value(AccountState, AccountKey(account=a), "balance") for a in workload.accounts()
        },
        counts={c: value(UpdateCounter, CounterKey(counter=c), "count") for c in counters},
        event_counts={c: value(EventCounter, CounterKey(counter=c), "count") for c in counters},
        lines=Counter(host.app_lines()),
        activity_runs=Counter(ACTIVITY_RUNS),
        unhandled=list(host.unhandled),
        stats=stats,
    )


def run_workload(
    workload: Workload,
    partitions: int = 4,
    seed: int = 0,
    batch_size: int = 256,
    crash_steps: Sequence[str] = (),
    crash_probability: float = 0.0,
    duplicate_probability: float = 0.0,
    extra_loops: int = 0,
    overtake_probability: float = 0.0,
    time_budget: float | None = None,
) -> Outcome:
    """Start the workload's instances with the client, drive the host to quiescence under
    the given faults, and observe the result."""
    ACTIVITY_RUNS.clear()
    host = new_host(partitions, seed, batch_size, time_budget)
    if duplicate_probability:
        duplicate_deliveries(host, seed, duplicate_probability)
    loops = [second_loop(host) for _ in range(extra_loops)]
    client = host.client()
    for iid, orchestration in workload.instances().items():
        client.start(orchestration, instance_id=iid)
    rng = random.Random(f"schedule-{seed}")
    stats = drive(host, rng, crash_steps, crash_probability, loops, overtake_probability)
    return observe(host, workload, stats)


def check(outcome: Outcome, workload: Workload) -> None:
    """The invariants every run must satisfy, whatever its faults and schedule."""
    instances = workload.instances()
    for iid, orchestration in instances.items():
        status, result = outcome.statuses[iid]
        assert status == "completed", f"{iid}: {status} {result!r}"
        if isinstance(orchestration, BankDay):
            assert result == [True] * len(workload.transfers), f"{iid}: {result!r}"
        elif isinstance(orchestration, BumpEvents):
            assert result == orchestration.times
        elif isinstance(orchestration, Pipeline):
            assert result == pipeline_total(orchestration.n), f"{iid}: {result!r}"
    # money: conserved, and every balance as the (order-independent) transfers imply
    expected_balances = workload.expected_balances()
    assert outcome.balances == expected_balances
    assert sum(b or 0 for b in outcome.balances.values()) == workload.initial * len(workload.users)
    # counters: exact; the increments of each counter returned 1..total, each exactly once
    for counter, total in workload.expected_counts().items():
        assert outcome.counts[counter] == total, f"counter {counter}: {outcome.counts[counter]}"
        returned = sorted(
            n
            for iid, orch in instances.items()
            if isinstance(orch, IncrementMany) and orch.counter == counter
            for n in outcome.statuses[iid][1]
        )
        assert returned == list(range(1, total + 1)), f"counter {counter} increments: {returned}"
    for counter, total in workload.expected_event_counts().items():
        assert outcome.event_counts[counter] == total, (
            f"event counter {counter}: {outcome.event_counts[counter]}"
        )
    # orchestration log lines: each exactly once
    expected_lines = workload.expected_lines()
    extra, missing = outcome.lines - expected_lines, expected_lines - outcome.lines
    assert not missing, f"log lines lost: {dict(missing)}"
    assert not extra, f"log lines duplicated: {dict(extra)}"
    # activities: at least once each (Flaky twice: its first attempt fails)
    for tag, n, _ in workload.pipelines:
        for x in range(1, n + 1):
            assert outcome.activity_runs[f"square {tag} {x}"] >= 1, f"square {tag} {x} never ran"
        assert outcome.activity_runs[f"flaky {tag} attempt 1"] >= 1
        assert outcome.activity_runs[f"flaky {tag} attempt 2"] >= 1
        assert outcome.activity_runs[f"flaky {tag} attempt 3"] == 0
    assert outcome.unhandled == [], outcome.unhandled


def same_results(faulty: Outcome, clean: Outcome, workload: Workload) -> None:
    """Everything observable matches the clean run, except what the schedule decides: the
    order in which orchestrations sharing a counter got their increments (their union must
    match) and how often activities ran (at least as often)."""

    def schedule_free(outcome: Outcome) -> dict[str, Any]:
        statuses = dict(outcome.statuses)
        shared: dict[int, list[int]] = {}
        for iid, orch in workload.instances().items():
            if isinstance(orch, IncrementMany) and statuses[iid][0] == "completed":
                shared.setdefault(orch.counter, []).extend(statuses.pop(iid)[1])
        return {
            "statuses": statuses,
            "increments": {c: sorted(ns) for c, ns in shared.items()},
            "balances": outcome.balances,
            "counts": outcome.counts,
            "event_counts": outcome.event_counts,
            "lines": outcome.lines,
            "unhandled": outcome.unhandled,
        }

    assert schedule_free(faulty) == schedule_free(clean)
    for name, runs in clean.activity_runs.items():
        assert faulty.activity_runs[name] >= runs, name
