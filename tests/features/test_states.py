"""States: creation, initializers, events across partitions, handler errors, config."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from hosts.emulator import Emulator
from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    DefinitionError,
    Event,
    InitContext,
    InvalidStateError,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    StateNotFoundError,
    SubscriptionContext,
    Update,
    UpdateContext,
    subscribe,
)
from reactive.core.partition import Partition
from reactive.errors import CorruptSnapshotError
from tests.features._support import fault_free_and_faulty, key_on, snapshot_bytes

# -- creation -----------------------------------------------------------------------------------


class NoteKey(Affinity):
    note: str


class Note(State[NoteKey]):
    text: str = "blank"
    history: list[str] = []


class Write(NoteKey, Update[Note, str], create=True):
    text: str

    def execute(self, ctx: UpdateContext[Note]) -> str:
        ctx.state.history.append(self.text)
        ctx.state.text = self.text
        return ctx.state.text


class Amend(NoteKey, Update[Note, str]):
    text: str

    def execute(self, ctx: UpdateContext[Note]) -> str:
        ctx.state.text += self.text
        return ctx.state.text


class ReadNote(NoteKey, Read[Note, str]):
    def execute(self, ctx: ReadContext[Note]) -> str:
        return ctx.state.text


class History(NoteKey, Read[Note, list[str]]):
    def execute(self, ctx: ReadContext[Note]) -> list[str]:
        return list(ctx.state.history)


class LengthOfNote(NoteKey, Read[Note, int]):
    def execute(self, ctx: ReadContext[Note]) -> int:
        return len(ctx.state.text)


class WriteAndMeasure(NoteKey, Update[Note, list[Any]], create=True):
    """Nested, synchronous reads and updates on the same instance."""

    def execute(self, ctx: UpdateContext[Note]) -> list[Any]:
        before = ctx.perform_read(LengthOfNote(note=self.note))
        ctx.perform_update(Write(note=self.note, text="nested"))
        after = ctx.perform_read(ReadNote(note=self.note))
        return [before, after, ctx.key]


class AppendInOrder(Orchestration[list[str]]):
    note: str
    count: int

    async def execute(self, ctx: OrchestrationContext) -> list[str]:
        for i in range(self.count):
            ctx.fork(Write(note=self.note, text=str(i)))
        await ctx.finish()
        return await ctx.perform(History(note=self.note))


creation = App("state-creation")
creation.register(Write, Amend, ReadNote, History, WriteAndMeasure, AppendInOrder)


def test_create_update_creates_the_state_from_defaults() -> None:
    client = Emulator(creation, partitions=2).client()
    with pytest.raises(StateNotFoundError):
        client.perform(ReadNote(note="n"))
    with pytest.raises(StateNotFoundError):
        client.perform(Amend(note="n", text="!"))
    assert client.perform(Write(note="n", text="hello")) == "hello"
    assert client.perform(Amend(note="n", text="!")) == "hello!"
    assert client.perform(ReadNote(note="n")) == "hello!"
    with pytest.raises(StateNotFoundError):
        client.perform(ReadNote(note="other"))


def test_nested_reads_and_updates_run_synchronously_on_the_same_instance() -> None:
    client = Emulator(creation, partitions=2).client()
    assert client.perform(WriteAndMeasure(note="m")) == [5, "nested", "m"]  # "blank"


def test_updates_from_one_caller_apply_in_fifo_order_per_key() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        return client.wait(client.start(AppendInOrder(note="fifo", count=20), instance_id="f"))

    assert fault_free_and_faulty(creation, scenario) == [str(i) for i in range(20)]


# -- initializers -------------------------------------------------------------------------------


class WalletKey(Affinity):
    wallet: str


class Granted(WalletKey, Event):
    amount: int


class Welcome(Activity[int]):
    wallet: str

    def execute(self, ctx: ActivityContext) -> int:
        return 100 if self.wallet.startswith("vip") else 10


class Wallet(State[WalletKey]):
    balance: int = 0
    initialized: int = 0
    journal: list[str] = []

    async def initialize(self, ctx: InitContext, key: str) -> None:
        bonus = await ctx.perform(Welcome(wallet=key))
        await ctx.sleep(5)
        self.balance = bonus
        self.initialized += 1
        self.journal.append(f"init {key} {bonus}")

    @subscribe(Granted)
    def on_granted(self, ctx: SubscriptionContext, event: Granted) -> None:
        self.balance += event.amount
        self.journal.append(f"granted {event.amount} on top of {self.balance - event.amount}")


class Spend(WalletKey, Update[Wallet, int], create=True):
    amount: int

    def execute(self, ctx: UpdateContext[Wallet]) -> int:
        ctx.state.balance -= self.amount
        ctx.state.journal.append(f"spend {self.amount}")
        return ctx.state.balance


class Journal(WalletKey, Read[Wallet, list[str]]):
    def execute(self, ctx: ReadContext[Wallet]) -> list[str]:
        return list(ctx.state.journal)


class Inits(WalletKey, Read[Wallet, int]):
    def execute(self, ctx: ReadContext[Wallet]) -> int:
        return ctx.state.initialized


class ConcurrentSpends(Orchestration[list[int]]):
    wallet: str

    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        futures = [ctx.perform(Spend(wallet=self.wallet, amount=1)) for _ in range(5)]
        return await ctx.all(*futures)


init_app = App("initializers")
init_app.register(Wallet, Spend, Journal, Inits, Welcome, ConcurrentSpends, Granted)


def test_initializer_runs_once_before_the_triggering_update_and_may_call_activities() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        first = client.perform(Spend(wallet="vip-1", amount=1))
        second = client.perform(Spend(wallet="vip-1", amount=2))
        return first, second, client.perform(Journal(wallet="vip-1"))

    assert fault_free_and_faulty(init_app, scenario) == (
        99,
        97,
        ["init vip-1 100", "spend 1", "spend 2"],
    )


def test_concurrent_operations_on_a_new_state_wait_for_one_initializer() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        spends = client.wait(client.start(ConcurrentSpends(wallet="w"), instance_id="cs"))
        return sorted(spends), client.perform(Inits(wallet="w"))

    assert fault_free_and_faulty(init_app, scenario) == ([5, 6, 7, 8, 9], 1)


def test_initializer_runs_before_the_event_handler_that_creates_the_state() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.perform(Granted(wallet="vip-ev", amount=7))
        return client.perform(Journal(wallet="vip-ev")), client.perform(Inits(wallet="vip-ev"))

    assert fault_free_and_faulty(init_app, scenario) == (
        ["init vip-ev 100", "granted 7 on top of 100"],
        1,
    )


def test_reads_of_a_state_being_initialized_wait_for_it() -> None:
    em = Emulator(init_app, partitions=2)
    client = em.client()
    client.fork(Spend(wallet="racing", amount=1))
    while em.step():  # the initializer now waits on its timer
        pass
    iid = client.start(ConcurrentSpends(wallet="racing"))
    assert sorted(client.wait(iid)) == [4, 5, 6, 7, 8]
    assert client.perform(Inits(wallet="racing")) == 1


class ExistsAfterOwnEvent(WalletKey, Orchestration[list[Any]], lock=True):
    """A lock holder creates a state with an event, then asks whether it exists."""

    async def execute(self, ctx: OrchestrationContext) -> list[Any]:
        before = await ctx.state_exists(Wallet, WalletKey(wallet=self.wallet))
        await ctx.perform(Granted(wallet=self.wallet, amount=1))
        after = await ctx.state_exists(Wallet, WalletKey(wallet=self.wallet))
        journal = await ctx.perform(Journal(wallet=self.wallet))
        return [before, after, journal]


init_app.register(ExistsAfterOwnEvent)


def test_a_lock_holder_sees_the_state_its_own_event_created() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        return client.perform(ExistsAfterOwnEvent(wallet="new"))

    assert fault_free_and_faulty(init_app, scenario) == [
        False,
        True,
        ["init new 10", "granted 1 on top of 10"],
    ]


# -- events across partitions -------------------------------------------------------------------


class AccountKey(Affinity):
    account: str


class Moved(Event):
    src: str
    dst: str
    amount: int

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.src), AccountKey(account=self.dst)]


class Account(State[AccountKey]):
    balance: int = 0
    opened: bool = False

    async def initialize(self, ctx: InitContext, key: str) -> None:
        self.opened = True

    @subscribe(Moved)
    def on_moved(self, ctx: SubscriptionContext, event: Moved) -> None:
        if ctx.key == event.src:
            self.balance -= event.amount
        if ctx.key == event.dst:
            self.balance += event.amount


class Movements(State[AccountKey]):
    """A second subscriber at the same keys: counts movements."""

    moves: int = 0

    @subscribe(Moved)
    def on_moved(self, ctx: SubscriptionContext, event: Moved) -> None:
        self.moves += 1


class Balance(AccountKey, Read[Account, list[Any]]):
    def execute(self, ctx: ReadContext[Account]) -> list[Any]:
        return [ctx.state.balance, ctx.state.opened]


class Moves(AccountKey, Read[Movements, int]):
    def execute(self, ctx: ReadContext[Movements]) -> int:
        return ctx.state.moves


class SumBoth(Orchestration[int], lock=True):
    """Reads both accounts under their locks: never sees half of an event."""

    a: str
    b: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.a), AccountKey(account=self.b)]

    async def execute(self, ctx: OrchestrationContext) -> int:
        first = await ctx.perform(Balance(account=self.a))
        await ctx.sleep(1)
        second = await ctx.perform(Balance(account=self.b))
        total: int = first[0] + second[0]
        return total


class MoveAndAudit(Orchestration[list[int]]):
    a: str
    b: str
    rounds: int

    async def execute(self, ctx: OrchestrationContext) -> list[int]:
        audits = []
        for i in range(self.rounds):
            src, dst = (self.a, self.b) if i % 2 == 0 else (self.b, self.a)
            ctx.fork(Moved(src=src, dst=dst, amount=i + 1))
            audits.append(ctx.perform(SumBoth(a=self.a, b=self.b)))
        return await ctx.all(*audits)


events = App("events")
events.register(Account, Movements, Balance, Moves, SumBoth, MoveAndAudit, Moved)


def test_an_event_creates_missing_states_at_every_key_across_partitions() -> None:
    src = key_on(events, AccountKey, 0, 4, "src")
    dst = key_on(events, AccountKey, 3, 4, "dst")

    def scenario(em: Emulator) -> Any:
        client = em.client()
        with pytest.raises(StateNotFoundError):
            client.perform(Balance(account=src))
        client.perform(Moved(src=src, dst=dst, amount=5))
        return [
            client.perform(Balance(account=src)),
            client.perform(Balance(account=dst)),
            client.perform(Moves(account=src)),
            client.perform(Moves(account=dst)),
        ]

    assert fault_free_and_faulty(events, scenario) == [[-5, True], [5, True], 1, 1]


def test_events_apply_atomically_across_partitions() -> None:
    a = key_on(events, AccountKey, 1, 4, "a")
    b = key_on(events, AccountKey, 2, 4, "b")

    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.perform(Moved(src=a, dst=b, amount=0))  # create both
        audits = client.wait(client.start(MoveAndAudit(a=a, b=b, rounds=12), instance_id="ma"))
        return audits, client.perform(Moves(account=a))

    audits, moves = fault_free_and_faulty(events, scenario)
    assert audits == [0] * 12
    assert moves == 13


def test_event_within_one_key_counts_once_per_subscriber() -> None:
    client = Emulator(events, partitions=2).client()
    client.perform(Moved(src="same", dst="same", amount=3))
    assert client.perform(Balance(account="same")) == [0, True]
    assert client.perform(Moves(account="same")) == 1


# -- handler errors -----------------------------------------------------------------------------


class BellKey(Affinity):
    bell: str


class Rang(BellKey, Event):
    times: int


class Grumpy(State[BellKey]):
    rung: int = 0

    @subscribe(Rang)
    def on_rang(self, ctx: SubscriptionContext, event: Rang) -> None:
        self.rung += event.times
        raise RuntimeError(f"grumpy at {ctx.key} hates bells")


class Happy(State[BellKey]):
    rung: int = 0
    also: int = 0

    @subscribe(Rang)
    def on_rang(self, ctx: SubscriptionContext, event: Rang) -> None:
        self.rung += event.times

    @subscribe(Rang)
    def on_rang_again(self, ctx: SubscriptionContext, event: Rang) -> None:
        self.also += 1
        raise ValueError("second handler of Happy fails")


class HappyRung(BellKey, Read[Happy, list[int]]):
    def execute(self, ctx: ReadContext[Happy]) -> list[int]:
        return [ctx.state.rung, ctx.state.also]


class GrumpyRung(BellKey, Read[Grumpy, int]):
    def execute(self, ctx: ReadContext[Grumpy]) -> int:
        return ctx.state.rung


bells = App("bells")
bells.register(Grumpy, Happy, HappyRung, GrumpyRung, Rang)


def test_a_failing_subscriber_is_reported_and_others_still_apply() -> None:
    hook: list[str] = []
    em = Emulator(bells, partitions=3, on_unhandled=hook.append)
    client = em.client()
    assert client.perform(Rang(bell="door", times=2)) is None
    assert client.perform(HappyRung(bell="door")) == [2, 1]
    assert client.perform(GrumpyRung(bell="door")) == 2  # no rollback
    assert hook == em.unhandled
    assert any("RuntimeError" in e and "hates bells" in e for e in em.unhandled)
    assert any("ValueError" in e and "second handler" in e for e in em.unhandled)
    assert len(em.unhandled) == 2


def test_subscriber_errors_are_reported_once_under_faults() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.perform(Rang(bell="b", times=1))
        client.perform(Rang(bell="b", times=1))
        return client.perform(HappyRung(bell="b")), sorted(em.unhandled)

    (rung, unhandled) = fault_free_and_faulty(bells, scenario)
    assert rung == [2, 2]
    assert len(unhandled) == 4


# -- configuration ------------------------------------------------------------------------------


class Settings(BaseModel):
    greeting: str


class Missing(BaseModel):
    value: int


class CfgKey(Affinity):
    cfg: str


class Touched(CfgKey, Event):
    pass


class CfgState(State[CfgKey]):
    seen: list[str] = []

    @subscribe(Touched)
    def on_touched(self, ctx: SubscriptionContext, event: Touched) -> None:
        self.seen.append(describe(ctx.config(Settings), ctx.config(Missing)))


def describe(settings: Settings | None, missing: Missing | None) -> str:
    return f"{settings.greeting if settings else None}/{missing}"


class CfgUpdate(CfgKey, Update[CfgState, str], create=True):
    def execute(self, ctx: UpdateContext[CfgState]) -> str:
        return describe(ctx.config(Settings), ctx.config(Missing))


class CfgRead(CfgKey, Read[CfgState, list[str]]):
    def execute(self, ctx: ReadContext[CfgState]) -> list[str]:
        return [*ctx.state.seen, describe(ctx.config(Settings), ctx.config(Missing))]


class CfgActivity(Activity[str]):
    def execute(self, ctx: ActivityContext) -> str:
        return describe(ctx.config(Settings), ctx.config(Missing))


class CfgOrchestration(Orchestration[list[Any]]):
    async def execute(self, ctx: OrchestrationContext) -> list[Any]:
        mine = describe(ctx.config(Settings), ctx.config(Missing))
        update = await ctx.perform(CfgUpdate(cfg="c"))
        await ctx.perform(Touched(cfg="c"))
        activity = await ctx.perform(CfgActivity())
        read = await ctx.perform(CfgRead(cfg="c"))
        return [mine, update, activity, read]


def test_config_returns_the_configured_object_or_none() -> None:
    configured = App("configured")
    configured.register(CfgOrchestration, CfgUpdate, CfgRead, CfgActivity, Touched)
    configured.configure(Settings(greeting="hi"))
    client = Emulator(configured, partitions=2).client()
    assert client.perform(CfgOrchestration()) == [
        "hi/None", "hi/None", "hi/None", ["hi/None", "hi/None"],
    ]


def test_config_is_none_everywhere_when_nothing_is_configured() -> None:
    bare = App("unconfigured")
    bare.register(CfgOrchestration, CfgUpdate, CfgRead, CfgActivity, Touched)
    client = Emulator(bare, partitions=2).client()
    assert client.perform(CfgOrchestration()) == [
        "None/None", "None/None", "None/None", ["None/None", "None/None"],
    ]


# -- forks from state contexts, initializer limits ---------------------------------------------


class EchoKey(Affinity):
    echo: str


class Shouted(EchoKey, Event):
    pass


class Echo(State[EchoKey]):
    heard: list[str] = []

    @subscribe(Shouted)
    def on_shouted(self, ctx: SubscriptionContext, event: Shouted) -> None:
        self.heard.append("shout")
        ctx.fork(Hear(echo=f"{ctx.key}-echo", text="from handler"))


class Hear(EchoKey, Update[Echo, None], create=True):
    text: str

    def execute(self, ctx: UpdateContext[Echo]) -> None:
        ctx.state.heard.append(self.text)
        if self.text == "relay":
            ctx.fork(Hear(echo=f"{ctx.key}-relayed", text="from update"))


class Heard(EchoKey, Read[Echo, list[str]]):
    def execute(self, ctx: ReadContext[Echo]) -> list[str]:
        return list(ctx.state.heard)


echoes = App("echoes")
echoes.register(Echo, Hear, Heard, Shouted)


def test_handlers_and_updates_can_fork_operations() -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        client.perform(Shouted(echo="a"))
        client.perform(Hear(echo="b", text="relay"))
        em.run()
        return [
            client.perform(Heard(echo="a")),
            client.perform(Heard(echo="a-echo")),
            client.perform(Heard(echo="b")),
            client.perform(Heard(echo="b-relayed")),
        ]

    assert fault_free_and_faulty(echoes, scenario) == [
        ["shout"], ["from handler"], ["relay"], ["from update"],
    ]


class MeddlerKey(Affinity):
    meddler: str


class Meddler(State[MeddlerKey]):
    outcome: str = ""

    async def initialize(self, ctx: InitContext, key: str) -> None:
        try:
            await ctx.perform(Hear(echo="victim", text="touched by an initializer"))
        except Exception as exc:
            self.outcome = f"refused: {type(exc).__name__}"
        else:
            self.outcome = "touched another state"


class Meddle(MeddlerKey, Update[Meddler, str], create=True):
    def execute(self, ctx: UpdateContext[Meddler]) -> str:
        return ctx.state.outcome


meddling = App("meddling")
meddling.register(Meddle, Hear, Heard)


def test_an_initializer_may_not_touch_other_states() -> None:
    client = Emulator(meddling, partitions=2).client()
    assert client.perform(Meddle(meddler="m")).startswith("refused: ")
    with pytest.raises(StateNotFoundError):
        client.perform(Heard(echo="victim"))


@pytest.mark.parametrize("key", ["1", "a~5", 'q"uote', "é", "", "a/b:c#d"])
def test_any_string_key_works_with_an_initializer(key: str) -> None:
    def scenario(em: Emulator) -> Any:
        client = em.client()
        return client.perform(Spend(wallet=key, amount=1)), client.perform(Inits(wallet=key))

    assert fault_free_and_faulty(init_app, scenario, fault_seeds=(1,)) == (9, 1)


# -- states stay loadable whatever user code stores in them -------------------------------------


class GaugeKey(Affinity):
    gauge: str


class Calibrated(GaugeKey, Event):
    reading: Any


class Gauge(State[GaugeKey]):
    level: int = 0
    marks: list[int] = []

    @subscribe(Calibrated)
    def on_calibrated(self, ctx: SubscriptionContext, event: Calibrated) -> None:
        self.level = event.reading


class SetLevel(GaugeKey, Update[Gauge, int], create=True):
    level: Any

    def execute(self, ctx: UpdateContext[Gauge]) -> int:
        ctx.state.level = self.level
        return 1


class AddMark(GaugeKey, Update[Gauge, None], create=True):
    mark: Any

    def execute(self, ctx: UpdateContext[Gauge]) -> None:
        ctx.state.marks.append(self.mark)


class GaugeLevel(GaugeKey, Read[Gauge, list[Any]]):
    def execute(self, ctx: ReadContext[Gauge]) -> list[Any]:
        return [ctx.state.level, list(ctx.state.marks)]


gauges = App("gauges")
gauges.register(Gauge, SetLevel, AddMark, GaugeLevel, Calibrated)


def _restores_every_partition(em: Emulator) -> None:
    for part in em.parts:
        Partition.restore(em.schema, snapshot_bytes(part))


def test_an_update_storing_a_wrong_type_fails_names_the_field_and_is_undone() -> None:
    em = Emulator(gauges, partitions=2)
    client = em.client()
    assert client.perform(SetLevel(gauge="g1", level=5)) == 1
    with pytest.raises(InvalidStateError) as caught:
        client.perform(SetLevel(gauge="g1", level="high"))
    message = str(caught.value)
    assert "SetLevel" in message and "Gauge" in message
    assert '"g1"' in message and "level" in message and "'high'" in message
    with pytest.raises(InvalidStateError, match=r"field marks\.0: Input should be a valid integer"):
        client.perform(AddMark(gauge="g1", mark={"not": "an int"}))
    assert client.perform(GaugeLevel(gauge="g1")) == [5, []]
    _restores_every_partition(em)


def test_a_value_that_only_reads_back_converted_is_held_as_read_back() -> None:
    em = Emulator(gauges, partitions=1)
    client = em.client()
    client.perform(SetLevel(gauge="g2", level=7.0))
    level = client.perform(GaugeLevel(gauge="g2"))[0]
    assert level == 7 and type(level) is int  # what a restored partition would hold


def test_an_event_storing_a_wrong_type_is_reported_and_undone() -> None:
    em = Emulator(gauges, partitions=2)
    client = em.client()
    client.perform(SetLevel(gauge="g3", level=2))
    client.perform(Calibrated(gauge="g3", reading=[1, 2]))
    assert client.perform(GaugeLevel(gauge="g3")) == [2, []]
    assert len(em.unhandled) == 1
    assert "InvalidStateError" in em.unhandled[0] and "Calibrated" in em.unhandled[0]
    _restores_every_partition(em)


def test_a_corrupt_state_in_a_snapshot_names_its_partition() -> None:
    em = Emulator(gauges, partitions=1)
    em.client().perform(SetLevel(gauge="g4", level=1))
    data = snapshot_bytes(em.parts[0])
    (entry,) = data["states"].values()
    entry[2]["level"] = "broken"
    with pytest.raises(CorruptSnapshotError, match=r"partition 0: state Gauge at key \"g4\""):
        Partition.restore(em.schema, data)


def test_a_state_whose_default_could_not_be_stored_is_rejected_at_registration() -> None:
    class BadDefault(State[GaugeKey]):
        level: int = "high"  # type: ignore[assignment]

    with pytest.raises(DefinitionError, match="BadDefault has a default that does not fit"):
        App("bad-default").register(BadDefault)
