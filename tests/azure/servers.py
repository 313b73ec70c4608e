"""Local servers for the Azure host's tests: Azurite (Blob Storage) and the Event Hubs
stand-in, each started on 127.0.0.1 free ports and stopped by pid.

Nothing is installed here. Azurite is used if a binary is found (``AZURITE_BIN``, the
``PATH``, or ``/tmp/azurite/node_modules/.bin/azurite``); otherwise the tests that need it
are skipped with the reason.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCOUNT = "devstoreaccount1"
# Azurite's published development account key (not a secret).
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw=="
)
CANDIDATES = ("/tmp/azurite/node_modules/.bin/azurite",)


@dataclass(frozen=True)
class Azurite:
    blob_port: int
    pid: int

    @property
    def blob_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.blob_port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def azurite_binary() -> str | None:
    explicit = os.environ.get("AZURITE_BIN")
    if explicit:
        return explicit
    found = shutil.which("azurite")
    if found:
        return found
    return next((c for c in CANDIDATES if Path(c).exists()), None)


def _wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"azurite exited with status {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"azurite did not listen on 127.0.0.1:{port} within {seconds} s")


@contextmanager
def azurite(binary: str) -> Iterator[Azurite]:
    blob, queue, table = free_port(), free_port(), free_port()
    args = [
        binary, "--inMemoryPersistence", "--skipApiVersionCheck", "--loose",
        "--disableTelemetry", "--silent",
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_port(blob, proc, 30)
        yield Azurite(blob, proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
