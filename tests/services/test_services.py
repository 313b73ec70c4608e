"""Smoke tests for the local servers, the browser, and that nothing outlives the session."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from tests.services.servers import (
    HOST,
    LOG_DIR_ENV,
    REPO,
    Azurite,
    ServerError,
    aws_client_kwargs,
    aws_env,
    reset_moto,
    start_python_server,
)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


# ---------------------------------------------------------------- Azurite


def test_azurite_conditional_blob_write(azurite: Azurite) -> None:
    from azure.core import MatchConditions
    from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
    from azure.storage.blob import BlobServiceClient

    assert azurite.blob_endpoint.startswith(f"http://{HOST}:")
    assert f"BlobEndpoint={azurite.blob_endpoint};" in azurite.connection_string
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = service.create_container(_name("smoke"))
    blob = container.get_blob_client("snapshot.json")

    first = blob.upload_blob(b"one", match_condition=MatchConditions.IfMissing)
    with pytest.raises((ResourceExistsError, ResourceModifiedError)) as refused:
        blob.upload_blob(b"two", match_condition=MatchConditions.IfMissing)
    assert refused.value.status_code in (409, 412)
    assert blob.download_blob().readall() == b"one"

    second = blob.upload_blob(
        b"two", overwrite=True, etag=first["etag"], match_condition=MatchConditions.IfNotModified
    )
    with pytest.raises(ResourceModifiedError) as stale:
        blob.upload_blob(
            b"three",
            overwrite=True,
            etag=first["etag"],
            match_condition=MatchConditions.IfNotModified,
        )
    assert stale.value.status_code == 412
    assert second["etag"] != first["etag"]
    assert blob.download_blob().readall() == b"two"


def test_azurite_queue_and_table_answer(azurite: Azurite) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for endpoint in (azurite.queue_endpoint, azurite.table_endpoint):
        # an anonymous request is refused, but by Azurite, over HTTP
        with pytest.raises(urllib.error.HTTPError) as refused:
            opener.open(f"{endpoint}?comp=list", timeout=10)
        assert 400 <= refused.value.code < 500, endpoint


# ---------------------------------------------------------------- moto


def test_moto_s3_if_none_match(moto_endpoint: str) -> None:
    import boto3
    from botocore.exceptions import ClientError

    s3 = boto3.client("s3", **aws_client_kwargs(moto_endpoint))
    bucket = _name("smoke")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"one", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=bucket, Key="k", Body=b"two", IfNoneMatch="*")
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"one"


def test_moto_sqs_fifo(moto_endpoint: str) -> None:
    import boto3

    sqs = boto3.client("sqs", **aws_client_kwargs(moto_endpoint))
    url = sqs.create_queue(
        QueueName=_name("smoke") + ".fifo",
        Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    )["QueueUrl"]
    for body in ("a", "b", "c", "a"):  # the second "a" is a duplicate: dropped
        sqs.send_message(QueueUrl=url, MessageBody=body, MessageGroupId="p0")
    got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
    assert [m["Body"] for m in got["Messages"]] == ["a", "b", "c"]
    sqs.delete_message_batch(
        QueueUrl=url,
        Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(got["Messages"])
        ],
    )


def test_moto_reset_and_env(moto_endpoint: str) -> None:
    import boto3

    s3 = boto3.client("s3", **aws_client_kwargs(moto_endpoint))
    s3.create_bucket(Bucket=_name("reset"))
    reset_moto(moto_endpoint)
    assert s3.list_buckets()["Buckets"] == []
    env = aws_env(moto_endpoint)
    assert env["AWS_ENDPOINT_URL"] == moto_endpoint
    assert "AWS_ENDPOINT_URL" not in aws_env()
    assert os.environ.get("AWS_ENDPOINT_URL") != moto_endpoint  # nothing set globally


# ---------------------------------------------------------------- Python module servers


def test_python_server_ready_line(tmp_path: Path) -> None:
    module = tmp_path / "tiny_server.py"
    module.write_text(
        textwrap.dedent(
            """
            import http.server, sys
            server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
            print("starting", flush=True)
            print(f"ready {server.server_address[1]}", flush=True)
            server.serve_forever()
            """
        )
    )
    with start_python_server(
        "tiny", "tiny_server", env={"PYTHONPATH": str(tmp_path)}, timeout=30
    ) as server:
        assert server.port > 0 and server.alive()
        pid = server.pid
    assert not _exists(pid)


def test_python_server_that_dies_fails_fast_with_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(LOG_DIR_ENV, str(tmp_path / "logs"))
    (tmp_path / "dying_server.py").write_text("raise SystemExit('no hub given')\n")
    started = time.monotonic()
    with pytest.raises(ServerError, match="no hub given"):
        start_python_server("dying", "dying_server", env={"PYTHONPATH": str(tmp_path)})
    assert time.monotonic() - started < 20


# ---------------------------------------------------------------- browser


def test_asyncio_runs_after_the_browser_module() -> None:
    # test_browser.py ran before this module: its Playwright (which marks an event loop
    # running in this thread while it lives) must be gone, or asyncio.run would refuse
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert asyncio.run(answer()) == 42


# ---------------------------------------------------------------- nothing left behind

_INNER = """
import os
from pathlib import Path

def test_start(moto_endpoint, azurite):
    pids = os.environ["PIDS_FILE"]
    from tests.services.servers import running
    Path(pids).write_text(" ".join(str(s.pid) for s in running()))
    if os.environ.get("INNER_FAIL"):
        raise AssertionError("failing on purpose with servers up")
    if os.environ.get("INNER_HANG"):
        import time
        time.sleep(300)
"""


def _inner_pytest(tmp_path: Path, **env: str) -> subprocess.Popen[str]:
    (tmp_path / "test_inner.py").write_text(_INNER)
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -q -p no:cacheprovider\n")
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.services.fixtures",
            "-c",
            str(tmp_path / "pytest.ini"),
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=REPO,
        env={
            **os.environ,
            "PYTHONPATH": path,
            "PIDS_FILE": str(tmp_path / "pids"),
            LOG_DIR_ENV: str(tmp_path / "logs"),
            **env,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _pids(tmp_path: Path) -> list[int]:
    return [int(p) for p in (tmp_path / "pids").read_text().split()]


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone as a server; only its parent has not reaped it yet
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _gone(pids: list[int], within: float = 15.0) -> list[int]:
    deadline = time.monotonic() + within
    while (alive := [p for p in pids if _exists(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


@pytest.mark.services
def test_servers_stop_when_the_session_ends(tmp_path: Path) -> None:
    # the inner session fails a test while its servers run: they stop all the same
    inner = _inner_pytest(tmp_path, INNER_FAIL="1")
    out, _ = inner.communicate(timeout=300)
    assert inner.returncode == 1 and "failing on purpose" in out, out
    pids = _pids(tmp_path)
    assert len(pids) == 2, out
    assert _gone(pids, within=0.5) == [], f"still running: {pids}\n{out}"


@pytest.mark.services
def test_servers_stop_when_the_session_is_killed(tmp_path: Path) -> None:
    inner = _inner_pytest(tmp_path, INNER_HANG="1")
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "pids").exists() or not (tmp_path / "pids").read_text():
            assert inner.poll() is None, inner.communicate()[0]
            assert time.monotonic() < deadline, "inner session never started its servers"
            time.sleep(0.1)
        pids = _pids(tmp_path)
        assert all(_exists(p) for p in pids)
        inner.send_signal(signal.SIGKILL)  # no atexit, no finalizers: only the kernel's signal
        inner.wait(30)
    finally:
        if inner.poll() is None:
            inner.kill()
            inner.wait(30)
        if inner.stdout is not None:
            inner.stdout.close()
    assert _gone(pids) == [], f"still running after the session was killed: {pids}"
