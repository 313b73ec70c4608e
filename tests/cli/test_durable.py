"""Durable mode (``--state DIR``) as users run it, in subprocesses: the failures the
first folder host had, each reproduced and held."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from hosts.local import FolderState, LocalHost
from tests.cli import greet_app
from tests.cli.test_cli import reactive

GREET = "tests.cli.greet_app"
TROUBLED = "tests.cli.troubled_app"


def test_each_start_gets_its_own_instance(tmp_path: Path) -> None:
    """Ids came from a seeded generator: every process made the same "random" id, and a
    second start printed the first one's result."""
    state = str(tmp_path / "s")
    results = []
    for name in ("Ada", "Grace", "Edsger"):
        done = reactive("start", GREET, "Greet", "--input", json.dumps({"name": name}),
                        "--state", state, "--wait", "--quiet")
        assert done.returncode == 0, done.stderr
        results.append(json.loads(done.stdout))
    assert results == ["Hello, Ada.", "Hello, Grace.", "Hello, Edsger."]


def test_a_rerun_with_the_same_id_prints_the_result(tmp_path: Path) -> None:
    state = str(tmp_path / "s")
    args = ("start", GREET, "Greet", "--input", '{"name": "Ada"}', "--id", "job1",
            "--state", state, "--wait", "--quiet")
    first, again = reactive(*args), reactive(*args)
    assert first.returncode == again.returncode == 0, again.stderr
    assert first.stdout == again.stdout == '"Hello, Ada."\n'


def test_a_taken_id_of_another_orchestration_is_one_line_and_exit_2(tmp_path: Path) -> None:
    state = str(tmp_path / "s")
    assert reactive("start", GREET, "Greet", "--input", '{"name": "Ada"}', "--id", "job1",
                    "--state", state, "--wait").returncode == 0
    other = reactive("start", GREET, "GreetTeam", "--id", "job1", "--state", state, "--wait")
    assert other.returncode == 2
    assert other.stderr.strip().splitlines() == [
        "reactive: error: instance id 'job1' is taken by a Greet instance, not GreetTeam"
    ]


def test_a_second_process_on_a_folder_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "s"
    holder = LocalHost(greet_app.app, state_dir=state)
    try:
        second = reactive("run", GREET, "--state", str(state))
    finally:
        holder.close()
    assert second.returncode == 2
    line = second.stderr.strip()
    assert "\n" not in line and "is in use by process" in line, line
    assert reactive("run", GREET, "--state", str(state), "--quiet").returncode == 0


def test_the_partition_count_is_recorded(tmp_path: Path) -> None:
    state = str(tmp_path / "s")
    assert reactive("run", GREET, "--state", state, "--quiet").returncode == 0
    for count in ("8", "2"):
        wrong = reactive("run", GREET, "--state", state, "--partitions", count)
        assert wrong.returncode == 2
        assert wrong.stderr.strip() == (
            f"reactive: error: state folder {state} has 4 partitions, not {count}; leave "
            "--partitions out (or give 4), or use a new folder"
        )


def test_saved_output_is_emitted_once_across_clean_restarts(tmp_path: Path) -> None:
    """Log lines, unhandled errors and dead letters came out again on every restart, and
    an old unhandled error made every later run exit 1."""
    state = tmp_path / "s"
    first = reactive("run", TROUBLED, "--state", str(state))
    assert first.returncode == 1
    assert first.stdout.count("charging too much") == 1
    assert first.stdout.count("unhandled error:") == 1  # printed once, as it happened
    folder = FolderState(state, "troubled")
    folder.append_raw(0, b"poison")
    folder.close()
    printed = ""
    for _ in range(3):
        again = reactive("run", TROUBLED, "--state", str(state))
        assert "charging too much" not in again.stdout
        assert "unhandled error:" not in again.stdout + again.stderr
        assert "0 unhandled errors" in again.stdout
        assert again.returncode == 1  # Billing failed: that is still its status
        printed += again.stderr
    assert printed.count("dead letter: partition 0: not JSON") == 1
    folder = FolderState(state, "troubled", driver=False)
    assert len(folder.dead_letters()) == 1
    folder.close()


def test_logs_are_trimmed_and_fsync_is_on(tmp_path: Path) -> None:
    state = tmp_path / "s"
    assert reactive("run", GREET, "--state", str(state), "--quiet").returncode == 0
    db = sqlite3.connect(state / "state.db")
    try:
        assert db.execute("SELECT COUNT(*) FROM inbox").fetchone()[0] == 0
    finally:
        db.close()
    folder = FolderState(state, "greetings", driver=False)
    try:
        assert folder._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        folder.close()


def test_a_folder_of_another_app_or_an_old_format_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "s"
    assert reactive("run", GREET, "--state", str(state), "--quiet").returncode == 0
    other = reactive("run", TROUBLED, "--state", str(state))
    assert other.returncode == 2
    assert "holds application 'greetings', not 'troubled'" in other.stderr
    old = tmp_path / "old"
    old.mkdir()
    (old / "inbox-0.log").write_text("1.0\t{}\n")
    refused = reactive("run", GREET, "--state", str(old))
    assert refused.returncode == 2 and "older version" in refused.stderr


def test_long_runs_commit_as_they_go(tmp_path: Path) -> None:
    """The first folder host committed only when everything was idle: a long orchestration
    showed no progress, and a crash reran all of it. With a time budget, an invocation
    commits after it: the instance is visibly running with its work saved."""
    host = LocalHost(greet_app.app, state_dir=tmp_path / "s", time_budget=0.0)
    try:
        client = host.client()
        iid = client.start(greet_app.GreetTeam())
        host.invoke(host.schema.instance_owner(iid, host.count))
        status = FolderState(tmp_path / "s", "greetings", driver=False)
        try:
            record = status.get(iid)
            assert record is not None and record.status == "running"
        finally:
            status.close()
    finally:
        host.close()
