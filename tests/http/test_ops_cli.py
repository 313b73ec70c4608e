"""The instance commands against a server (``--url``, a real LocalHost behind uvicorn) and
a state folder (``--state``): output, and one-line misuse errors with status 2."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hosts.cli import main
from hosts.http.live import local_inspector
from hosts.local import LocalHost
from reactive.core.messages import Tick
from reactive.errors import TerminatedError
from reactive.hosting import envelope
from tests.http.conftest import ThreadServer, api_over, driven
from tests.http.opsapp import Approval
from tests.http.opsapp import app as ops_app

KEY = "cli-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LocalHost]]:
    with driven(ops_app, tmp_path_factory.mktemp("state")) as host:
        history, describe = local_inspector(host)
        api = api_over(host, KEY, history=history, describe=describe)
        with ThreadServer(api) as running:
            yield running.url, host


def until_running(host: LocalHost, instance_id: str) -> None:
    for _ in range(2000):
        record = host.status.get(instance_id)
        if record is not None and record.status != "pending":
            return
        time.sleep(0.005)
    raise AssertionError(f"{instance_id} stayed pending")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_instance_commands(
    server: tuple[str, LocalHost], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, host = server
    monkeypatch.setenv("REACTIVE_API_KEY", KEY)
    client = host.client()
    client.start(Approval(request="loan"), "cli-1")
    until_running(host, "cli-1")

    code, out, err = run(capsys, "status", "cli-1", "--url", url)
    assert code == 0, err
    assert "status:      running" in out and "Approval" in out

    code, out, err = run(capsys, "status", "cli-1", "--url", url)
    assert "waiting for: event 'decision'" in out
    code, out, err = run(capsys, "history", "cli-1", "--url", url)
    assert (code, out.split()) == (0, ["1", "wait:", "n=0,", "event=decision"]), err

    code, out, err = run(capsys, "list", "--url", url, "--status", "running", "--json")
    assert code == 0 and [i["id"] for i in json.loads(out)["items"]] == ["cli-1"]

    code, out, err = run(capsys, "raise-event", "cli-1", "decision", "--value", '"approved"',
                         "--url", url)
    assert code == 0, err
    client.wait("cli-1", timeout=60)
    code, out, err = run(capsys, "status", "cli-1", "--url", url, "--json")
    assert json.loads(out)["result"] == "loan: approved"

    code, out, err = run(capsys, "history", "cli-1", "--url", url)
    assert "histories are kept while an instance is live" in out

    code, out, err = run(capsys, "list", "--url", url, "--name", "Approval")
    assert code == 0 and out.split()[:3] == ["cli-1", "Approval", "completed"]

    client.start(Approval(request="car"), "cli-2")
    code, out, err = run(capsys, "terminate", "cli-2", "--reason", "no", "--url", url)
    assert code == 0, err
    with pytest.raises(TerminatedError):
        client.wait("cli-2", timeout=60)
    code, out, err = run(capsys, "status", "cli-2", "--url", url)
    assert "terminated" in out and "no" in out
    code, out, err = run(capsys, "purge", "cli-2", "--url", url)
    assert (code, out.strip()) == (0, "purged cli-2")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["status", "nobody"], "no instance 'nobody'"),
        (["raise-event", "cli-x", "go", "--value", "{bad"], "--value is not valid JSON"),
        (["terminate", "nobody"], "no instance"),
        (["purge", "nobody"], "no instance"),
        (["list", "--status", "bored"], "invalid choice"),
        (["status"], "required: ID"),
        (["status", "x", "--api-key", "wrong"], "wrong API key"),
        (["status", "x", "--state", "/nonexistent-folder"], "give --url or --state, not both"),
    ],
)
def test_misuse_is_one_line_and_status_2(
    server: tuple[str, LocalHost], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str,
) -> None:
    url, _ = server
    monkeypatch.setenv("REACTIVE_API_KEY", KEY)
    try:
        code, out, err = run(capsys, *argv, "--url", url)
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
        out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.count("\n") == 1 and message in err, err


@pytest.mark.parametrize("command", [["partitions"], ["history", "x"], ["status", "x"]])
def test_a_command_given_neither_a_server_nor_a_folder_says_what_to_give(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, _out, err = run(capsys, *command)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{command[0]}: give --url URL (a server) or --state DIR (a state folder)" in err


def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = run(capsys, "status", "x", "--url", "http://127.0.0.1:9")
    assert code == 2 and err.startswith("reactive: error: cannot reach") and err.count("\n") == 1


def test_folder_commands_while_a_host_drives_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = str(tmp_path)
    with driven(ops_app, tmp_path) as host:
        client = host.client()
        client.start(Approval(request="trip"), "f-1")
        until_running(host, "f-1")
        code, out, err = run(capsys, "list", "tests/http/opsapp.py", "--state", state)
        assert code == 0 and out.split()[:3] == ["f-1", "Approval", "running"], (out, err)
        code, out, err = run(capsys, "raise-event", "f-1", "decision", "--value", '"ok"',
                             "--state", state, "--request-id", "once")
        assert code == 0, err
        assert client.wait("f-1", timeout=60) == "trip: ok"
        code, out, err = run(capsys, "status", "f-1", "--state", state)
        assert code == 0 and 'result:   "trip: ok"' in out
        client.start(Approval(request="boat"), "f-2")
        code, out, err = run(capsys, "terminate", "f-2", "--state", state, "--reason", "storm")
        assert code == 0, err
        with pytest.raises(TerminatedError, match="storm"):
            client.wait("f-2", timeout=60)
        code, out, err = run(capsys, "purge", "f-2", "--state", state)
        assert code == 0, err
        assert host.status.get("f-2") is None
    code, out, err = run(capsys, "history", "f-1", "--state", state)
    assert code == 2 and "--url" in err and err.count("\n") == 1
    code, out, err = run(capsys, "status", "f-1", "--state", str(tmp_path / "missing"))
    assert code == 2 and "no such folder" in err
    code, out, err = run(capsys, "status", "f-1", "--state", state, "--app", "samples.hello.app")
    assert code == 2 and "holds application 'ops'" in err and err.count("\n") == 1


def test_partitions_show_health_and_warn_of_a_gap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``reactive partitions`` on a folder: a row per partition that committed; a message
    held for a predecessor that never came is pointed out on stderr."""
    state = str(tmp_path)
    with driven(ops_app, tmp_path) as host:
        client = host.client()
        client.start(Approval(request="trip"), "p-1")
        until_running(host, "p-1")
        code, out, err = run(capsys, "partitions", "--state", state)
        assert code == 0 and err == "", err
        header, *rows = out.splitlines()
        assert header.split()[:2] == ["partition", "committed"] and header.endswith("held")
        owner = host.status.get("p-1")
        assert owner is not None
        row = next(r.split() for r in rows if r.split()[0] == str(owner.partition))
        assert row[-1] == "0"  # held
        assert row[-6] == "0"  # backlog (the snapshot column is two words)
        folder = host.folder
        assert folder is not None
        ahead = envelope.from_partition(host.epoch, 1, 7, Tick(dest=0), host.schema)
        folder.append_raw(0, ahead.data)
        for _ in range(600):
            code, out, err = run(capsys, "partitions", "--state", state, "--json")
            held = {p["partition"]: p["held"] for p in json.loads(out)["partitions"]}
            if held.get(0) == 1:
                break
            time.sleep(0.05)
        assert held.get(0) == 1, out
        code, out, err = run(capsys, "partitions", "--state", state)
        assert code == 0
        assert err.startswith("partition 0 holds 1 message(s) since ") and err.count("\n") == 1
    code, out, err = run(capsys, "partitions", "--state", str(tmp_path / "missing"))
    assert code == 2 and "no such folder" in err and err.count("\n") == 1


def test_partitions_of_a_server(
    server: tuple[str, LocalHost], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, host = server
    monkeypatch.setenv("REACTIVE_API_KEY", KEY)
    host.client().start(Approval(request="desk"), "srv-p")
    until_running(host, "srv-p")
    code, out, err = run(capsys, "partitions", "--url", url, "--json")
    assert code == 0, err
    parts = json.loads(out)["partitions"]
    assert parts and all({"backlog", "held", "held_since"} <= set(p) for p in parts)
    code, out, err = run(capsys, "partitions", "--url", url)
    assert code == 0 and out.splitlines()[0].split()[:2] == ["partition", "committed"]
    code, out, err = run(capsys, "partitions", "--url", url, "--api-key", "wrong")
    assert code == 2 and "API key" in err and err.count("\n") == 1
