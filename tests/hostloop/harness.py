"""The fault-matrix harness for the partition worker.

A workload (bank transfers, counter increments, events, and a pipeline orchestration with
activities, a durable timer and an activity retried after a durable timer) runs on
partition workers fed by a transport: a broker double (:mod:`tests.hostloop.doubles`:
SQS FIFO with Lambda, Event Hubs with Functions) or the local host's own logs (in memory
or in a state folder). :func:`drive` invokes partitions in a seeded random order and can
make an invocation crash at any step (the worker's ``hook`` raises :class:`Crash`), let a
second invocation of the same partition overtake it, lose acknowledgements, and resend
client requests. :func:`check` then compares what the system computed with what the
workload implies.
"""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hosts.bench.brokers import Clock, EventHub, FifoQueues
from hosts.local import LocalHost
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
from reactive.hosting.client import SeamClient
from reactive.hosting.memory import MemoryStatusStore, MemoryStore
from reactive.hosting.seams import StaleSnapshotError, StatusQuery
from reactive.hosting.worker import Hook, PartitionWorker, WorkerOptions
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

STEPS = ("processed", "saved", "sent", "published", "delivered")

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
    """Raised from the worker's hook: the invocation dies at ``step``."""

    def __init__(self, step: str) -> None:
        super().__init__(f"simulated crash at {step!r}")
        self.step = step


def crash_at(step: str) -> Hook:
    def hook(reached: str) -> None:
        if reached == step:
            raise Crash(step)

    return hook


# -- transports ----------------------------------------------------------------------------


class LocalLogs:
    """The local host's input logs as a transport of the harness (no in-flight state:
    what is not acknowledged is read again, like a restarted consumer)."""

    def __init__(self, host: LocalHost) -> None:
        self.host = host

    def send(self, messages: Any) -> None:
        self.host.inbox.send(messages)

    def receive(self, partition: int, consumer: int = 0) -> list[Any]:
        return self.host.inbox.read(partition, self.host.batch_size)

    def acknowledge(self, partition: int, refs: Any, consumer: int = 0,
                    partial_failure: float = 0.0) -> None:
        self.host.inbox.acknowledge(partition, refs)

    def abandon(self, partition: int, consumer: int = 0) -> None:
        pass

    def pending(self) -> int:
        return sum(self.host.inbox.backlog(p) for p in range(self.host.count))


@dataclass
class Faults:
    crash_steps: Sequence[str] = ()
    crash_probability: float = 0.0
    overtake_probability: float = 0.0  # a second invocation of the partition commits first
    second_consumer: float = 0.0  # Event Hubs: a second consumer reads during a rebalance
    lost_ack: float = 0.0  # deletes / checkpoints that fail
    duplicate_sends: float = 0.0
    client_retries: float = 0.0  # a client sends its request again


@dataclass
class DriveStats:
    invocations: int = 0
    crashes: int = 0
    stale: int = 0
    overtakes: int = 0
    clock_advances: int = 0


class Output:
    """Collects the workers' log lines and unhandled errors (one sink for all)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.unhandled: list[str] = []

    def log(self, partition: int, level: int, text: str) -> None:
        self.lines.append(text)

    def unhandled_error(self, text: str) -> None:
        self.unhandled.append(text)


class _Sink:
    def __init__(self, output: Output) -> None:
        self.output = output

    def log(self, partition: int, level: int, text: str) -> None:
        self.output.log(partition, level, text)

    def unhandled(self, partition: int, text: str) -> None:
        self.output.unhandled_error(text)


@dataclass
class Cluster:
    """Partition workers on shared seams: what the cloud hosts deploy."""

    partitions: int
    transport: Any
    store: Any
    status: Any
    clock: Any
    output: Output
    workers: list[list[PartitionWorker]]  # per partition: the primary and a spare
    client: SeamClient
    # wraps each invocation (read, handle, acknowledge): the state folder's group commit
    group: Callable[[], contextlib.AbstractContextManager[None]] = field(
        default=contextlib.nullcontext
    )

    def worker(self, index: int, which: int = 0) -> PartitionWorker:
        return self.workers[index][which]


def new_cluster(kind: str, partitions: int, seed: int, faults: Faults,
                time_budget: float = 5.0, host: LocalHost | None = None,
                group_commit: bool = False) -> Cluster:
    rng = random.Random(f"broker-{seed}")
    output = Output()
    transport: Any
    if kind == "fifo":
        clock = Clock()
        transport = FifoQueues(partitions, rng, clock, faults.duplicate_sends)
        store: Any = MemoryStore()
        status: Any = MemoryStatusStore()
    elif kind == "eventhubs":
        clock = Clock()
        transport = EventHub(partitions, rng, clock, faults.duplicate_sends)
        store, status = MemoryStore(), MemoryStatusStore()
    elif kind == "local":
        assert host is not None
        clock = host.clock  # type: ignore[assignment]
        transport = LocalLogs(host)
        store, status = host.store, host.status
    else:
        raise ValueError(kind)
    schema = app.compile()
    # compact as soon as the deltas outgrow the base: the faults must meet compactions
    options = WorkerOptions(partitions, time_budget=time_budget, compact_min_bytes=0)
    # the local host's workers share its cache of the messages they encode (a receiver
    # takes the message instead of parsing it), the spare included
    recent = host.recent if kind == "local" and host is not None else None
    workers = [
        [PartitionWorker(schema, i, options, store, transport, status, clock, _Sink(output),
                         recent=recent)
         for _ in range(2)]
        for i in range(partitions)
    ]
    client = SeamClient(schema, partitions, transport, status, clock=clock)
    cluster = Cluster(partitions, transport, store, status, clock, output, workers, client)
    if group_commit:
        # as LocalHost.run drives a folder: each invocation a block of one transaction
        # that stays open for the next ones (a crash inside a block rolls back that block)
        assert host is not None and host.folder is not None
        folder = host.folder
        folder.commit_interval = 3600.0  # only the folder's own rules end a transaction
        cluster.group = lambda: folder.group(group_commit=True)
    return cluster


def _overtake(cluster: Cluster, index: int, consumer: int, stats: DriveStats) -> Hook:
    """A hook that, once the batch is processed, lets the partition's spare worker run a
    whole invocation first (a concurrent invocation during scale-out or a rebalance)."""

    def hook(step: str) -> None:
        if step != "processed":
            return
        stats.overtakes += 1
        spare = cluster.worker(index, 1)
        spare.forget()
        other = 1 - consumer
        try:
            batch = cluster.transport.receive(index, other)
            outcome = spare.handle(batch)
            cluster.transport.acknowledge(index, outcome.acknowledged, other)
        except StaleSnapshotError:
            stats.stale += 1
        spare.forget()

    return hook


def drive(cluster: Cluster, rng: random.Random, faults: Faults,
          max_steps: int = 200_000) -> DriveStats:
    """Invoke partitions in a random order until nothing is left to process, no work is
    left over, and no timer is pending (advancing the virtual clock to the next due
    timer when only timers are left)."""
    stats = DriveStats()
    quiet = 0
    for _ in range(max_steps):
        index = rng.randrange(cluster.partitions)
        consumer = 1 if rng.random() < faults.second_consumer else 0
        hooks: list[Hook] = []
        if faults.crash_steps and rng.random() < faults.crash_probability:
            hooks.append(crash_at(rng.choice(list(faults.crash_steps))))
        if rng.random() < faults.overtake_probability:
            hooks.append(_overtake(cluster, index, consumer, stats))

        def hook(step: str, hooks: list[Hook] = hooks) -> None:
            for h in hooks:
                h(step)

        worker = cluster.worker(index)
        stats.invocations += 1
        try:
            with cluster.group():
                batch = cluster.transport.receive(index, consumer)
                outcome = worker.handle(batch, hook if hooks else None)
                cluster.transport.acknowledge(index, outcome.acknowledged, consumer,
                                              faults.lost_ack)
        except Crash:
            stats.crashes += 1
            cluster.transport.abandon(index, consumer)
            quiet = 0
            continue
        except StaleSnapshotError:
            stats.stale += 1
            cluster.transport.abandon(index, consumer)
            quiet = 0
            continue
        if batch or outcome.committed or outcome.more:
            quiet = 0
            continue
        quiet += 1
        if quiet < 3 * cluster.partitions or cluster.transport.pending():
            continue
        # everything looks idle: confirm on every partition, then move the clock
        if _busy_anywhere(cluster):
            quiet = 0
            continue
        dues = [w.next_due() for w in (ws[0] for ws in cluster.workers)]
        pending = [d for d in dues if d is not None]
        if not pending:
            return stats
        if isinstance(cluster.clock, (Clock,)) or hasattr(cluster.clock, "now"):
            cluster.clock.now = max(cluster.clock.now, min(pending))
            stats.clock_advances += 1
        quiet = 0
    raise AssertionError(f"no quiescence after {max_steps} steps: {stats}")


def _busy_anywhere(cluster: Cluster) -> bool:
    busy = False
    for index in range(cluster.partitions):
        worker = cluster.worker(index)
        try:
            outcome = worker.handle(cluster.transport.receive(index, 0))
        except StaleSnapshotError:
            return True
        cluster.transport.acknowledge(index, outcome.acknowledged, 0)
        busy = busy or bool(outcome.acknowledged or outcome.committed or outcome.more)
    return busy


# -- observing -------------------------------------------------------------------------------


@dataclass
class Outcome:
    statuses: dict[str, tuple[str, Any]]
    balances: dict[str, int | None]
    counts: dict[int, int | None]
    event_counts: dict[int, int | None]
    lines: Counter[str]
    activity_runs: Counter[str]
    unhandled: list[str]
    stats: DriveStats
    leftovers: int = 0


def state_of(cluster: Cluster, cls: type[State[Any]], key: Affinity) -> Any:
    """The stored state of ``cls`` at ``key`` (None if absent), loaded from the store by a
    fresh worker, as the next invocation would see it."""
    schema = cluster.client.schema
    info = schema.states[cls]
    pkey = info.affinity.pkey(key)
    index = schema.owner(pkey, cluster.partitions)
    fresh = cluster.worker(index, 1)
    fresh.forget()
    return fresh.partition().states.get((info.name, pkey))


def observe(cluster: Cluster, workload: Workload, stats: DriveStats) -> Outcome:
    statuses: dict[str, tuple[str, Any]] = {}
    for iid in workload.instances():
        status = cluster.client.status(iid)
        if status is None:
            statuses[iid] = ("unknown", None)
        elif status.error is not None:
            statuses[iid] = (status.status, f"{type(status.error).__name__}: {status.error}")
        else:
            statuses[iid] = (status.status, status.result)

    def value(cls: type[State[Any]], key: Affinity, attr: str) -> int | None:
        state = state_of(cluster, cls, key)
        return None if state is None else int(getattr(state, attr))

    counters = sorted(set(workload.expected_counts()) | set(workload.expected_event_counts()))
    leftovers = 0
    for index in range(cluster.partitions):
        part = cluster.worker(index, 1).partition()
        leftovers += len(part.queues) + len(part.activities) + len(part.timers)
        leftovers += sum(1 for run in part.runs.values() if run.init is None)
    return Outcome(
        statuses=statuses,
        balances={
            a: value(AccountState, AccountKey(account=a), "balance") for a in workload.accounts()
        },
        counts={c: value(UpdateCounter, CounterKey(counter=c), "count") for c in counters},
        event_counts={c: value(EventCounter, CounterKey(counter=c), "count") for c in counters},
        lines=Counter(cluster.output.lines),
        activity_runs=Counter(ACTIVITY_RUNS),
        unhandled=list(cluster.output.unhandled),
        stats=stats,
        leftovers=leftovers,
    )


def run_workload(
    workload: Workload,
    kind: str = "fifo",
    partitions: int = 4,
    seed: int = 0,
    faults: Faults | None = None,
    time_budget: float = 5.0,
    host: LocalHost | None = None,
    group_commit: bool = False,
) -> Outcome:
    """Start the workload's instances with the client (resending requests as a retrying
    client would), drive the cluster to quiescence under the faults, and observe."""
    faults = faults or Faults()
    ACTIVITY_RUNS.clear()
    cluster = new_cluster(kind, partitions, seed, faults, time_budget, host, group_commit)
    rng = random.Random(f"schedule-{seed}")
    for iid, orchestration in workload.instances().items():
        cluster.client.start(orchestration, instance_id=iid)
        if rng.random() < faults.client_retries:
            cluster.client.start(orchestration, instance_id=iid)
    stats = drive(cluster, rng, faults)
    return observe(cluster, workload, stats)


def all_statuses(cluster: Cluster) -> list[str]:
    return [r.status for r in cluster.status.query(StatusQuery(limit=100_000))]


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
    expected_balances = workload.expected_balances()
    assert outcome.balances == expected_balances
    assert sum(b or 0 for b in outcome.balances.values()) == workload.initial * len(workload.users)
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
    expected_lines = workload.expected_lines()
    extra, missing = outcome.lines - expected_lines, expected_lines - outcome.lines
    assert not missing, f"log lines lost: {dict(missing)}"
    assert not extra, f"log lines duplicated: {dict(extra)}"
    for tag, n, _ in workload.pipelines:
        for x in range(1, n + 1):
            assert outcome.activity_runs[f"square {tag} {x}"] >= 1, f"square {tag} {x} never ran"
        assert outcome.activity_runs[f"flaky {tag} attempt 1"] >= 1
        assert outcome.activity_runs[f"flaky {tag} attempt 2"] >= 1
        assert outcome.activity_runs[f"flaky {tag} attempt 3"] == 0
    assert outcome.unhandled == [], outcome.unhandled
    assert outcome.leftovers == 0, f"{outcome.leftovers} queue entries, runs or timers left"


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
