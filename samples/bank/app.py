"""A bank. Users and accounts are keyed states on different keys; ``SignUp`` creates a user
and two accounts atomically with one event, and ``Transfer`` moves money between accounts
while holding both locks, so concurrent transfers never lose money or overdraw;
``ApprovedTransfer`` waits for someone's decision (an external event) before it moves any."""

from __future__ import annotations

from datetime import datetime

from reactive import (
    Affinity,
    App,
    Event,
    Orchestration,
    OrchestrationContext,
    Read,
    ReadContext,
    State,
    SubscriptionContext,
    Update,
    UpdateContext,
    subscribe,
)

app = App("bank")


class UserKey(Affinity):
    user: str


class AccountKey(Affinity):
    account: str


@app.register
class SignUpError(Exception):
    """The user id or one of the account ids is already taken."""


class UserSignedUp(UserKey, Event):
    """Creates the user (at its key) and both of its accounts (the keys it names)."""

    name: str
    accounts: list[str]
    created: datetime

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=a) for a in self.accounts]


@app.register
class UserState(State[UserKey]):
    name: str = ""
    accounts: list[str] = []
    created: datetime | None = None

    @subscribe(UserSignedUp)
    def on_signed_up(self, ctx: SubscriptionContext, event: UserSignedUp) -> None:
        self.name, self.accounts, self.created = event.name, event.accounts, event.created


@app.register
class AccountState(State[AccountKey]):
    owner: str = ""
    balance: int = 0

    @subscribe(UserSignedUp)
    def on_signed_up(self, ctx: SubscriptionContext, event: UserSignedUp) -> None:
        self.owner, self.balance = event.user, 0


@app.register
class GetUser(UserKey, Read[UserState, UserState]):
    def execute(self, ctx: ReadContext[UserState]) -> UserState:
        return ctx.state


@app.register
class GetAccount(AccountKey, Read[AccountState, AccountState]):
    def execute(self, ctx: ReadContext[AccountState]) -> AccountState:
        return ctx.state


@app.register
class Balance(AccountKey, Read[AccountState, int]):
    def execute(self, ctx: ReadContext[AccountState]) -> int:
        return ctx.state.balance


@app.register
class Deposit(AccountKey, Update[AccountState, int]):
    amount: int

    def execute(self, ctx: UpdateContext[AccountState]) -> int:
        if self.amount < 0:
            raise ValueError(f"cannot deposit a negative amount ({self.amount})")
        ctx.state.balance += self.amount
        return ctx.state.balance


@app.register
class Withdraw(AccountKey, Update[AccountState, int]):
    amount: int

    def execute(self, ctx: UpdateContext[AccountState]) -> int:
        if not 0 <= self.amount <= ctx.state.balance:
            raise ValueError(f"cannot withdraw {self.amount} from {ctx.state.balance}")
        ctx.state.balance -= self.amount
        return ctx.state.balance


@app.register
class SignUp(UserKey, Orchestration[datetime], lock=True):
    """Creates a user with a checking and a savings account; returns the sign-up time."""

    name: str
    checking: str
    savings: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.checking), AccountKey(account=self.savings)]

    async def execute(self, ctx: OrchestrationContext) -> datetime:
        taken = await ctx.all(
            ctx.state_exists(UserState, UserKey(user=self.user)),
            ctx.state_exists(AccountState, AccountKey(account=self.checking)),
            ctx.state_exists(AccountState, AccountKey(account=self.savings)),
        )
        now = ctx.now()
        if any(taken) or self.checking == self.savings:
            raise SignUpError(f"cannot sign up {self.user!r}: an id is already taken")
        accounts = [self.checking, self.savings]
        await ctx.perform(
            UserSignedUp(user=self.user, name=self.name, accounts=accounts, created=now)
        )
        ctx.log.info("signed up %s with accounts %s", self.user, accounts)
        return now


@app.register
class Transfer(Orchestration[bool], lock=True):
    """Moves ``amount`` from ``src`` to ``dst``; False if ``src`` has too little."""

    src: str
    dst: str
    amount: int

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.src), AccountKey(account=self.dst)]

    async def execute(self, ctx: OrchestrationContext) -> bool:
        if await ctx.perform(Balance(account=self.src)) < self.amount:
            return False
        await ctx.perform(Withdraw(account=self.src, amount=self.amount))
        await ctx.perform(Deposit(account=self.dst, amount=self.amount))
        return True


@app.register
class ApprovedTransfer(Orchestration[str]):
    """A transfer that waits for a decision, the event ``decision``: ``"approved"`` runs it
    as a :class:`Transfer`, any other value rejects it, and no decision within ``timeout``
    seconds lets it expire. Returns what happened."""

    src: str
    dst: str
    amount: int
    timeout: float = 24 * 3600

    async def execute(self, ctx: OrchestrationContext) -> str:
        ctx.set_custom_status("waiting for a decision")
        decision = ctx.wait_for_event("decision")
        deadline = ctx.sleep(self.timeout)
        if await ctx.any(decision, deadline) is deadline:
            return "expired"
        if decision.result() != "approved":
            return f"rejected: {decision.result()}"
        ctx.set_custom_status("approved")
        moved = await ctx.perform(Transfer(src=self.src, dst=self.dst, amount=self.amount))
        return "transferred" if moved else "approved, but the source has too little"


@app.register
class BalanceInquiry(UserKey, Orchestration[int], lock=True):
    """The balance of one of the user's accounts."""

    account: str

    def affinities(self) -> list[Affinity]:
        return [AccountKey(account=self.account)]

    async def execute(self, ctx: OrchestrationContext) -> int:
        user = await ctx.perform(GetUser(user=self.user))
        if self.account not in user.accounts:
            raise PermissionError(f"{self.account} does not belong to {self.user}")
        return await ctx.perform(Balance(account=self.account))


@app.register
class OpenDemoAccounts(Orchestration[dict[str, list[str]]], startup=True):
    """Signs up two users when the bank first starts; returns their account ids."""

    async def execute(self, ctx: OrchestrationContext) -> dict[str, list[str]]:
        users = {
            name: [f"{name}-{kind}-{ctx.new_guid().hex[:8]}" for kind in ("checking", "savings")]
            for name in ("alice", "bob")
        }
        await ctx.all(
            *(
                ctx.perform(SignUp(user=user, name=user.title(), checking=a, savings=b))
                for user, (a, b) in users.items()
            )
        )
        return users
