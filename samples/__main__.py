"""``python -m samples``: run every sample on the emulator and show what it did."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from hosts.emulator import Emulator
from samples import startup_result
from samples.bank import app as bank
from samples.blob_backup import app as blob_backup
from samples.counter import app as counter
from samples.hello import app as hello
from samples.pingpong import app as pingpong


def run_hello() -> list[str]:
    hello.app.configure(hello.HelloConfig(repetitions=100))
    em = Emulator(hello.app, partitions=4)
    results = startup_result(em, hello.HelloStartup)
    return [
        f"HelloStartup returned {len(results)} results: {sorted(set(results))}",
        f"'Hello World was called' was logged {em.app_lines().count('Hello World was called')}"
        " times",
        f"client.perform(Hello()) -> {em.client().perform(hello.Hello())!r}",
    ]


def run_counter() -> list[str]:
    em = Emulator(counter.app, partitions=4)
    client = em.client()
    by_client = [client.perform(counter.Increment(counter=1)) for _ in range(3)]
    by_orchestration = client.perform(counter.IncrementMany(counter=1, times=5, parallel=True))
    for _ in range(7):
        client.fork(counter.Incremented(counter=2))
    em.run()
    return [
        f"counter 1: 3 increments from the client -> {by_client}",
        f"counter 1: 5 parallel increments in an orchestration -> {by_orchestration}",
        f"counter 1 reads {client.perform(counter.Count(counter=1))}; event counter 2 reads "
        f"{client.perform(counter.EventCount(counter=2))} after 7 forked Incremented events",
    ]


def run_bank() -> list[str]:
    em = Emulator(bank.app, partitions=4)
    users = startup_result(em, bank.OpenDemoAccounts)
    client = em.client()
    alice, bob = users["alice"][0], users["bob"][0]
    client.perform(bank.Deposit(account=alice, amount=100))
    moved = [
        client.perform(bank.Transfer(src=alice, dst=bob, amount=30)),
        client.perform(bank.Transfer(src=bob, dst=alice, amount=50)),
    ]
    try:
        client.perform(bank.SignUp(user="alice", name="Alice", checking="x", savings="y"))
        again = "succeeded (it should not have)"
    except bank.SignUpError as exc:
        again = f"SignUpError: {exc}"
    approval = client.start(bank.ApprovedTransfer(src=alice, dst=bob, amount=20))
    while em.step():  # runs until it waits for the decision (its timer left pending)
        pass
    waiting = client.status(approval)
    client.raise_event(approval, "decision", "approved")
    approved = client.wait(approval)
    balances = {a: client.perform(bank.Balance(account=a)) for a in (alice, bob)}
    return [
        *(f"signed up {user} with accounts {', '.join(a)}" for user, a in users.items()),
        f"deposit 100 to {alice}; transfer 30 to {bob} -> {moved[0]}; "
        f"transfer 50 back -> {moved[1]}",
        f"an approved transfer of 20: "
        f"{waiting.custom_status if waiting else None!r}, then approved -> {approved!r}",
        f"balances: {balances}",
        f"signing up alice again -> {again}",
    ]


def run_pingpong() -> list[str]:
    em = Emulator(pingpong.app, partitions=2)
    em.run()
    client = em.client()
    return [
        f"server (partition 1) counted {client.perform(pingpong.ReadPings())} pings, client "
        f"(partition 0) counted {client.perform(pingpong.ReadPongs())} pongs, "
        f"{em.deliveries} messages delivered, then quiescent"
    ]


def run_blob_backup() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        source, destination = Path(tmp, "container"), Path(tmp, "backup")
        for i in range(8):
            blob = source / f"folder{i % 2}" / f"blob{i}.txt"
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_text("blob " * (100 * (i + 1)))
        blob_backup.app.configure(
            blob_backup.BackupConfig(source=str(source), destination=str(destination))
        )
        total = Emulator(blob_backup.app, partitions=4).client().perform(blob_backup.Backup())
        copied = sum(1 for p in destination.rglob("*") if p.is_file())
    return [f"copied {copied} blobs from container/ to backup/: {total} bytes"]


SAMPLES: dict[str, Callable[[], list[str]]] = {
    "hello": run_hello,
    "counter": run_counter,
    "bank": run_bank,
    "pingpong": run_pingpong,
    "blob_backup": run_blob_backup,
}


def main() -> None:
    for name, sample in SAMPLES.items():
        started = time.perf_counter()
        lines = sample()
        print(f"== {name} ({time.perf_counter() - started:.2f} s)")
        for line in lines:
            print(f"   {line}")


if __name__ == "__main__":
    main()
