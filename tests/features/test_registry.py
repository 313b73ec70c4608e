"""Registry validation: bad definitions fail at registration with a DefinitionError naming
the offending class; unregistered operations fail with UnknownOperationError."""

from __future__ import annotations

from typing import Any

import pytest

from hosts.emulator import Emulator
from reactive import (
    Activity,
    ActivityContext,
    Affinity,
    App,
    DefinitionError,
    Event,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    SingletonAffinity,
    State,
    UnknownOperationError,
    Update,
    UpdateContext,
    subscribe,
)


class GoodKey(Affinity):
    good: str


class GoodState(State[GoodKey]):
    value: int = 0


class Bump(GoodKey, Update[GoodState, int], create=True):
    def execute(self, ctx: UpdateContext[GoodState]) -> int:
        ctx.state.value += 1
        return ctx.state.value


# -- affinities -----------------------------------------------------------------------------


def test_partitioned_affinity_without_a_field_is_rejected() -> None:
    class NoKeyField(Affinity):
        pass

    with pytest.raises(DefinitionError, match="NoKeyField"):
        App("t").register(NoKeyField)


def test_partitioned_affinity_with_two_fields_is_rejected() -> None:
    class TwoKeyFields(Affinity):
        first: str
        second: str

    with pytest.raises(DefinitionError, match="TwoKeyFields"):
        App("t").register(TwoKeyFields)


def test_bad_affinity_is_rejected_through_the_state_that_uses_it() -> None:
    class PairKey(Affinity):
        left: str
        right: str

    class PairState(State[PairKey]):
        n: int = 0

    with pytest.raises(DefinitionError, match="PairKey"):
        App("t").register(PairState)


def test_singleton_affinity_with_a_field_is_rejected() -> None:
    class KeyedSingleton(SingletonAffinity):
        oops: str

    with pytest.raises(DefinitionError, match="KeyedSingleton"):
        App("t").register(KeyedSingleton)


# -- states, updates, reads -----------------------------------------------------------------


def test_state_without_affinity_is_rejected() -> None:
    class Unplaced(State):  # type: ignore[type-arg]
        n: int = 0

    with pytest.raises(DefinitionError, match="Unplaced"):
        App("t").register(Unplaced)


def test_state_field_without_default_is_rejected() -> None:
    class NoDefault(State[GoodKey]):
        n: int

    with pytest.raises(DefinitionError, match="NoDefault"):
        App("t").register(NoDefault)


def test_update_not_inheriting_its_states_affinity_is_rejected() -> None:
    class Stray(Update[GoodState, int]):
        good: str

        def execute(self, ctx: UpdateContext[GoodState]) -> int:
            return 0

    with pytest.raises(DefinitionError, match="Stray"):
        App("t").register(Stray)


def test_read_not_inheriting_its_states_affinity_is_rejected() -> None:
    class OtherKey(Affinity):
        other: str

    class StrayRead(OtherKey, Read[GoodState, int]):
        def execute(self, ctx: ReadContext[GoodState]) -> int:
            return 0

    with pytest.raises(DefinitionError, match="StrayRead"):
        App("t").register(StrayRead)


def test_subscription_to_an_event_without_the_states_keys_is_rejected() -> None:
    class Unkeyed(Event):
        amount: int

    class Listener(State[GoodKey]):
        n: int = 0

        @subscribe(Unkeyed)
        def on_unkeyed(self, ctx: Any, event: Unkeyed) -> None:
            self.n += 1

    with pytest.raises(DefinitionError, match="Listener"):
        App("t").register(Listener)


# -- lock sets, names, non-classes, startup ---------------------------------------------------


def test_lock_true_orchestration_without_keys_is_rejected() -> None:
    class LocksNothing(Orchestration[None], lock=True):
        async def execute(self, ctx: OrchestrationContext) -> None:
            return None

    with pytest.raises(DefinitionError, match="LocksNothing"):
        App("t").register(LocksNothing)


def test_lock_true_activity_without_keys_is_rejected() -> None:
    class LockedSideEffect(Activity[None], lock=True):
        def execute(self, ctx: ActivityContext) -> None:
            return None

    with pytest.raises(DefinitionError, match="LockedSideEffect"):
        App("t").register(LockedSideEffect)


def test_lock_true_with_keys_from_affinities_is_accepted() -> None:
    class LocksTwo(Orchestration[None], lock=True):
        a: str
        b: str

        def affinities(self) -> list[Affinity]:
            return [GoodKey(good=self.a), GoodKey(good=self.b)]

        async def execute(self, ctx: OrchestrationContext) -> None:
            return None

    app = App("t")
    app.register(GoodState, LocksTwo)
    assert Emulator(app, partitions=2).client().perform(LocksTwo(a="x", b="y")) is None


def _make_named(module: str) -> type[Orchestration[int]]:
    class Twin(Orchestration[int]):
        async def execute(self, ctx: OrchestrationContext) -> int:
            return 1

    Twin.__module__ = module
    return Twin


def test_duplicate_class_names_are_rejected() -> None:
    first, second = _make_named("pkg_one"), _make_named("pkg_two")
    assert first is not second
    app = App("t")
    app.register(first)
    with pytest.raises(DefinitionError, match="Twin"):
        app.register(second)


def test_duplicate_names_across_kinds_are_rejected() -> None:
    class Clash(Orchestration[int]):
        async def execute(self, ctx: OrchestrationContext) -> int:
            return 1

    first = Clash

    class Clash(Exception):  # type: ignore[no-redef]
        pass

    app = App("t")
    app.register(first)
    with pytest.raises(DefinitionError, match="Clash"):
        app.register(Clash)


def test_registering_the_same_class_twice_is_harmless() -> None:
    app = App("t")
    app.register(Bump)
    app.register(Bump)
    app.register(GoodState)
    assert Emulator(app, partitions=2).client().perform(Bump(good="g")) == 1


def test_registering_a_non_class_is_rejected() -> None:
    with pytest.raises(DefinitionError, match="42"):
        App("t").register(42)  # type: ignore[type-var]


def test_registering_an_unrelated_class_is_rejected() -> None:
    class PlainThing:
        pass

    with pytest.raises(DefinitionError, match="PlainThing"):
        App("t").register(PlainThing)


def test_register_without_classes_is_rejected() -> None:
    with pytest.raises(DefinitionError):
        App("t").register()


def test_startup_orchestration_with_required_fields_is_rejected() -> None:
    class NeedsInput(Orchestration[None], startup=True):
        name: str

        async def execute(self, ctx: OrchestrationContext) -> None:
            return None

    with pytest.raises(DefinitionError, match="NeedsInput"):
        App("t").register(NeedsInput)


def test_update_without_state_type_is_rejected() -> None:
    class Untyped(GoodKey, Update):  # type: ignore[type-arg]
        def execute(self, ctx: Any) -> int:
            return 0

    with pytest.raises(DefinitionError, match="Untyped"):
        App("t").register(Untyped)


# -- startup --------------------------------------------------------------------------------


def test_startup_orchestrations_run_once_when_the_application_first_starts() -> None:
    class Booted(Orchestration[None], startup=True):
        async def execute(self, ctx: OrchestrationContext) -> None:
            await ctx.perform(Bump(good="boot"))

    class BootedLater(Orchestration[None]):
        amount: int

        async def execute(self, ctx: OrchestrationContext) -> None:
            for _ in range(self.amount):
                await ctx.perform(Bump(good="later"))

    class Count(GoodKey, Read[GoodState, int]):
        def execute(self, ctx: ReadContext[GoodState]) -> int:
            return ctx.state.value

    app = App("t")
    app.register(Booted, Bump, Count)
    app.on_first_start(BootedLater(amount=3))
    em = Emulator(app, partitions=3)
    em.run()
    client = em.client()
    assert client.perform(Count(good="boot")) == 1
    assert client.perform(Count(good="later")) == 3
    em.run()
    assert client.perform(Count(good="boot")) == 1


# -- unknown operations -----------------------------------------------------------------------


class Unlisted(Activity[int]):
    def execute(self, ctx: ActivityContext) -> int:
        return 1


class UnlistedOrchestration(Orchestration[int]):
    async def execute(self, ctx: OrchestrationContext) -> int:
        return 1


class CallsUnlisted(Orchestration[str]):
    async def execute(self, ctx: OrchestrationContext) -> str:
        try:
            await ctx.perform(Unlisted())
        except UnknownOperationError as exc:
            return f"caught: {exc}"
        return "performed"


def test_client_performing_an_unregistered_operation_raises() -> None:
    app = App("t")
    app.register(Bump)
    client = Emulator(app, partitions=2).client()
    with pytest.raises(UnknownOperationError, match="UnlistedOrchestration"):
        client.perform(UnlistedOrchestration())
    with pytest.raises(UnknownOperationError, match="UnlistedOrchestration"):
        client.start(UnlistedOrchestration())
    with pytest.raises(UnknownOperationError, match="Unlisted"):
        client.fork(Unlisted())


def test_orchestration_performing_an_unregistered_operation_gets_unknown_operation_error() -> None:
    app = App("t")
    app.register(CallsUnlisted)
    result = Emulator(app, partitions=2).client().perform(CallsUnlisted())
    assert result.startswith("caught: ")
    assert "Unlisted" in result


def test_unregistered_operation_fails_the_orchestration_when_uncaught() -> None:
    class Careless(Orchestration[int]):
        async def execute(self, ctx: OrchestrationContext) -> int:
            return await ctx.perform(Unlisted())

    app = App("t")
    app.register(Careless)
    client = Emulator(app, partitions=2).client()
    iid = client.start(Careless())
    with pytest.raises(UnknownOperationError, match="Unlisted"):
        client.wait(iid)
    status = client.status(iid)
    assert status is not None and status.status == "failed"
    assert isinstance(status.error, UnknownOperationError)


# -- compiling leaves the application alone -----------------------------------------------------


def test_an_application_may_name_its_own_operations_like_the_runtime_s_built_ins() -> None:
    class ClientPerform(Orchestration[str]):  # the same name as a runtime built-in
        who: str

        async def execute(self, ctx: OrchestrationContext) -> str:
            await ctx.sleep(1)  # a timer: ctx.schedule uses a built-in of this kind too
            return f"performed for {self.who}"

    class ScheduledFork(Orchestration[int]):
        async def execute(self, ctx: OrchestrationContext) -> int:
            ctx.schedule(5, Bump(good="later"))
            await ctx.finish()
            return await ctx.perform(ClientPerform(who="ann")) == "performed for ann"

    app = App("own-names")
    app.register(ClientPerform, ScheduledFork, Bump)
    client = Emulator(app, partitions=2).client()
    assert client.perform(ClientPerform(who="bob")) == "performed for bob"
    assert client.perform(ScheduledFork()) == 1
    assert client.perform(Bump(good="later")) == 2  # the scheduled bump ran first


def test_after_compiling_the_application_may_still_take_a_built_in_s_name() -> None:
    class ClientFork(Orchestration[int]):
        async def execute(self, ctx: OrchestrationContext) -> int:
            return 7

    app = App("compiled-first")
    app.register(Bump)
    assert Emulator(app, partitions=1).client().perform(Bump(good="x")) == 1
    app.register(ClientFork)
    assert Emulator(app, partitions=1).client().perform(ClientFork()) == 7


def test_built_ins_recorded_under_their_earlier_names_still_decode() -> None:
    from reactive.core.builtin_ops import ClientFork

    schema = App("older-snapshots").compile()
    op = schema.decode_op(["ClientFork", {"op": ["Bump", {"good": "x"}]}])
    assert isinstance(op, ClientFork)
