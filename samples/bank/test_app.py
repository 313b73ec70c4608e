from __future__ import annotations

import random
from datetime import datetime

import pytest

from hosts.emulator import Emulator, EmulatorClient, Faults
from reactive import StateNotFoundError
from samples import startup_result
from samples.bank.app import (
    ApprovedTransfer,
    Balance,
    BalanceInquiry,
    Deposit,
    GetAccount,
    GetUser,
    OpenDemoAccounts,
    SignUp,
    SignUpError,
    Transfer,
    app,
)

USERS = ["ann", "ben", "cat", "dan"]
ACCOUNTS = [f"{u}-{i}" for u in USERS for i in (1, 2)]
INITIAL = 100
TRANSFERS = 150


def sign_up(client: EmulatorClient, user: str, checking: str, savings: str) -> datetime:
    signup = SignUp(user=user, name=user.title(), checking=checking, savings=savings)
    result: datetime = client.perform(signup)
    return result


def test_startup_signs_up_two_users() -> None:
    em = Emulator(app, partitions=4)
    users = startup_result(em, OpenDemoAccounts)
    client = em.client()
    assert sorted(users) == ["alice", "bob"]
    for user, accounts in users.items():
        assert client.perform(GetUser(user=user)).accounts == accounts
        for account in accounts:
            assert client.perform(GetAccount(account=account)).owner == user
    assert len({a for accounts in users.values() for a in accounts}) == 4


def test_sign_up_creates_user_and_two_empty_accounts() -> None:
    em = Emulator(app, partitions=4)
    em.run()
    client = em.client()
    with pytest.raises(StateNotFoundError):
        client.perform(GetUser(user="ann"))
    created = sign_up(client, "ann", "ann-1", "ann-2")
    user = client.perform(GetUser(user="ann"))
    assert (user.name, user.accounts, user.created) == ("Ann", ["ann-1", "ann-2"], created)
    for account in ("ann-1", "ann-2"):
        state = client.perform(GetAccount(account=account))
        assert (state.owner, state.balance) == ("ann", 0)
    assert client.perform(BalanceInquiry(user="ann", account="ann-2")) == 0
    with pytest.raises(PermissionError):
        client.perform(BalanceInquiry(user="ann", account="nobody-1"))


@pytest.mark.parametrize(
    ("user", "checking", "savings"),
    [
        ("ann", "new-1", "new-2"),  # the user exists
        ("eve", "ann-1", "new-2"),  # the checking account exists
        ("eve", "new-1", "ann-2"),  # the savings account exists
        ("eve", "new-1", "new-1"),  # the same account twice
    ],
)
def test_sign_up_with_a_taken_id_fails_and_creates_nothing(
    user: str, checking: str, savings: str
) -> None:
    em = Emulator(app, partitions=4)
    client = em.client()
    sign_up(client, "ann", "ann-1", "ann-2")
    client.perform(Deposit(account="ann-1", amount=5))
    with pytest.raises(SignUpError):
        sign_up(client, user, checking, savings)
    with pytest.raises(StateNotFoundError):
        client.perform(GetUser(user="eve"))
    for account in ("new-1", "new-2"):
        with pytest.raises(StateNotFoundError):
            client.perform(Balance(account=account))
    assert client.perform(GetUser(user="ann")).accounts == ["ann-1", "ann-2"]
    assert client.perform(GetAccount(account="ann-1")).model_dump() == {
        "owner": "ann",
        "balance": 5,
    }


def test_transfer_to_the_same_account() -> None:
    client = Emulator(app, partitions=4).client()
    sign_up(client, "ann", "ann-1", "ann-2")
    client.perform(Deposit(account="ann-1", amount=10))
    assert client.perform(Transfer(src="ann-1", dst="ann-1", amount=7)) is True
    assert client.perform(Transfer(src="ann-1", dst="ann-1", amount=11)) is False
    assert client.perform(Balance(account="ann-1")) == 10


def test_transfer_with_insufficient_funds_changes_nothing() -> None:
    client = Emulator(app, partitions=4).client()
    sign_up(client, "ann", "ann-1", "ann-2")
    client.perform(Deposit(account="ann-1", amount=10))
    assert client.perform(Transfer(src="ann-1", dst="ann-2", amount=4)) is True
    assert client.perform(Transfer(src="ann-1", dst="ann-2", amount=7)) is False
    assert [client.perform(Balance(account=a)) for a in ("ann-1", "ann-2")] == [6, 4]


def run_random_transfers(seed: int, faults: Faults | None = None) -> tuple[dict[str, int], int]:
    """Many concurrent random transfers; the final balances and how many succeeded."""
    em = Emulator(app, partitions=4, seed=seed, faults=faults)
    client = em.client()
    for user in USERS:
        sign_up(client, user, f"{user}-1", f"{user}-2")
    for account in ACCOUNTS:
        client.perform(Deposit(account=account, amount=INITIAL))
    rng = random.Random(seed)
    transfers = [
        Transfer(src=rng.choice(ACCOUNTS), dst=rng.choice(ACCOUNTS), amount=rng.randint(1, 150))
        for _ in range(TRANSFERS)
    ]
    ids = [client.start(t, instance_id=f"transfer-{i}") for i, t in enumerate(transfers)]
    results = [client.wait(i) for i in ids]  # a Withdraw below zero would raise here
    balances = {a: client.perform(Balance(account=a)) for a in ACCOUNTS}
    assert sum(balances.values()) == INITIAL * len(ACCOUNTS)
    assert all(b >= 0 for b in balances.values())
    assert em.unhandled == []
    return balances, sum(results)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_concurrent_transfers_conserve_money(seed: int) -> None:
    balances, succeeded = run_random_transfers(seed)
    assert 0 < succeeded < TRANSFERS  # some moved money, some were refused
    assert balances != dict.fromkeys(ACCOUNTS, INITIAL)


@pytest.mark.parametrize("fault_seed", [1, 2, 3, 4])
def test_concurrent_transfers_conserve_money_under_faults(fault_seed: int) -> None:
    faults = Faults(
        roundtrip=True, restore_probability=0.3, duplicate_probability=0.2, seed=fault_seed
    )
    _, succeeded = run_random_transfers(fault_seed, faults)  # asserts conservation
    assert 0 < succeeded < TRANSFERS


def test_same_seed_same_outcome() -> None:
    assert run_random_transfers(4) == run_random_transfers(4)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("fault_seed", [1, 2, 3])
def test_faults_do_not_change_the_outcome(seed: int, fault_seed: int) -> None:
    expected = run_random_transfers(seed)
    faults = Faults(
        roundtrip=True, restore_probability=0.3, duplicate_probability=0.2, seed=fault_seed
    )
    assert run_random_transfers(seed, faults) == expected


def started_approval(em: Emulator, amount: int) -> tuple[EmulatorClient, str]:
    """ann-1 holds 50; an ApprovedTransfer of ``amount`` to ann-2 waits for its decision."""
    client = em.client()
    sign_up(client, "ann", "ann-1", "ann-2")
    client.perform(Deposit(account="ann-1", amount=50))
    iid = client.start(ApprovedTransfer(src="ann-1", dst="ann-2", amount=amount),
                       instance_id="approval-1")
    while em.step():  # everything but the timer, which only run() fires
        pass
    status = client.status(iid)
    assert status is not None
    assert (status.status, status.custom_status) == ("running", "waiting for a decision")
    return client, iid


@pytest.mark.parametrize(
    ("amount", "decision", "outcome", "balances"),
    [
        (20, "approved", "transferred", [30, 20]),
        (80, "approved", "approved, but the source has too little", [50, 0]),
        (20, "not today", "rejected: not today", [50, 0]),
        (20, None, "expired", [50, 0]),  # nobody decides: the day-long timer fires
    ],
)
def test_an_approved_transfer_waits_for_its_decision(
    amount: int, decision: str | None, outcome: str, balances: list[int]
) -> None:
    em = Emulator(app, partitions=4)
    client, iid = started_approval(em, amount)
    assert [client.perform(Balance(account=a)) for a in ("ann-1", "ann-2")] == [50, 0]
    if decision is not None:
        client.raise_event(iid, "decision", decision)
    assert client.wait(iid) == outcome
    assert [client.perform(Balance(account=a)) for a in ("ann-1", "ann-2")] == balances
