"""kill -9: ``python -m reactive run tests/hostloop/kill_app.py --state DIR`` is killed with
SIGKILL at random moments while it works, several times, then run to completion. Every
effect must have happened exactly once: counters exact, money conserved and the balances
the transfers imply, the startup orchestration completed with the right result."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hosts.local import LocalHost
from samples.bank.app import Balance
from samples.counter.app import Count, EventCount

from . import kill_app as k

ROOT = Path(__file__).resolve().parents[2]
APP = "tests/hostloop/kill_app.py"
INSTANCE = "startup-0-KillDay"
KILLS = 8

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")


def command(state: Path) -> list[str]:
    return [sys.executable, "-m", "reactive", "run", APP, "--state", str(state), "--quiet"]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def logged_bytes(state: Path) -> int:
    return sum(p.stat().st_size for p in state.glob("state.db*"))


def status_in(state: Path) -> str:
    """The startup instance's status as the folder holds it (reads only, runs nothing)."""
    host = LocalHost(k.app, state_dir=state)
    try:
        status = host.client().status(INSTANCE)
        return "none" if status is None else status.status
    finally:
        host.close()


def kill_while_working(state: Path, rng: random.Random) -> bool:
    """Start a run, wait until it has appended to the logs, then SIGKILL it after a short
    random delay. False if the run finished before it could be killed."""
    before = logged_bytes(state) if state.exists() else 0
    proc = subprocess.Popen(
        command(state), cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            if state.exists() and logged_bytes(state) > before:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.12))
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()
        proc.stderr.close()


def expected_balances() -> dict[str, int]:
    balances = {a: 0 for a in k.accounts()}
    for u in k.USERS:
        balances[k.checking(u)] = k.INITIAL
    for i in range(k.TRANSFERS):
        src, dst = k.transfer_plan(i)
        balances[src] -= k.amount_of(i)
        balances[dst] += k.amount_of(i)
    return balances


def test_kill_9_at_random_moments_changes_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    rng = random.Random(9)
    killed_mid_run = 0
    for _ in range(KILLS):
        if not kill_while_working(state, rng):
            break
        if status_in(state) != "completed":
            killed_mid_run += 1
    print(f"{killed_mid_run} of {KILLS} kills landed mid-run")
    assert killed_mid_run >= 3, f"only {killed_mid_run} kills landed before the end"

    done = subprocess.run(
        command(state), cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    expected = {
        "increments": k.COUNTERS * k.INCREMENTS,
        "events": k.COUNTERS * k.EVENTS,
        "moved": sum(k.amount_of(i) for i in range(k.TRANSFERS)),
    }
    rows = [line for line in done.stdout.splitlines() if line.startswith(INSTANCE)]
    assert len(rows) == 1, done.stdout
    name, status, result = rows[0].split(maxsplit=3)[1:]
    assert (name, status) == ("KillDay", "completed"), rows[0]
    assert json.loads(result) == expected

    host = LocalHost(k.app, state_dir=state)
    try:
        client = host.client()
        assert client.status(INSTANCE).result == expected  # type: ignore[union-attr]
        for c in range(k.COUNTERS):
            assert client.perform(Count(counter=c)) == k.INCREMENTS
            assert client.perform(EventCount(counter=c)) == k.EVENTS
        balances = {a: client.perform(Balance(account=a)) for a in k.accounts()}
        assert balances == expected_balances()
        assert sum(balances.values()) == k.INITIAL * len(k.USERS)
        assert host.unhandled == []
    finally:
        host.close()
