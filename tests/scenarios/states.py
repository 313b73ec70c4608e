"""TestStates: a singleton counter created by events, and the lifecycle of an account
(missing-state errors, existence checks under locks, creation with an initializer, and
concurrent withdrawals)."""

from __future__ import annotations

import uuid

from reactive import (
    Affinity,
    Event,
    InitContext,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    SingletonAffinity,
    State,
    StateNotFoundError,
    SubscriptionContext,
    SynchronizationDisciplineError,
    Update,
    UpdateContext,
    subscribe,
)

from .common import Observations, TestFailure, TestOrchestration, check_equal


class AccountKey(Affinity):
    account_id: uuid.UUID


class AccountState(State[AccountKey]):
    balance: int = 0

    async def initialize(self, ctx: InitContext, key: uuid.UUID) -> None:
        ctx.log.info("initializing account %s", key)
        self.balance = 10


class ReadBalance(AccountKey, Read[AccountState, int]):
    def execute(self, ctx: ReadContext[AccountState]) -> int:
        return ctx.state.balance


class TryWithdraw(AccountKey, Update[AccountState, bool]):
    amount: int

    def execute(self, ctx: UpdateContext[AccountState]) -> bool:
        if ctx.state.balance < self.amount:
            ctx.log.info("insufficient funds in %s", self.account_id)
            return False
        ctx.log.info("withdrawing %d from %s", self.amount, self.account_id)
        ctx.state.balance -= self.amount
        return True


class Deposit(AccountKey, Update[AccountState, None], create=True):
    amount: int

    def execute(self, ctx: UpdateContext[AccountState]) -> None:
        ctx.state.balance += self.amount


class GlobalCounterKey(SingletonAffinity):
    pass


class SomeEvent(GlobalCounterKey, Event):
    """An event with no content, counted by :class:`GlobalCounterState`."""


class GlobalCounterState(State[GlobalCounterKey]):
    count: int = 0

    async def initialize(self, ctx: InitContext, key: None) -> None:
        ctx.log.info("initializing singleton")

    @subscribe(SomeEvent)
    def on_some_event(self, ctx: SubscriptionContext, event: SomeEvent) -> None:
        self.count += 1


class ReadGlobalCounter(GlobalCounterKey, Read[GlobalCounterState, int]):
    def execute(self, ctx: ReadContext[GlobalCounterState]) -> int:
        return ctx.state.count


async def expect_not_found(ctx: OrchestrationContext, op: Read[AccountState, int] |
                           Update[AccountState, bool], what: str) -> str:
    try:
        await ctx.perform(op)
    except StateNotFoundError:
        return "StateNotFoundError"
    raise TestFailure(f"{what}: StateNotFoundError expected")


async def expect_discipline_error(ctx: OrchestrationContext, account: uuid.UUID, what: str) -> str:
    try:
        await ctx.state_exists(AccountState, AccountKey(account_id=account))
    except SynchronizationDisciplineError:
        return "SynchronizationDisciplineError"
    raise TestFailure(f"{what}: SynchronizationDisciplineError expected")


class CreateAccount(AccountKey, Orchestration[Observations], lock=True):
    """Holds the account's lock: it does not exist, reads and withdrawals fail, a creating
    deposit of 1 runs the initializer (10) first, then it exists with balance 11."""

    async def execute(self, ctx: OrchestrationContext) -> Observations:
        key = AccountKey(account_id=self.account_id)
        existed = await ctx.state_exists(AccountState, key)
        check_equal(False, existed, "account exists before creation")
        read = await expect_not_found(ctx, ReadBalance(account_id=self.account_id), "locked read")
        withdraw = await expect_not_found(
            ctx, TryWithdraw(account_id=self.account_id, amount=2), "locked withdraw"
        )
        await ctx.perform(Deposit(account_id=self.account_id, amount=1))
        exists = await ctx.state_exists(AccountState, key)
        check_equal(True, exists, "account exists after the deposit")
        balance = await ctx.perform(ReadBalance(account_id=self.account_id))
        check_equal(11, balance, "balance after the creating deposit")
        return {
            "existed_before": existed,
            "missing_read": read,
            "missing_withdraw": withdraw,
            "exists_after": exists,
            "balance": balance,
        }


class TestStates(TestOrchestration):
    async def run(self, ctx: OrchestrationContext) -> Observations:
        # ------ global counter: five forked events, created by the first one
        for _ in range(5):
            ctx.fork(SomeEvent())
        await ctx.finish()
        count = await ctx.perform(ReadGlobalCounter())
        check_equal(5, count, "global counter")

        # ------ account
        account = ctx.new_guid()
        missing = [
            await expect_not_found(ctx, ReadBalance(account_id=account), "read"),
            await expect_not_found(ctx, TryWithdraw(account_id=account, amount=2), "withdraw"),
            await expect_discipline_error(ctx, account, "unlocked existence check"),
        ]
        created = await ctx.perform(CreateAccount(account_id=account))
        missing.append(await expect_discipline_error(ctx, account, "existence check after"))
        balance = await ctx.perform(ReadBalance(account_id=account))
        check_equal(11, balance, "balance read outside the lock")

        withdrawals: list[bool] = await ctx.all(
            *(ctx.perform(TryWithdraw(account_id=account, amount=2)) for _ in range(10))
        )
        check_equal(5, withdrawals.count(True), "successful withdrawals")
        final = await ctx.perform(ReadBalance(account_id=account))
        check_equal(1, final, "final balance")
        return {
            "global_count": count,
            "errors": missing,
            "create_account": created,
            "balance_after_create": balance,
            "withdrawals": withdrawals,
            "final_balance": final,
        }
