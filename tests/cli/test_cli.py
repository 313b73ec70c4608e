"""The ``reactive`` command line, run in a subprocess like a user would run it."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from hosts.cli import progress as cli
from hosts.emulator import Emulator
from tests.cli import greet_app

ROOT = Path(__file__).resolve().parents[2]
GREET = "tests.cli.greet_app"
TROUBLED = "tests.cli.troubled_app"
TEAM_RESULT = '["Hello, Ada.", "Hello, Grace."]'


def reactive(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "reactive", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def summary_row(stdout: str, instance_id: str) -> list[str]:
    """The summary line of one instance, split into id, name, status and detail."""
    summary = stdout.split("== summary ==", 1)[1]
    for line in summary.splitlines():
        if line.startswith(instance_id + " "):
            return line.split(None, 3)
    raise AssertionError(f"no summary line for {instance_id} in:\n{stdout}")


# -- run ------------------------------------------------------------------------------------


def test_run_prints_log_lines_then_a_summary() -> None:
    proc = reactive("run", f"{GREET}:app")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    logs, summary = proc.stdout.split("== summary ==")
    lines = logs.strip().splitlines()
    assert lines[0] == "greeting the team"
    assert sorted(lines[1:]) == ["greeted Ada", "greeted Grace"]
    assert summary_row(proc.stdout, "startup-0-GreetTeam") == [
        "startup-0-GreetTeam",
        "GreetTeam",
        "completed",
        TEAM_RESULT,
    ]
    assert "2 activity runs, 0 unhandled errors" in summary
    assert " deliveries, " in summary


def test_run_finds_the_only_app_without_its_name() -> None:
    proc = reactive("run", GREET)
    assert proc.returncode == 0, proc.stderr
    assert summary_row(proc.stdout, "startup-0-GreetTeam")[3] == TEAM_RESULT


def test_run_accepts_a_file_path() -> None:
    proc = reactive("run", "tests/cli/greet_app.py:app", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert summary_row(proc.stdout, "startup-0-GreetTeam")[3] == TEAM_RESULT


def test_run_quiet_prints_only_the_summary() -> None:
    proc = reactive("run", GREET, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.lstrip().startswith("== summary ==")
    assert "greeted" not in proc.stdout


@pytest.mark.parametrize(
    "options",
    [
        ["--partitions", "1"],
        ["--partitions", "7", "--seed", "5"],
        ["--faults", "--seed", "3"],
        ["--faults", "--seed", "4", "--partitions", "2"],
        ["--clock", "real"],
    ],
)
def test_run_options_do_not_change_results(options: list[str]) -> None:
    proc = reactive("run", GREET, "--quiet", *options)
    assert proc.returncode == 0, proc.stderr
    assert summary_row(proc.stdout, "startup-0-GreetTeam")[2:] == ["completed", TEAM_RESULT]
    if "--faults" in options:
        assert "restore" in proc.stdout and "dropped" in proc.stdout


def test_run_reports_failures_unhandled_errors_and_unfinished_instances() -> None:
    proc = reactive("run", TROUBLED)
    assert proc.returncode == 1
    out = proc.stdout
    assert "WARNING: charging too much" in out
    assert (
        "unhandled error: forked activity Charge: QuotaExceeded: 1000 is over the quota of 100"
        in out
    )
    assert summary_row(out, "startup-0-Billing") == [
        "startup-0-Billing",
        "Billing",
        "failed",
        "QuotaExceeded: 500 is over the quota of 100",
    ]
    assert summary_row(out, "startup-1-Background")[2:] == ["completed", "null"]
    assert summary_row(out, "startup-2-Approval") == [
        "startup-2-Approval", "Approval", "running", "waits for event 'approved'"
    ]
    assert "1 unhandled error" in out.split("== summary ==")[1]
    assert proc.stderr.splitlines() == [
        "Billing failed: QuotaExceeded: 500 is over the quota of 100",
        "Approval (startup-2-Approval) is stuck: waits for event 'approved'",
        "1 unhandled error during the run",
    ]


def test_run_quiet_lists_unhandled_errors_in_the_summary() -> None:
    proc = reactive("run", TROUBLED, "-q")
    assert proc.returncode == 1
    assert "charging too much" not in proc.stdout
    summary = proc.stdout.split("== summary ==")[1]
    assert "unhandled error: forked activity Charge: QuotaExceeded" in summary


# -- start ----------------------------------------------------------------------------------


def test_start_wait_prints_the_result_as_json() -> None:
    proc = reactive(
        "start", GREET, "Greet", "--input", '{"name": "Bob", "excited": true}', "--wait"
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == "Hello, Bob!"
    # application log lines go to stderr, after the startup orchestration's
    assert proc.stderr.splitlines()[0] == "greeting the team"
    assert "greeted Bob" in proc.stderr.splitlines()


def test_start_wait_with_default_input() -> None:
    proc = reactive("start", GREET, "GreetTeam", "--wait", "--quiet", "--id", "again")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == ["Hello, Ada.", "Hello, Grace."]
    assert proc.stderr == ""


def test_start_without_wait_prints_id_and_status() -> None:
    proc = reactive("start", GREET, "Greet", "--input", '{"name": "Eve"}', "--id", "g-1", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "g-1 completed\n"


def test_start_without_id_picks_one() -> None:
    proc = reactive("start", GREET, "Greet", "--input", '{"name": "Eve"}', "-q")
    assert proc.returncode == 0, proc.stderr
    instance_id, status = proc.stdout.split()
    assert status == "completed" and len(instance_id) >= 8


@pytest.mark.parametrize("wait", [True, False])
def test_start_reports_a_failed_orchestration(wait: bool) -> None:
    args = ["start", GREET, "Greet", "--input", '{"name": "  "}', "--id", "blank", "-q"]
    proc = reactive(*args, *(["--wait"] if wait else []))
    assert proc.returncode == 1
    assert proc.stderr == "Greet failed: ValueError: name must not be blank\n"
    assert proc.stdout == ("" if wait else "blank failed\n")


def test_start_reports_an_unregistered_error_by_its_type() -> None:
    proc = reactive("start", TROUBLED, "Billing", "--id", "b", "--wait", "-q")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[-1] == (
        "Billing failed: QuotaExceeded: 500 is over the quota of 100"
    )


def test_start_wait_on_an_instance_that_cannot_finish() -> None:
    proc = reactive("start", TROUBLED, "Approval", "--id", "a", "--wait", "-q")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert lines[-1].startswith("reactive: error: Approval (a) is still running")
    assert "Traceback" not in proc.stderr


def test_start_refuses_an_instance_id_in_use() -> None:
    proc = reactive(
        "start", GREET, "Greet", "--input", '{"name": "x"}', "--id", "startup-0-GreetTeam", "-q"
    )
    assert proc.returncode == 2
    assert proc.stderr == (
        "reactive: error: instance id 'startup-0-GreetTeam' is taken by GreetTeam\n"
    )


# -- list -----------------------------------------------------------------------------------


def test_list_shows_operations_by_kind() -> None:
    proc = reactive("list", GREET)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "application 'greetings'",
        "orchestrations:",
        "  Greet(name: str, excited: bool = False) -> str",
        "  GreetTeam() -> list[str]  [startup]",
        "activities:",
        "  Compose(name: str, punctuation: str) -> str",
        "reads:",
        "  GreetingCount(person: str) -> int  [state Greetings]",
        "events:",
        "  Greeted(person: str, text: str)",
        "states:",
        "  Greetings[PersonKey](count: int = 0)  [subscribes to Greeted]",
    ]


def test_list_matches_the_compiled_schema() -> None:
    """Every operation the application registered is listed, and nothing built in."""
    proc = reactive("list", GREET)
    schema = greet_app.app.compile()
    listed = {line.split("(")[0].strip() for line in proc.stdout.splitlines() if "(" in line}
    names = {i.name for i in schema.operations.values() if i.cls.__module__ == GREET}
    assert names <= listed
    assert "ClientPerform" not in proc.stdout and "ScheduledFork" not in proc.stdout


def test_list_of_an_empty_app() -> None:
    proc = reactive("list", "tests.cli.two_apps:second")
    assert proc.returncode == 0
    assert proc.stdout == "application 'second'\nno operations registered\n"


# -- one-line errors ------------------------------------------------------------------------

ERRORS = {
    "module not importable": (
        ["run", "tests.cli.no_such_module"],
        "cannot import module 'tests.cli.no_such_module': "
        "no module named 'tests.cli.no_such_module'",
    ),
    "missing file": (
        ["run", "tests/cli/missing.py"],
        "cannot import tests/cli/missing.py: no such file",
    ),
    "module fails to import": (
        ["list", "tests.cli.broken_app"],
        "importing 'tests.cli.broken_app' failed: DefinitionError: partitioned affinity "
        "TwoKeys must declare exactly one key field, found 2: ['first', 'second']",
    ),
    "no App in module": (
        ["run", "tests.cli"],
        "no App found in module 'tests.cli' (define e.g. app = App('name'))",
    ),
    "several Apps": (
        ["list", "tests.cli.two_apps"],
        "module 'tests.cli.two_apps' defines several Apps (first, second); "
        "name one, e.g. tests.cli.two_apps:first",
    ),
    "no such attribute": (
        ["run", f"{GREET}:application"],
        f"module '{GREET}' has no attribute 'application'; it defines app",
    ),
    "attribute is not an App": (
        ["run", f"{GREET}:Greet"],
        f"{GREET}:Greet is a class, not a reactive App",
    ),
    "unknown orchestration": (
        ["start", GREET, "Gret"],
        "application 'greetings' has no orchestration named 'Gret'; "
        "did you mean Greet or GreetTeam?",
    ),
    "unknown orchestration, wrong case": (
        ["start", GREET, "greetteam"],
        "application 'greetings' has no orchestration named 'greetteam'; "
        "did you mean GreetTeam or Greet?",
    ),
    "unknown orchestration, nothing close": (
        ["start", GREET, "Shutdown"],
        "application 'greetings' has no orchestration named 'Shutdown'; "
        "it defines Greet, GreetTeam",
    ),
    "not an orchestration": (
        ["start", GREET, "Compose"],
        "Compose is an activity, not an orchestration",
    ),
    "invalid JSON": (
        ["start", GREET, "Greet", "--input", "{name: 1}"],
        "--input is not valid JSON: Expecting property name enclosed in double quotes "
        "(line 1, column 2)",
    ),
    "JSON not an object": (
        ["start", GREET, "Greet", "--input", '["Bob"]'],
        "--input must be a JSON object of Greet's fields, got list",
    ),
    "missing field": (
        ["start", GREET, "Greet", "--input", "{}"],
        "invalid input for Greet: name: Field required",
    ),
    "wrong type": (
        ["start", GREET, "Greet", "--input", '{"name": "Bob", "excited": "very"}'],
        "invalid input for Greet: excited: "
        "Input should be a valid boolean, unable to interpret input",
    ),
    "unknown field, and more": (
        ["start", GREET, "Greet", "--input", '{"nick": "B", "name": 3}'],
        "invalid input for Greet: name: Input should be a valid string (and 1 more error)",
    ),
}


@pytest.mark.parametrize("case", list(ERRORS), ids=list(ERRORS))
def test_usage_errors_are_one_line(case: str) -> None:
    args, message = ERRORS[case]
    proc = reactive(*args)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == f"reactive: error: {message}\n"


def test_bad_option_values_are_rejected_by_argparse() -> None:
    proc = reactive("run", GREET, "--partitions", "0")
    assert proc.returncode == 2
    assert "argument --partitions: must be at least 1, got 0" in proc.stderr


def test_help() -> None:
    proc = reactive("--help")
    assert proc.returncode == 0
    assert proc.stdout.startswith("usage: reactive ")
    for command in ("run", "start", "list"):
        assert f"\n    {command} " in proc.stdout


# -- progress -------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _busy_emulator() -> Emulator:
    emulator = Emulator(greet_app.app, partitions=2)
    emulator.run()
    return emulator


def test_progress_on_a_terminal_is_one_updating_line() -> None:
    stream = _Terminal()
    progress = cli.Progress(stream)
    emulator = _busy_emulator()
    progress(emulator)
    assert stream.getvalue().startswith("\r\x1b[K")
    assert f"{emulator.deliveries:,} deliveries" in stream.getvalue()
    assert "messages/s, 0 live orchestrations" in stream.getvalue()
    finished = sum(len(part.completed) for part in emulator.parts)
    assert finished > 0 and f"{finished:,}/{finished:,} instances finished" in stream.getvalue()
    assert "\n" not in stream.getvalue()
    progress.clear()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_progress_elsewhere_is_a_line_every_two_seconds_at_most() -> None:
    stream = io.StringIO()
    progress = cli.Progress(stream)
    emulator = _busy_emulator()
    progress(emulator)
    assert stream.getvalue() == ""  # not yet two seconds into the run
    progress._last_drawn -= cli.PROGRESS_LINE_INTERVAL
    progress(emulator)
    progress(emulator)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("live orchestrations")
    assert "\r" not in stream.getvalue()


def test_progress_line_on_a_real_terminal() -> None:
    pty = pytest.importorskip("pty")
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    args = ["start", TROUBLED, "Busy", "--input", '{"steps": 3000}', "--wait", "-q"]
    with subprocess.Popen(
        [sys.executable, "-m", "reactive", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=slave,
        text=True,
    ) as proc:
        os.close(slave)
        seen = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        stdout, _ = proc.communicate(timeout=120)
    os.close(master)
    assert proc.returncode == 0
    assert json.loads(stdout) == sum(i % 100 for i in range(3000))
    assert re.match(rb"\r\x1b\[K\d+/\d+ instances finished, 1,000 deliveries, ", seen)
    assert seen.endswith(b"\r\x1b[K")  # the line is cleared before the result is printed
