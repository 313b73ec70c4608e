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
