"""``reactive serve`` as a real subprocess on a free port, driven with httpx as curl would,
and the instance commands against its state folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hosts.cli import main

ROOT = Path(__file__).resolve().parents[2]
KEY = "serve-test-key"


@dataclass
class Served:
    url: str
    state: Path
    proc: subprocess.Popen[str]
    banner: list[str]


def serve(state: Path, *extra: str, env_key: str | None = KEY,
          app: str = "samples.hello.app:app") -> Served:
    env = {k: v for k, v in os.environ.items() if k != "REACTIVE_API_KEY"}
    if env_key is not None:
        env["REACTIVE_API_KEY"] = env_key
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactive", "serve", app, "--state",
         str(state), "--port", "0", "--quiet", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    banner: list[str] = []
    for line in proc.stdout:
        banner.append(line.rstrip("\n"))
        if line.startswith("API key:"):
            break
    else:
        proc.wait(30)
        raise AssertionError("serve exited early: " + " | ".join(banner))
    url = banner[0].rsplit(" at ", 1)[1].rstrip("/")
    return Served(url, state, proc, banner)


def stop(served: Served) -> None:
    served.proc.terminate()  # SIGTERM to the pid we started
    try:
        served.proc.wait(30)
    except subprocess.TimeoutExpired:
        served.proc.kill()
        served.proc.wait(30)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    running = serve(tmp_path / "state")
    try:
        yield running
    finally:
        stop(running)


def test_serve_answers_like_curl(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    assert served.url.startswith("http://127.0.0.1:")
    assert served.banner[1] == f"API key: {KEY} (from REACTIVE_API_KEY)"
    with httpx.Client(base_url=served.url, headers={"x-api-key": KEY}, timeout=60) as http:
        started = http.post("/api/orchestrations/Hello", params={"id": "curl-1"})
        assert started.status_code == 202 and started.headers["location"] == (
            "/api/instances/curl-1"
        )
        done = http.get("/api/instances/curl-1/wait", params={"timeout": 60})
        assert done.status_code == 200 and done.json()["result"] == "Hello World"
        startup = http.get("/api/instances/startup-0-HelloStartup/wait", params={"timeout": 60})
        assert startup.json()["result"] == ["Hello World"] * 5
        listed = http.get("/api/instances", params={"name": "Hello"}).json()
        assert [i["id"] for i in listed["items"]] == ["curl-1"]
        assert http.get("/api/partitions").json()["partitions"]
        metrics = http.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert 'reactive_instances{status="completed"} 2.0' in metrics.text
        assert "<title>" in http.get("/").text
        assert http.get("/openapi.json").json()["info"]["title"].endswith("hello")
        bad = http.post("/api/orchestrations/Hello", params={"id": "curl-1"},
                        content=b"[1, 2")
        assert bad.status_code == 400 and "\n" not in bad.json()["error"]
    assert httpx.get(f"{served.url}/api/instances", timeout=30).status_code == 401

    # the folder's commands work while the server drives it
    assert main(["status", "curl-1", "--state", str(served.state)]) == 0
    assert "Hello World" in capsys.readouterr().out
    assert main(["list", "--state", str(served.state), "--name", "Hello", "--json"]) == 0
    assert '"curl-1"' in capsys.readouterr().out
    assert main(["purge", "curl-1", "--url", served.url, "--api-key", KEY]) == 0
    assert main(["status", "curl-1", "--state", str(served.state)]) == 2
    assert "no instance 'curl-1'" in capsys.readouterr().err


def test_second_server_on_a_folder_is_one_line_misuse(served: Served) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "reactive", "serve", "samples.hello.app:app", "--state",
         str(served.state), "--port", "0"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "in use by" in proc.stderr, proc.stderr


def test_generated_key_is_kept_and_no_auth_is_loopback(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = serve(state, env_key=None)
    try:
        key = (state / "api-key").read_text().strip()
        assert first.banner[1].startswith(f"API key: {key} (new, kept in")
        assert (state / "api-key").stat().st_mode & 0o777 == 0o600
    finally:
        stop(first)
    again = serve(state, env_key=None)
    try:
        assert again.banner[1].startswith(f"API key: {key} (from")
    finally:
        stop(again)
    open_one = serve(state, "--no-auth-loopback", env_key=None)
    try:
        assert open_one.banner[1].startswith("API key: none")
        r = httpx.get(f"{open_one.url}/api/instances", timeout=30)
        assert r.status_code == 200
    finally:
        stop(open_one)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["serve", "no_such_module:app", "--state", "{state}"], "cannot import module"),
        (["serve", "samples.hello.app:app"], "serve --host local needs --state DIR"),
        (["serve", "samples.hello.app:app", "--state", "{state}", "--port", "{busy}"],
         "cannot listen on 127.0.0.1:"),
        (["serve", "samples.hello.app:app", "--state", "{file}"], "is a file"),
        (["serve", "samples.hello.app:app", "--state", "{state}", "--partitions", "0"],
         "must be at least 1"),
    ],
)
def test_serve_misuse_is_one_line_and_status_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(ROOT)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    (tmp_path / "a-file").write_text("")
    values = {"state": str(tmp_path / "s"), "busy": str(busy.getsockname()[1]),
              "file": str(tmp_path / "a-file")}
    try:
        code = main([part.format(**values) for part in argv])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    finally:
        busy.close()
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err, err
