"""The command line loads what a command needs when it runs: help and a usage error load
no host, no benchmark and no cloud SDK, so they answer at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.cli.test_cli import ROOT, reactive

HEAVY = ("hosts.bench", "hosts.aws", "hosts.azure", "hosts.http", "hosts.emulator",
         "hosts.local", "boto3", "botocore", "azure", "fastapi", "uvicorn", "httpx")


def loaded_after(*argv: str) -> set[str]:
    """The modules loaded once ``reactive ARGV`` has parsed its arguments (help exits)."""
    code = (
        "import json, sys\n"
        "from hosts.cli import main\n"
        "try:\n"
        f"    main({list(argv)!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    modules: list[str] = json.loads(proc.stderr.strip().splitlines()[-1])
    return set(modules)


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY or m.startswith(HEAVY))


@pytest.mark.parametrize("argv", [
    ("--help",), ("run", "--help"), ("start", "--help"), ("list", "--help"),
    ("serve", "--help"), ("status", "--help"), ("run",),
])
def test_help_and_usage_errors_load_no_host_benchmark_or_cloud_sdk(argv: tuple[str, ...]) -> None:
    assert heavy(loaded_after(*argv)) == []


def test_bench_help_loads_the_benchmark_it_describes() -> None:
    modules = loaded_after("bench", "--help")
    assert "hosts.bench.runner" in modules
    assert not {"boto3", "azure.eventhub"} & modules  # the cloud hosts load when benched


def test_python_dash_m_reactive_help_lists_every_command() -> None:
    proc = reactive("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("run", "start", "bench", "list", "serve", "status", "history",
                    "raise-event", "terminate", "purge", "partitions"):
        assert f"    {command}" in proc.stdout


def test_run_without_an_application_is_a_one_line_usage_error() -> None:
    """``list`` makes MODULE:APP optional (instances need none); ``run`` and ``start``
    still require it instead of failing with a traceback."""
    for command in ("run", "start"):
        proc = reactive(command)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "the following arguments are required: MODULE:APP" in proc.stderr
