"""Locks and the synchronization discipline."""

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
    State,
    StateNotFoundError,
    SubscriptionContext,
    SynchronizationDisciplineError,
    Update,
    UpdateContext,
    subscribe,
)
from tests.features._support import fault_free_and_faulty, faults, key_on


class AccountKey(Affinity):
    account: str


class Moved(Event):
    src: str
    dst: str
    amount: int

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.src), AccountKey(account=self.dst)]


class Pinged(AccountKey, Event):
    pass


class Account(State[AccountKey]):
    balance: int = 0
    pings: int = 0
    notes: list[str] = []

    @subscribe(Moved)
    def on_moved(self, ctx: SubscriptionContext, event: Moved) -> None:
        if ctx.key == event.src:
            self.balance -= event.amount
        if ctx.key == event.dst:
            self.balance += event.amount

    @subscribe(Pinged)
    def on_pinged(self, ctx: SubscriptionContext, event: Pinged) -> None:
        self.pings += 1


class Deposit(AccountKey, Update[Account, int], create=True):
    amount: int

    def execute(self, ctx: UpdateContext[Account]) -> int:
        ctx.state.balance += self.amount
        return ctx.state.balance


class SetBalance(AccountKey, Update[Account, None]):
    balance: int

    def execute(self, ctx: UpdateContext[Account]) -> None:
        ctx.state.balance = self.balance


class Balance(AccountKey, Read[Account, int]):
    def execute(self, ctx: ReadContext[Account]) -> int:
        return ctx.state.balance


class Pings(AccountKey, Read[Account, int]):
    def execute(self, ctx: ReadContext[Account]) -> int:
        return ctx.state.pings


class Audit(Activity[str], lock=True):
    account: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.account)]

    def execute(self, ctx: ActivityContext) -> str:
        return f"audited {self.account}"


class Unlocked(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return 1


class Transfer(Orchestration[bool], lock=True):
    src: str
    dst: str
    amount: int

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.src), AccountKey(account=self.dst)]

    async def execute(self, ctx: OrchestrationContext) -> bool:
        if await ctx.perform(Balance(account=self.src)) < self.amount:
            return False
        await ctx.sleep(1)  # hold the locks across a timer: interleavings would show
        await ctx.perform(Deposit(account=self.src, amount=-self.amount))
        await ctx.perform(Deposit(account=self.dst, amount=self.amount))
        return True


class Misbehave(Orchestration[str], lock=True):
    """Holds ``held`` and tries one forbidden thing; returns the error it caught."""

    held: str
    other: str
    what: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.held)]

    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            if self.what == "read":
                ctx.perform(Balance(account=self.other))
            elif self.what == "update":
                ctx.perform(Deposit(account=self.other, amount=1))
            elif self.what == "event":
                ctx.perform(Moved(src=self.held, dst=self.other, amount=1))
            elif self.what == "unlocked orchestration":
                ctx.perform(Unlocked())
            elif self.what == "locked orchestration on other keys":
                ctx.perform(Transfer(src=self.held, dst=self.other, amount=0))
            elif self.what == "finish":
                ctx.finish()
            elif self.what == "locked activity on other keys":
                ctx.perform(Audit(account=self.other))
            elif self.what == "state_exists on other key":
                ctx.state_exists(Account, AccountKey(account=self.other))
            else:
                return "nothing forbidden tried"
        except SynchronizationDisciplineError as exc:
            return f"SynchronizationDisciplineError: {exc}"
        return "allowed"


class Allowed(Orchestration[dict[str, object]], lock=True):
    """Everything a lock holder may do with the keys it holds."""

    a: str
    b: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.a), AccountKey(account=self.b)]

    async def execute(self, ctx: OrchestrationContext) -> dict[str, object]:
        existed = await ctx.state_exists(Account, AccountKey(account=self.a))
        await ctx.perform(Deposit(account=self.a, amount=10))
        exists = await ctx.state_exists(Account, AccountKey(account=self.a))
        await ctx.perform(Moved(src=self.a, dst=self.b, amount=4))
        await ctx.perform(Pinged(account=self.b))
        moved = await ctx.perform(Transfer(src=self.a, dst=self.b, amount=1))  # nested
        audit = await ctx.perform(Audit(account=self.b))
        return {
            "existed": existed,
            "exists": exists,
            "a": await ctx.perform(Balance(account=self.a)),
            "b": await ctx.perform(Balance(account=self.b)),
            "pings": await ctx.perform(Pings(account=self.b)),
            "nested": moved,
            "audit": audit,
        }


class UnlockedCallsLockedActivity(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            ctx.perform(Audit(account="x"))
        except SynchronizationDisciplineError as exc:
            return f"SynchronizationDisciplineError: {exc}"
        return "allowed"


class UncaughtMisuse(Orchestration[None], lock=True):
    held: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.held)]

    async def execute(self, ctx: OrchestrationContext) -> None:
        await ctx.perform(Balance(account=self.held + "-other"))


class StateExistsUnlocked(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            ctx.state_exists(Account, AccountKey(account="x"))
        except SynchronizationDisciplineError:
            return "refused"
        return "allowed"


class Increment(AccountKey, Orchestration[None], lock=True):
    """Read, wait, write: lost updates would show without mutual exclusion."""

    async def execute(self, ctx: OrchestrationContext) -> None:
        value = await ctx.perform(Balance(account=self.account))
        await ctx.sleep(1)
        await ctx.perform(SetBalance(account=self.account, balance=value + 1))


class ManyTransfers(Orchestration[list[bool]]):
    a: str
    b: str
    count: int

    async def execute(self, ctx: OrchestrationContext) -> list[bool]:
        futures = []
        for i in range(self.count):
            src, dst = (self.a, self.b) if i % 2 == 0 else (self.b, self.a)
            futures.append(ctx.perform(Transfer(src=src, dst=dst, amount=1 + i % 3)))
        return await ctx.all(*futures)


app = App("locks")
app.register(
    Deposit, SetBalance, Balance, Pings, Audit, Unlocked, Transfer, Misbehave, Allowed,
    UnlockedCallsLockedActivity, UncaughtMisuse, StateExistsUnlocked, Increment, ManyTransfers,
    Moved, Pinged,
)


def _misbehave(what: str) -> str:
    em = Emulator(app, partitions=3)
    client = em.client()
    client.perform(Deposit(account="held", amount=1))
    client.perform(Deposit(account="other", amount=1))
    result: str = client.perform(Misbehave(held="held", other="other", what=what))
    return result


def test_read_outside_the_lock_set_is_refused_at_the_call() -> None:
    assert _misbehave("read").startswith("SynchronizationDisciplineError")


def test_update_outside_the_lock_set_is_refused() -> None:
    assert _misbehave("update").startswith("SynchronizationDisciplineError")


def test_event_outside_the_lock_set_is_refused() -> None:
    assert _misbehave("event").startswith("SynchronizationDisciplineError")


def test_calling_an_unlocked_orchestration_from_a_locked_one_is_refused() -> None:
    assert _misbehave("unlocked orchestration").startswith("SynchronizationDisciplineError")


def test_calling_a_locked_orchestration_on_keys_not_held_is_refused() -> None:
    result = _misbehave("locked orchestration on other keys")
    assert result.startswith("SynchronizationDisciplineError")


def test_finish_under_lock_is_refused() -> None:
    assert _misbehave("finish").startswith("SynchronizationDisciplineError")


def test_locked_activity_on_keys_not_held_is_refused() -> None:
    assert _misbehave("locked activity on other keys").startswith("SynchronizationDisciplineError")


def test_state_exists_outside_the_lock_set_is_refused() -> None:
    assert _misbehave("state_exists on other key").startswith("SynchronizationDisciplineError")
    client = Emulator(app, partitions=2).client()
    assert client.perform(StateExistsUnlocked()) == "refused"


def test_locked_activity_from_an_unlocked_orchestration_is_refused() -> None:
    client = Emulator(app, partitions=2).client()
    assert client.perform(UnlockedCallsLockedActivity()).startswith(
        "SynchronizationDisciplineError"
    )


def test_an_uncaught_discipline_error_fails_the_orchestration_and_releases_its_lock() -> None:
    client = Emulator(app, partitions=3).client()
    client.perform(Deposit(account="u", amount=5))
    iid = client.start(UncaughtMisuse(held="u"))
    try:
        client.wait(iid)
    except SynchronizationDisciplineError as exc:
        assert "u-other" in str(exc)
    else:
        raise AssertionError("the misuse was not refused")
    # the lock on "u" was released: another lock holder gets it
    assert client.perform(Transfer(src="u", dst="v", amount=5)) is True
    assert client.perform(Balance(account="v")) == 5


def test_what_a_lock_holder_may_do() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.perform(Deposit(account="b", amount=0))
        return client.perform(Allowed(a="a", b="b"))

    assert fault_free_and_faulty(app, scenario) == {
        "existed": False,
        "exists": True,
        "a": 5,
        "b": 5,
        "pings": 1,
        "nested": True,
        "audit": "audited b",
    }


def test_opposite_lock_orders_never_deadlock() -> None:
    a = key_on(app, AccountKey, 0, 4, "a")
    b = key_on(app, AccountKey, 3, 4, "b")

    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.perform(Deposit(account=a, amount=100))
        client.perform(Deposit(account=b, amount=100))
        results = client.wait(client.start(ManyTransfers(a=a, b=b, count=30), instance_id="many"))
        return results, client.perform(Balance(account=a)), client.perform(Balance(account=b))

    results, balance_a, balance_b = fault_free_and_faulty(app, scenario)
    assert results == [True] * 30
    assert balance_a + balance_b == 200


def test_opposite_lock_orders_from_many_clients_never_deadlock() -> None:
    for seed in range(5):
        em = Emulator(app, partitions=3, seed=seed)
        client = em.client()
        client.perform(Deposit(account="x", amount=50))
        client.perform(Deposit(account="y", amount=50))
        ids = []
        for i in range(20):
            src, dst = ("x", "y") if i % 2 == 0 else ("y", "x")
            ids.append(client.start(Transfer(src=src, dst=dst, amount=3)))
        assert all(client.wait(i) is True for i in ids)
        assert client.perform(Balance(account="x")) + client.perform(Balance(account="y")) == 100


def test_transfer_to_the_same_account_works() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.perform(Deposit(account="self", amount=10))
        ok = client.perform(Transfer(src="self", dst="self", amount=7))
        return ok, client.perform(Balance(account="self"))

    assert fault_free_and_faulty(app, scenario) == (True, 10)


def test_locks_are_mutually_exclusive() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.perform(Deposit(account="counter", amount=0))
        ids = [client.start(Increment(account="counter"), instance_id=f"inc{i}") for i in range(12)]
        for iid in ids:
            client.wait(iid)
        return client.perform(Balance(account="counter"))

    assert fault_free_and_faulty(app, scenario) == 12


def test_lock_keys_are_sorted_and_deduplicated() -> None:
    schema = app.compile()
    forward = schema.lock_keys(Transfer(src="a", dst="b", amount=1))
    backward = schema.lock_keys(Transfer(src="b", dst="a", amount=1))
    same = schema.lock_keys(Transfer(src="a", dst="a", amount=1))
    assert forward == backward == tuple(sorted(forward))
    assert len(forward) == 2
    assert len(same) == 1


# -- children running inside their caller's locks ------------------------------------------------


class Note(AccountKey, Update[Account, None], create=True):
    text: str

    def execute(self, ctx: UpdateContext[Account]) -> None:
        ctx.state.notes.append(self.text)


class Notes(AccountKey, Read[Account, list[str]]):
    def execute(self, ctx: ReadContext[Account]) -> list[str]:
        return list(ctx.state.notes)


class Inner(AccountKey, Orchestration[str], lock=True):
    """Runs inside its caller's lock; writes after an external event."""

    async def execute(self, ctx: OrchestrationContext) -> str:
        await ctx.wait_for_event("go")
        await ctx.perform(Note(account=self.account, text="inner wrote"))
        return "inner"


class Outer(AccountKey, Orchestration[str], lock=True):
    give_up_after: float | None = None

    async def execute(self, ctx: OrchestrationContext) -> str:
        inner = ctx.perform(Inner(account=self.account))
        if self.give_up_after is None:
            return await inner
        timer = ctx.sleep(self.give_up_after)
        winner = await ctx.any(inner, timer)
        return "gave up" if winner is timer else await inner


class Critical(AccountKey, Orchestration[str], lock=True):
    async def execute(self, ctx: OrchestrationContext) -> str:
        await ctx.perform(Note(account=self.account, text="critical start"))
        await ctx.sleep(100)
        await ctx.perform(Note(account=self.account, text="critical end"))
        return "critical"


nested = App("nested-locks")
nested.register(Note, Notes, Inner, Outer, Critical)


def _inner_id(em: Emulator) -> str:
    inners = [iid for p in em.parts for iid, run in p.runs.items() if type(run.op) is Inner]
    assert len(inners) == 1
    return inners[0]


def _critical_section_is_not_interleaved(notes: list[str]) -> bool:
    start = notes.index("critical start")
    return notes[start + 1] == "critical end"


def test_terminating_a_lock_holder_stops_what_runs_inside_its_locks() -> None:
    em = Emulator(nested, partitions=3)
    client = em.client()
    client.perform(Note(account="k", text="created"))
    client.start(Outer(account="k"), instance_id="outer")
    while em.step():
        pass
    inner = _inner_id(em)
    client.terminate("outer", "stop")
    while em.step():
        pass
    critical = client.start(Critical(account="k"), instance_id="critical")
    while em.step():  # Critical holds the lock and sleeps
        pass
    client.raise_event(inner, "go")
    assert client.wait(critical) == "critical"
    em.run()
    notes = client.perform(Notes(account="k"))
    assert _critical_section_is_not_interleaved(notes), notes


def test_abandoning_a_locked_child_keeps_mutual_exclusion() -> None:
    em = Emulator(nested, partitions=3)
    client = em.client()
    client.perform(Note(account="k", text="created"))
    client.start(Outer(account="k", give_up_after=10), instance_id="outer")
    while em.step():
        pass
    inner = _inner_id(em)
    assert client.wait("outer") == "gave up"  # it returned: its lock is released
    critical = client.start(Critical(account="k"), instance_id="critical")
    while em.step():
        pass
    client.raise_event(inner, "go")
    assert client.wait(critical) == "critical"
    em.run()
    notes = client.perform(Notes(account="k"))
    assert _critical_section_is_not_interleaved(notes), notes


class BusyInner(AccountKey, Orchestration[str], lock=True):
    """Inside its caller's lock, writes many times in a row."""

    async def execute(self, ctx: OrchestrationContext) -> str:
        for i in range(30):
            await ctx.perform(Note(account=self.account, text=f"inner {i}"))
        return "inner"


class ImpatientOuter(AccountKey, Orchestration[str], lock=True):
    async def execute(self, ctx: OrchestrationContext) -> str:
        inner = ctx.perform(BusyInner(account=self.account))
        timer = ctx.sleep(0.005)  # a few deliveries of virtual time
        winner = await ctx.any(inner, timer)
        return "gave up" if winner is timer else "inner finished"


nested.register(BusyInner, ImpatientOuter)


def test_writes_in_flight_from_an_abandoned_child_never_enter_the_next_critical_section() -> None:
    partitions = 4
    schema = nested.compile()
    busy = {schema.instance_owner(i, partitions) for i in ("outer", "outer:1", "critical")}
    account = key_on(nested, AccountKey, min(set(range(partitions)) - busy), partitions, "k")
    gave_up = 0
    for seed in range(30):
        em = Emulator(nested, partitions=partitions, seed=seed)
        client = em.client()
        client.perform(Note(account=account, text="created"))
        outer = client.start(ImpatientOuter(account=account), instance_id="outer")
        critical = client.start(Critical(account=account), instance_id="critical")
        gave_up += client.wait(outer) == "gave up"
        assert client.wait(critical) == "critical"
        em.run()
        notes = client.perform(Notes(account=account))
        assert _critical_section_is_not_interleaved(notes), (seed, notes)
    assert gave_up > 0  # the scenario really abandoned a busy child


# -- events performed inside nested critical sections ---------------------------------------------


class MoveInside(Orchestration[str], lock=True):
    """Runs inside its caller's locks and performs an event over both held keys."""

    src: str
    dst: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.src), AccountKey(account=self.dst)]

    async def execute(self, ctx: OrchestrationContext) -> str:
        await ctx.perform(Moved(src=self.src, dst=self.dst, amount=1))
        return "moved"


class HoldsAndDelegates(Orchestration[str], lock=True):
    src: str
    dst: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.src), AccountKey(account=self.dst)]

    async def execute(self, ctx: OrchestrationContext) -> str:
        return await ctx.perform(MoveInside(src=self.src, dst=self.dst))


nested_events = App("nested-lock-events")
nested_events.register(Account, Moved, Balance, MoveInside, HoldsAndDelegates)


def test_an_event_from_a_nested_critical_section_applies_before_the_locks_are_released() -> None:
    for seed in range(60):
        em = Emulator(nested_events, partitions=4, seed=seed)
        client = em.client()
        assert client.perform(HoldsAndDelegates(src="c", dst="d")) == "moved"
        em.run()
        assert em.unhandled == [], f"seed {seed}: {em.unhandled}"
        assert client.perform(Balance(account="c")) == -1, f"seed {seed}"
        assert client.perform(Balance(account="d")) == 1, f"seed {seed}"


def test_nested_critical_section_events_survive_faults() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        results = [client.perform(HoldsAndDelegates(src="c", dst="d")) for _ in range(3)]
        em.run()
        balances = [client.perform(Balance(account=a)) for a in ("c", "d")]
        return results, balances, em.unhandled

    assert fault_free_and_faulty(nested_events, scenario, seed=5) == (["moved"] * 3, [-3, 3], [])


class MoveAndLinger(Orchestration[str], lock=True):
    """Holds both keys, performs an event over them, then waits to be terminated."""

    src: str
    dst: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.src), AccountKey(account=self.dst)]

    async def execute(self, ctx: OrchestrationContext) -> str:
        moved = ctx.perform(Moved(src=self.src, dst=self.dst, amount=1))
        await ctx.wait_for_event("never")
        await moved
        return "done"


class DelegateAndLinger(Orchestration[str], lock=True):
    """Holds both keys; its locked child sends the event and lingers."""

    src: str
    dst: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.src), AccountKey(account=self.dst)]

    async def execute(self, ctx: OrchestrationContext) -> str:
        return await ctx.perform(MoveAndLinger(src=self.src, dst=self.dst))


nested_events.register(MoveAndLinger, DelegateAndLinger)


def _balance_or_zero(client: Any, account: str) -> int:
    try:
        return int(client.perform(Balance(account=account)))
    except StateNotFoundError:  # the event never reached this account
        return 0


@pytest.mark.parametrize("holder", [MoveAndLinger, DelegateAndLinger])
@pytest.mark.parametrize("faulty", [False, True])
def test_terminating_a_holder_with_a_locked_event_in_flight_never_half_applies_it(
    holder: type[Orchestration[str]], faulty: bool
) -> None:
    """The terminated holder's locks (its own, or its caller's for a child running inside
    them) are released only once the event has reached every owner: the event applies on
    both accounts (or, terminated before sending it, on none); also across restores."""
    applied = 0
    for seed in range(30):
        for steps in range(1, 14):
            em = Emulator(nested_events, partitions=4, seed=seed,
                          faults=faults(seed) if faulty else None)
            client = em.client()
            client.start(holder(src="c", dst="d"), instance_id="m")  # type: ignore[call-arg]
            for _ in range(steps):
                em.step()
            client.terminate("m", "stop")
            em.run()
            c, d = (_balance_or_zero(client, a) for a in ("c", "d"))
            assert (c, d) in ((0, 0), (-1, 1)), f"seed {seed}, {steps} steps: c={c} d={d}"
            assert em.unhandled == [], f"seed {seed}, {steps} steps: {em.unhandled}"
            applied += (c, d) == (-1, 1)
    assert applied > 0
