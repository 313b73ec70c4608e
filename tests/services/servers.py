"""Local servers for the test suite, started and stopped by process id.

Every server listens on 127.0.0.1 only, on a port that was free when it started, and is
waited for until it answers; if it dies first, the error carries the end of its log. Each
server runs in a process group of its own (its id is the server's pid) and is stopped by
that id: SIGTERM, then SIGKILL after a grace period. Servers still running when the
Python process exits are stopped by an ``atexit`` hook, and on Linux each server also
receives SIGTERM from the kernel if the process that started it dies (``PR_SET_PDEATHSIG``),
so a killed test run leaves nothing behind.

- :func:`start_azurite` — the Azure Storage emulator (blob, queue, table), installed by
  ``npm ci --prefix tests/services`` (``make test`` does it).
- :func:`start_moto` — moto (S3, SQS, ...) behind ``hosts.aws.motoserver`` (keep-alive).
- :func:`start_python_server` — ``python -m MODULE ...`` that prints ``ready <port>``;
  :func:`start_eventhubs_standin` is the Event Hubs stand-in started that way.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

HOST = "127.0.0.1"
SERVICES_DIR = Path(__file__).resolve().parent
REPO = SERVICES_DIR.parent.parent
NODE_MODULES = SERVICES_DIR / "node_modules"
AZURITE_BIN = NODE_MODULES / ".bin" / "azurite"
# logs of running servers (a log is removed when its server stops cleanly);
# REACTIVE_SERVICE_LOGS=DIR puts them elsewhere
LOG_DIR = REPO / ".services" / "logs"
LOG_DIR_ENV = "REACTIVE_SERVICE_LOGS"

# Azurite's fixed development account (public, documented, the same for every install)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_FLAGS = (
    "--inMemoryPersistence",
    "--skipApiVersionCheck",  # current Python SDKs send API versions newer than Azurite knows
    "--loose",
    "--disableTelemetry",  # on by default: it would try to reach the internet
    "--silent",
)

READY_TIMEOUT = 60.0  # seconds; node's cold start on a busy 2-core machine can take ~10 s
STOP_TIMEOUT = 5.0
LOG_TAIL = 40  # lines of a server's log quoted in an error


class ServerError(RuntimeError):
    """A server could not be started (the message ends with the tail of its log)."""


@dataclass
class Server:
    """A running server process: stop it with :meth:`stop` (idempotent)."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    _stopped: bool = field(default=False, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        return _tail(self.log_path, lines)

    def stop(self, timeout: float = STOP_TIMEOUT, keep_log: bool = False) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``timeout``; reaps it."""
        if self._stopped:
            return
        self._stopped = True
        _RUNNING.pop(self.pid, None)
        if self.process.returncode is None:
            _signal_group(self.pid, signal.SIGTERM)
            if not _exited(self.pid, timeout):
                _signal_group(self.pid, signal.SIGKILL)
                _exited(self.pid, timeout)
            # the server is a zombie now, so its group id cannot have been reused:
            # whatever else it left in its group goes too
            _signal_group(self.pid, signal.SIGKILL)
        self.process.wait()
        if not keep_log:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@dataclass
class Azurite(Server):
    """Azurite with its three services; ``connection_string`` names every endpoint."""

    blob_port: int = 0
    queue_port: int = 0
    table_port: int = 0

    account_name: str = AZURITE_ACCOUNT
    account_key: str = AZURITE_KEY

    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.blob_port}/{self.account_name}"

    @property
    def queue_endpoint(self) -> str:
        return f"http://{HOST}:{self.queue_port}/{self.account_name}"

    @property
    def table_endpoint(self) -> str:
        return f"http://{HOST}:{self.table_port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        # explicit endpoints: some SDKs (the Event Hubs blob checkpoint store) reject
        # the UseDevelopmentStorage=true shortcut, and the ports are not the defaults
        return (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={self.account_name};AccountKey={self.account_key};"
            f"BlobEndpoint={self.blob_endpoint};"
            f"QueueEndpoint={self.queue_endpoint};"
            f"TableEndpoint={self.table_endpoint};"
        )


@dataclass
class MotoServer(Server):
    """``moto_server``: pass ``url`` as ``endpoint_url`` to boto3 clients."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def reset(self) -> None:
        reset_moto(self.url)


@dataclass
class PythonServer(Server):
    """A ``python -m MODULE`` server that printed ``ready <port>``."""

    port: int = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


# ---------------------------------------------------------------- Azurite


def azurite_installed() -> bool:
    return AZURITE_BIN.exists()


def start_azurite(timeout: float = READY_TIMEOUT, attempts: int = 3) -> Azurite:
    """Azurite (blob, queue, table) in memory on three free ports; waits until all listen."""
    if not AZURITE_BIN.exists():
        raise ServerError(
            f"azurite is not installed ({AZURITE_BIN.relative_to(REPO)} missing): "
            "run `make test` or `npm ci --prefix tests/services` (needs node and npm)"
        )
    for attempt in itertools.count(1):
        blob, queue, table = free_ports(3)
        command = [
            str(AZURITE_BIN),
            *AZURITE_FLAGS,
            *("--blobHost", HOST, "--blobPort", str(blob)),
            *("--queueHost", HOST, "--queuePort", str(queue)),
            *("--tableHost", HOST, "--tablePort", str(table)),
        ]
        # in memory it writes no files; the scratch folder is its working directory anyway
        workdir = REPO / ".services" / "azurite"
        workdir.mkdir(parents=True, exist_ok=True)
        process, log_path = _spawn("azurite", command, cwd=workdir)
        server = Azurite(
            "azurite", process, log_path, blob_port=blob, queue_port=queue, table_port=table
        )
        _RUNNING[server.pid] = server
        wanted = [f"listening at http://{HOST}:{port}" for port in (blob, queue, table)]

        def ready(server: Azurite = server, wanted: list[str] = wanted) -> bool:
            text = _read(server.log_path)
            return all(w in text for w in wanted) and all(
                _port_open(p) for p in (server.blob_port, server.queue_port, server.table_port)
            )

        try:
            _wait(server, ready, timeout)
            return server
        except ServerError:
            # a port taken between choosing it and Azurite binding it: try new ports
            if attempt < attempts and "EADDRINUSE" in _read(server.log_path):
                server.stop()
                continue
            raise
    raise AssertionError("unreachable")


# ---------------------------------------------------------------- moto


def moto_command(port: int) -> list[str]:
    """moto's application behind a keep-alive server (``hosts.aws.motoserver``): werkzeug's,
    under ``moto_server``, closes every connection, which real AWS does not."""
    return [sys.executable, "-m", "hosts.aws.motoserver", "-p", str(port)]


def start_moto(timeout: float = READY_TIMEOUT, attempts: int = 3) -> MotoServer:
    """A moto server on ``127.0.0.1:PORT``; waits until ``/moto-api/`` answers."""
    if importlib.util.find_spec("moto") is None:
        raise ServerError(
            f"moto not installed for {sys.executable}: install the dev extra "
            "(`make test` runs pip install -e '.[dev]')"
        )
    for attempt in itertools.count(1):
        (port,) = free_ports(1)
        process, log_path = _spawn("moto", moto_command(port))
        server = MotoServer("moto", process, log_path, port=port)
        _RUNNING[server.pid] = server

        def ready(server: MotoServer = server) -> bool:
            return _http_ok(f"{server.url}/moto-api/")

        try:
            _wait(server, ready, timeout)
            return server
        except ServerError:
            if attempt < attempts and "address already in use" in _read(server.log_path).lower():
                server.stop()
                continue
            raise
    raise AssertionError("unreachable")


def reset_moto(url: str) -> None:
    """Forget every bucket, queue, ... in the moto server at ``url``."""
    request = urllib.request.Request(f"{url}/moto-api/reset", data=b"", method="POST")
    with _LOCAL.open(request, timeout=10) as response:
        if response.status != 200:
            raise ServerError(f"moto reset answered {response.status}")


def aws_env(endpoint_url: str | None = None) -> dict[str, str]:
    """Dummy credentials and a region, e.g. for a subprocess's environment.

    With ``endpoint_url``, ``AWS_ENDPOINT_URL`` too (boto3 then sends every client there).
    Nothing is set globally: merge it into an ``env=`` or a ``monkeypatch`` yourself.
    """
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    if endpoint_url is not None:
        env["AWS_ENDPOINT_URL"] = endpoint_url
    return env


def aws_client_kwargs(endpoint_url: str) -> dict[str, str]:
    """Keyword arguments for ``boto3.client(service, **aws_client_kwargs(url))``."""
    env = aws_env()
    return {
        "endpoint_url": endpoint_url,
        "region_name": env["AWS_DEFAULT_REGION"],
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "aws_session_token": env["AWS_SESSION_TOKEN"],
    }


# ---------------------------------------------------------------- Python module servers

_READY = re.compile(rb"^ready (\d+)\s*$", re.MULTILINE)


def start_python_server(
    name: str,
    module: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float = READY_TIMEOUT,
) -> PythonServer:
    """``python -m MODULE ARGS`` from the repository root; waits for ``ready <port>``.

    The module binds 127.0.0.1 itself (pass ``--port 0`` and let it choose) and prints
    ``ready <port>`` on stdout once it accepts connections. ``env`` is added to this
    process's environment; the repository root is put on ``PYTHONPATH``.
    """
    python_path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    full_env = {**os.environ, "PYTHONPATH": python_path, "PYTHONUNBUFFERED": "1", **(env or {})}
    process, log_path = _spawn(name, [sys.executable, "-m", module, *args], env=full_env)
    server = PythonServer(name, process, log_path)
    _RUNNING[server.pid] = server

    def ready() -> bool:
        found = _READY.search(log_path.read_bytes())
        if found is None:
            return False
        server.port = int(found.group(1))
        return _port_open(server.port)

    _wait(server, ready, timeout)
    return server


def start_eventhubs_standin(
    hubs: Mapping[str, int], extra_args: Sequence[str] = (), timeout: float = READY_TIMEOUT
) -> PythonServer:
    """The in-repo Event Hubs stand-in, ``tests.standins.eventhubs``, with ``{hub: partitions}``."""
    args = ["--host", HOST, "--port", "0"]
    for hub, partitions in hubs.items():
        args += ["--hub", f"{hub}:{partitions}"]
    return start_python_server(
        "eventhubs", "tests.standins.eventhubs", [*args, *extra_args], timeout=timeout
    )


# ---------------------------------------------------------------- helpers


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports on 127.0.0.1 that were free a moment ago."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind((HOST, 0))
        return [sock.getsockname()[1] for sock in sockets]


def running() -> list[Server]:
    """Servers started by this process and not yet stopped."""
    return list(_RUNNING.values())


def stop_all() -> None:
    for server in list(_RUNNING.values()):
        server.stop()


_RUNNING: dict[int, Server] = {}
# loopback only: never through a proxy from the environment
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_LOG_IDS = itertools.count(1)
_LOG_LOCK = threading.Lock()
atexit.register(stop_all)


def _spawn(
    name: str,
    command: Sequence[str],
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> tuple[subprocess.Popen[bytes], Path]:
    log_dir = Path(os.environ.get(LOG_DIR_ENV) or LOG_DIR)
    log_dir.mkdir(parents=True, exist_ok=True)
    with _LOG_LOCK:
        log_path = log_dir / f"{name}-{os.getpid()}-{next(_LOG_IDS)}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd or REPO,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # own process group, whose id is the server's pid
            preexec_fn=_die_with_parent(),
        )
    return process, log_path


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux: the kernel sends SIGTERM to the server when the starting thread dies."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def set_pdeathsig() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl: don't run orphaned
            os.kill(os.getpid(), signal.SIGTERM)

    return set_pdeathsig


def _wait(server: Server, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if server.process.poll() is not None:
            tail = server.log_tail()
            server.stop(keep_log=True)
            raise ServerError(
                f"{server.name} exited with code {server.process.returncode} before it was "
                f"ready; log {server.log_path}:\n{tail}"
            )
        if ready():
            return
        if time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop(keep_log=True)
            raise ServerError(
                f"{server.name} (pid {server.pid}) not ready after {timeout:.0f} s; "
                f"log {server.log_path}:\n{tail}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _exited(pid: int, timeout: float) -> bool:
    """Waits until child ``pid`` has exited, without reaping it (its id stays reserved)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:  # already reaped
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _http_ok(url: str) -> bool:
    try:
        with _LOCAL.open(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _tail(path: Path, lines: int) -> str:
    return "\n".join(_read(path).splitlines()[-lines:])
