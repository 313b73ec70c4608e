"""Large inputs from a file or standard input, and --version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.cli.test_cli import ROOT, reactive

GREET = "tests.cli.greet_app"


def test_input_from_a_file(tmp_path: Path) -> None:
    data = tmp_path / "in.json"
    data.write_text('{"name": "' + "A" * 100_000 + '"}')
    done = reactive("start", GREET, "Greet", "--input", f"@{data}", "--wait", "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == '"Hello, ' + "A" * 100_000 + '."\n'


def test_input_from_stdin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "reactive", "start", GREET, "Greet", "--input", "-", "--wait",
         "-q"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), input='{"name": "Bo"}',
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == '"Hello, Bo."\n'


def test_a_missing_input_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    done = reactive("start", GREET, "Greet", "--input", f"@{tmp_path}/nope.json")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"reactive: error: --input @{tmp_path}/nope.json: cannot read the file "
        "(No such file or directory)"
    ]


def test_version() -> None:
    done = reactive("--version")
    assert done.returncode == 0 and done.stdout.startswith("reactive 0.")


def test_run_summary_as_json_names_what_a_stuck_instance_waits_for() -> None:
    import json

    done = reactive("run", "tests.cli.troubled_app", "--json")
    assert done.returncode == 1
    summary = json.loads(done.stdout)
    rows = {row["instance_id"]: row for row in summary["instances"]}
    assert rows["startup-2-Approval"]["status"] == "running"
    assert rows["startup-2-Approval"]["waits"] == ["event 'approved'"]
    assert rows["startup-0-Billing"]["error"]["where"].startswith("tests/cli/troubled_app.py:")
    assert len(summary["unhandled"]) == 1
    assert "charging too much" in done.stderr  # log lines keep stdout for the JSON


def test_max_time_ends_a_run_of_an_eternal_orchestration(tmp_path: Path) -> None:
    app = tmp_path / "eternal.py"
    app.write_text(
        "from reactive import App, Orchestration, OrchestrationContext\n"
        "app = App('eternal')\n"
        "class Monitor(Orchestration[None], startup=True):\n"
        "    async def execute(self, ctx: OrchestrationContext) -> None:\n"
        "        while True:\n"
        "            await ctx.sleep(60)\n"
        "app.register(Monitor)\n"
    )
    done = reactive("run", str(app), "--max-time", "3600")
    assert done.returncode == 0, done.stderr
    assert "== summary (stopped at --max-time) ==" in done.stdout
    assert "startup-0-Monitor  Monitor  running    waits for timer due at" in done.stdout
