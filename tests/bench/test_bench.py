"""The benchmark command runs every workload, verifies results and reports wrong ones."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hosts.bench import runner
from hosts.bench import workloads as w
from hosts.bench.plot import throughput_svg

ROOT = Path(__file__).resolve().parents[2]
SMALL = {"hello-sequence": 40, "hello-sequence5": 20, "fan-out": 50, "counter": 200,
         "bank": 30, "latency": 5, "replay": 100, "snapshot-size": 80}


@pytest.mark.parametrize("host", [h for h in runner.HOSTS
                                  if h not in ("aws-local", "azure-local")])
@pytest.mark.parametrize("workload", [w for w in runner.WORKLOADS
                                      if w not in ("replay", "snapshot-size",
                                                   "big-partition")
                                      and w not in runner.FAN_OUTS[1:]])
def test_every_workload_verifies_its_results(host: str, workload: str) -> None:
    result = runner.run_workload(workload, host, 3, SMALL[workload])
    assert result.errors == 0
    assert result.n == SMALL[workload]
    assert result.seconds > 0 and result.throughput > 0
    if workload == "latency":
        assert result.p50_ms is not None and result.p99_ms is not None
        assert result.p50_ms <= result.p99_ms


def test_large_fan_outs_are_workloads_of_their_own() -> None:
    assert runner.DEFAULT_N["fan-out-10k"] == 10_000
    assert runner.DEFAULT_N["fan-out-100k"] == 100_000
    result = runner.run_workload("fan-out-10k", "emulator", 4, None)
    assert (result.workload, result.n, result.errors) == ("fan-out-10k", 10_000, 0)


@pytest.mark.parametrize("host", ["local", "folder"])
def test_big_partition_reports_flat_commits(host: str) -> None:
    result = runner.run_workload("big-partition", host, 1, 2_000)
    assert result.errors == 0
    per_commit = result.detail["per_commit"]
    assert set(per_commit) == {"1000", "2000"}
    small, big = per_commit["1000"], per_commit["2000"]
    assert big["bytes_per_commit"] < 1.5 * small["bytes_per_commit"]


def test_a_wrong_result_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(w, "expected_sequence", lambda length: ["something else"])
    result = runner.run_workload("hello-sequence", "emulator", 2, 10)
    assert result.errors == 10


def test_replay_cost_is_reported_per_history_length() -> None:
    result = runner.run_workload("replay", "emulator", 1, 100)
    assert set(result.detail["restore_ms_by_history"]) == {"10", "100"}


def test_retention_bounds_snapshot_size() -> None:
    result = runner.run_workload("snapshot-size", "emulator", 1, 800)
    sizes = result.detail["snapshot_bytes"]
    bounded = [sizes[f"keep=100 after {n}"] for n in (200, 400, 600, 800)]
    unbounded = [sizes[f"keep=1000000 after {n}"] for n in (200, 400, 600, 800)]
    assert unbounded[-1] > 3 * unbounded[0]  # without a limit, completed instances pile up
    assert bounded[-1] < 1.2 * bounded[1]  # with one, size levels off


def test_cli_writes_json_and_plot_and_fails_on_unknown_workload(tmp_path: Path) -> None:
    out, svg = tmp_path / "bench.json", tmp_path / "bench.svg"
    proc = subprocess.run(
        [sys.executable, "-m", "reactive", "bench", "--workloads", "hello-sequence,latency",
         "--partitions", "1,2", "-n", "20,40", "--json", str(out), "--plot", str(svg)],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "hello-sequence" in proc.stdout and "errors" in proc.stdout
    data = json.loads(out.read_text())
    assert data["environment"]["python"]
    assert len(data["results"]) == 8
    assert svg.read_text().count("<polyline") >= 2
    bad = subprocess.run(
        [sys.executable, "-m", "reactive", "bench", "--workloads", "nope"],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert bad.returncode == 2
    assert "unknown workload 'nope'" in bad.stderr


def test_plot_draws_a_line_per_series() -> None:
    results = [
        runner.Result("hello-sequence", "emulator", p, 100, 1.0, 100.0 * p) for p in (1, 2, 4)
    ]
    svg = throughput_svg(results)
    assert svg.startswith("<svg") and svg.count("<polyline") == 1


@pytest.mark.parametrize("host", ["aws-local", "azure-local"])
def test_the_cloud_hosts_run_a_workload_locally(host: str) -> None:
    """On servers of their own (moto; Azurite and the Event Hubs stand-in), started and
    stopped by the bench host."""
    result = runner.run_workload("hello-sequence", host, 2, 20)
    assert (result.errors, result.n) == (0, 20)
