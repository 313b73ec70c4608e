"""The application the kill -9 test runs with ``python -m reactive run ... --state DIR``:
a startup orchestration that does a few hundred counter increments and events, and
transfers whose amounts come from activities, across partitions."""

from __future__ import annotations

from reactive import Activity, ActivityContext, App, Orchestration, OrchestrationContext
from samples.bank.app import (
    AccountState,
    Balance,
    Deposit,
    GetAccount,
    SignUp,
    SignUpError,
    Transfer,
    UserState,
    Withdraw,
)
from samples.counter.app import (
    Count,
    EventCount,
    EventCounter,
    Increment,
    Incremented,
    IncrementMany,
    UpdateCounter,
)

app = App("killapp")
app.register(UserState, AccountState, GetAccount, Balance, Deposit, Withdraw, SignUp, SignUpError)
app.register(Transfer, UpdateCounter, EventCounter, Increment, Count, EventCount, IncrementMany)
app.register(Incremented)

USERS = ("ann", "ben", "cat")
INITIAL = 1_000
COUNTERS = 4
INCREMENTS = 100  # per counter, half of them in parallel
EVENTS = 25  # per counter
TRANSFERS = 60


def checking(user: str) -> str:
    return f"{user}-checking"


def savings(user: str) -> str:
    return f"{user}-savings"


def accounts() -> list[str]:
    return [a for u in USERS for a in (checking(u), savings(u))]


def transfer_plan(i: int) -> tuple[str, str]:
    """Transfer ``i`` goes from a checking account to another user's savings account."""
    src = USERS[i % len(USERS)]
    dst = USERS[(i + 1) % len(USERS)]
    return checking(src), savings(dst)


def amount_of(i: int) -> int:
    return 1 + (i * 7) % 13


@app.register
class PickAmount(Activity[int]):
    """How much transfer ``i`` moves (an activity, so it is recorded once)."""

    i: int

    def execute(self, ctx: ActivityContext) -> int:
        return amount_of(self.i)


@app.register
class Bump(Orchestration[int]):
    counter: int
    times: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        for _ in range(self.times):
            await ctx.perform(Incremented(counter=self.counter))
        return self.times


@app.register
class Payments(Orchestration[int]):
    """Transfers from ``first`` on, every ``step``-th, one after the other."""

    first: int
    step: int

    async def execute(self, ctx: OrchestrationContext) -> int:
        moved = 0
        for i in range(self.first, TRANSFERS, self.step):
            amount = await ctx.perform(PickAmount(i=i))
            src, dst = transfer_plan(i)
            if not await ctx.perform(Transfer(src=src, dst=dst, amount=amount)):
                raise RuntimeError(f"transfer {i} of {amount} from {src} failed")
            moved += amount
        return moved


@app.register
class KillDay(Orchestration[dict[str, int]], startup=True):
    async def execute(self, ctx: OrchestrationContext) -> dict[str, int]:
        await ctx.all(
            *(
                ctx.perform(
                    SignUp(user=u, name=u.title(), checking=checking(u), savings=savings(u))
                )
                for u in USERS
            )
        )
        await ctx.all(*(ctx.perform(Deposit(account=checking(u), amount=INITIAL)) for u in USERS))
        half = INCREMENTS // 2
        results = await ctx.all(
            *(ctx.perform(IncrementMany(counter=c, times=half)) for c in range(COUNTERS)),
            *(
                ctx.perform(IncrementMany(counter=c, times=INCREMENTS - half, parallel=True))
                for c in range(COUNTERS)
            ),
            *(ctx.perform(Bump(counter=c, times=EVENTS)) for c in range(COUNTERS)),
            *(ctx.perform(Payments(first=k, step=3)) for k in range(3)),
        )
        increments = sum(len(r) for r in results[: 2 * COUNTERS])
        events = sum(results[2 * COUNTERS : 3 * COUNTERS])
        moved = sum(results[3 * COUNTERS :])
        await ctx.sleep(0.05)  # a durable timer, on the real clock
        ctx.log.info("kill day done: %d increments, %d events, %d moved", increments, events,
                     moved)
        return {"increments": increments, "events": events, "moved": moved}
