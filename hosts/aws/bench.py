"""Benchmarks of the AWS host on a moto server, through the local runner:

    python -m hosts.aws.bench [--endpoint URL] [--partitions 4] [-n 300] [--workload ...]

Without ``--endpoint`` a moto server is started on 127.0.0.1 (a free port) and stopped by
its pid. Beside throughput it reports the host process's own CPU per orchestration (the
runner, the handlers and boto3; not the client, whose share of the ``reactive bench`` window
is reported apart), the moto server's CPU per orchestration, the AWS calls per
orchestration, and the share of the wall time during which at least one call was waiting
on moto, so the gap to what moto allows is visible.

:func:`aws_local` is the hook for ``reactive bench --hosts aws-local``: a context manager
yielding an object with ``client()`` and ``run(until)`` like the other bench hosts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from botocore.client import BaseClient

from hosts.aws.config import AwsConfig
from hosts.aws.handler import AwsHost
from hosts.aws.local import LocalRunner
from hosts.aws.provision import provision
from hosts.aws.sender import SqsSender
from hosts.aws.status import S3StatusStore
from hosts.bench import workloads as w
from reactive import App, Orchestration
from reactive.hosting import requests
from reactive.hosting.client import SeamClient
from reactive.hosting.seams import Outgoing, StatusRecord


class CallMeter:
    """Counts the host's boto3 calls (those of threads other than the main one, which
    plays the client) and the wall time during which at least one was in flight; long
    polls that wait for messages are left out of both."""

    def __init__(self, client_too: bool = False) -> None:
        self.client_too = client_too  # count the main thread's calls as well
        self.calls = 0
        self.busy = 0.0
        self.operations: dict[str, int] = {}
        self.main_operations: dict[str, int] = {}  # of those, the main thread's
        self._inflight = 0
        self._since = 0.0
        self._lock = threading.Lock()
        self._original: Any = None

    def install(self) -> None:
        original = self._original = BaseClient._make_api_call
        meter = self

        def metered(client: Any, operation: str, params: Any) -> Any:
            main = threading.current_thread() is threading.main_thread()
            if (main and not meter.client_too) or (
                operation == "ReceiveMessage" and params.get("WaitTimeSeconds")
            ):
                return original(client, operation, params)
            meter._enter(operation, main)
            try:
                return original(client, operation, params)
            finally:
                meter._leave()

        BaseClient._make_api_call = metered

    def uninstall(self) -> None:
        if self._original is not None:
            BaseClient._make_api_call = self._original

    def _enter(self, operation: str, main: bool) -> None:
        with self._lock:
            self.calls += 1
            self.operations[operation] = self.operations.get(operation, 0) + 1
            if main:
                self.main_operations[operation] = self.main_operations.get(operation, 0) + 1
            if self._inflight == 0:
                self._since = time.perf_counter()
            self._inflight += 1

    def _leave(self) -> None:
        with self._lock:
            self._inflight -= 1
            if self._inflight == 0:
                self.busy += time.perf_counter() - self._since

    def reset(self) -> None:
        with self._lock:
            self.calls, self.busy, self.operations, self.main_operations = 0, 0.0, {}, {}
            if self._inflight:
                self._since = time.perf_counter()


QUIET = 0.2  # seconds without an invocation before the bench host asks the queues


class BatchingClient(SeamClient):
    """The deployment's client; inside :meth:`AwsLocalHost.batch` its starts are
    buffered and submitted together."""

    def __init__(self, bench: AwsLocalHost, poll: float) -> None:
        config = bench.config
        self.statuses = S3StatusStore(config)
        super().__init__(bench.host.schema, config.partitions, SqsSender(config),
                         self.statuses, epoch=config.epoch, poll=poll)
        self.bench = bench

    def start(self, orchestration: Orchestration[Any], instance_id: str | None = None) -> str:
        if self.bench.buffer is None:
            return super().start(orchestration, instance_id)
        record, out = self.pending_start(orchestration, instance_id)
        self.bench.buffer.append((record, out))
        return record.instance_id

    def submit(self, buffered: Sequence[tuple[StatusRecord, Outgoing]]) -> None:
        """Pending records of a batch of starts (a LIST or two per partition, the creates
        in parallel), then their messages (ten to a request)."""
        self.statuses.put_pending_all([record for record, _ in buffered])
        self.sender.send([out for _, out in buffered])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def moto_server() -> Iterator[tuple[str, int]]:
    """A moto server on 127.0.0.1: its URL and pid; stopped by pid afterwards."""
    port = _free_port()
    # hosts.aws.motoserver keeps connections open as AWS does (moto_server closes each one)
    process = subprocess.Popen([sys.executable, "-m", "hosts.aws.motoserver", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.05)
        yield url, process.pid
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far (Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Window:
    """What a stretch of a bench run cost: wall and CPU time, moto calls and their busy
    time, from :meth:`open` to :meth:`close`.

    The client's part is measured apart (:meth:`client`): submitting a batch of starts
    writes their pending records and sends their messages from the client's own pool
    threads, which the main thread's CPU clock does not see; the runner is idle then (it
    has nothing to receive yet), so the process's CPU over the submission is the
    client's."""

    def __init__(self, meter: CallMeter, moto_pid: int | None) -> None:
        self.meter, self.moto_pid = meter, moto_pid
        self.figures: dict[str, float] | None = None  # of the last window closed
        self._start: tuple[float, float, float, float] | None = None
        self._client_cpu = 0.0  # seconds, in the submission's threads but the main one
        self._client_calls: dict[str, int] = {}

    def open(self) -> None:
        self.meter.reset()
        self.figures = None
        self._client_cpu, self._client_calls = 0.0, {}
        self._start = (time.perf_counter(), time.process_time(), time.thread_time(),
                       process_cpu(self.moto_pid or -1))

    @contextlib.contextmanager
    def client(self) -> Iterator[None]:
        """Count what runs inside as the client's, not the host's."""
        cpu, main, calls = time.process_time(), time.thread_time(), self._pooled()
        try:
            yield
        finally:
            self._client_cpu += (time.process_time() - cpu) - (time.thread_time() - main)
            for op, count in self._pooled().items():
                self._client_calls[op] = (self._client_calls.get(op, 0) + count
                                          - calls.get(op, 0))

    def _pooled(self) -> dict[str, int]:
        """Calls so far by threads other than the main one."""
        main = self.meter.main_operations
        return {op: n - main.get(op, 0) for op, n in self.meter.operations.items()}

    def close(self, n: int) -> None:
        if self._start is None:
            return
        wall, cpu, main, moto = self._start
        seconds = time.perf_counter() - wall
        # the main thread plays the client (and waits); the submission is the client's too
        threads_cpu = (time.process_time() - cpu) - (time.thread_time() - main)
        host_cpu = threads_cpu - self._client_cpu
        # the main thread's calls (the client's, and the bench asking whether the queues
        # are empty) and the submission's are the client's
        client_calls = sum(self._client_calls.values()) + sum(self.meter.main_operations.values())
        self.figures = {
            "window_s": round(seconds, 3),
            "moto_busy_share": round(self.meter.busy / seconds, 3),
            "host_cpu_ms_per_item": round(1000 * host_cpu / n, 3),
            "client_cpu_ms_per_item": round(1000 * self._client_cpu / n, 3),
            "moto_cpu_ms_per_item": round(
                1000 * (process_cpu(self.moto_pid or -1) - moto) / n, 3),
            "moto_calls_per_item": round(self.meter.calls / n, 2),
            "host_calls_per_item": round((self.meter.calls - client_calls) / n, 2),
            **{f"{op}_per_item": round(count / n, 2)
               for op, count in sorted(self.meter.operations.items())},
            **{f"client_{op}_per_item": round(count / n, 2)
               for op, count in sorted(self._client_calls.items()) if count},
        }
        self._start = None


class AwsLocalHost:
    """A deployment on an endpoint with its local runner; the bench's host shape."""

    def __init__(self, app: App, partitions: int, endpoint: str, pollers: int = 1,
                 batch_size: int = 100, window: Window | None = None) -> None:
        self.pollers, self.batch_size = pollers, batch_size
        self.window = window
        self._submitted = 0
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        stem = f"bench{uuid.uuid4().hex[:8]}"
        self.config = AwsConfig(bucket=f"{stem}-bucket", partitions=partitions, stem=stem,
                                endpoint_url=endpoint, region="us-east-1")
        provision(self.config, visibility_timeout=30)
        self.host = AwsHost(app, self.config)
        self.runner = self.new_runner().start()
        names = [self.config.partition_queue(p) for p in range(partitions)]
        self._urls = [self.config.queue_url(q) for q in [*names, self.config.ingress_queue]]
        self._client: BatchingClient | None = None
        self.buffer: list[tuple[StatusRecord, Outgoing]] | None = None

    def new_runner(self) -> LocalRunner:
        return LocalRunner(self.host, partition_pollers=self.pollers,
                           batch_size=self.batch_size)

    def client(self) -> SeamClient:
        if self._client is None:
            self._client = BatchingClient(self, poll=0.02)
        return self._client

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Starts made inside are submitted together when it ends (the bench's hook for
        submitting a workload as one batch, as a client posting many starts would)."""
        if self.window is not None:
            self.window.open()
        self.buffer = []
        try:
            yield
        finally:
            buffered, self.buffer = self.buffer, None
            self._submitted = len(buffered)
            self.client()
            assert self._client is not None
            with self.window.client() if self.window is not None else contextlib.nullcontext():
                self._client.submit(buffered)

    def measurements(self) -> dict[str, float]:
        """The figures of the last batch, from its submission until the queues were
        empty (the bench runner's hook: it reports them beside its own)."""
        figures = None if self.window is None else self.window.figures
        return {} if figures is None else dict(figures)

    def _idle(self) -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                 "ApproximateNumberOfMessagesDelayed"]
        for url in self._urls:
            attributes = self.config.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)
            if any(int(v) for v in attributes["Attributes"].values()):
                return False
        return True

    def run(self, until: Callable[[], bool] | None = None, timeout: float = 1800.0) -> bool:
        """Wait until ``until()`` holds, or (without it) until every queue is empty. The
        queues are asked only once the runner has been quiet for ``QUIET`` seconds: each
        question is five requests to the server the host is measured on."""
        deadline = time.monotonic() + timeout
        idle, seen, quiet_since = 0, -1, time.monotonic()
        while time.monotonic() < deadline:
            if until is not None:
                if until():
                    return True
                time.sleep(0.1)
                continue
            now = time.monotonic()
            if self.runner.active or self.runner.invocations != seen:
                idle, seen, quiet_since = 0, self.runner.invocations, now
            elif now - quiet_since >= QUIET:
                idle = idle + 1 if self._idle() else 0
                if idle >= 2:
                    if self.window is not None and self._submitted:
                        self.window.close(self._submitted)
                        self._submitted = 0
                    return True
                if not idle:  # messages waiting (delayed ones, say): ask again later
                    quiet_since = now
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.runner.stop()


@contextlib.contextmanager
def aws_local(app: App, partitions: int, endpoint: str | None = None) -> Iterator[AwsLocalHost]:
    """The bench host ``aws-local``: on ``endpoint`` or on a moto server of its own."""
    with contextlib.ExitStack() as stack:
        moto_pid = None
        if endpoint is None:
            endpoint, moto_pid = stack.enter_context(moto_server())
        meter = CallMeter(client_too=True)  # the moto share counts the client's calls too
        meter.install()
        stack.callback(meter.uninstall)
        host = AwsLocalHost(app, partitions, endpoint, window=Window(meter, moto_pid))
        stack.callback(host.close)
        yield host


@dataclass
class Figures:
    workload: str
    partitions: int
    n: int
    seconds: float
    per_second: float
    host_cpu_ms: float  # per orchestration: this process (runner, handlers, boto3)
    moto_cpu_ms: float  # per orchestration: the moto server process
    calls: float  # AWS calls per orchestration
    moto_busy_share: float  # of wall time with at least one call in flight
    errors: int
    detail: dict[str, Any] = field(default_factory=dict)


def _measure(name: str, host: AwsLocalHost, meter: CallMeter, moto_pid: int | None, n: int,
             body: Callable[[], None], verify: Callable[[], int]) -> Figures:
    """Time ``body`` (until every queue is empty), then count ``verify()``'s errors."""
    meter.reset()
    invocations_before, host.host.store.commits = host.runner.invocations, 0
    cpu, main_cpu = time.process_time(), time.thread_time()
    moto_cpu, wall = process_cpu(moto_pid or -1), time.perf_counter()
    body()
    seconds = time.perf_counter() - wall
    # the host's threads only: the main thread is the client (posting, waiting)
    host_cpu = (time.process_time() - cpu) - (time.thread_time() - main_cpu)
    moto = process_cpu(moto_pid or -1) - moto_cpu
    calls, busy = meter.calls, meter.busy
    invocations = host.runner.invocations - invocations_before
    commits = host.host.store.commits
    operations = {k: round(v / n, 2) for k, v in sorted(meter.operations.items())}
    errors = verify()
    return Figures(name, host.config.partitions, n, seconds, n / seconds,
                   1000 * host_cpu / n, 1000 * moto / n, calls / n, busy / seconds, errors,
                   {"invocations": invocations, "commits": commits,
                    "calls_per_item": operations})


def post(host: AwsLocalHost, requests: Sequence[dict[str, Any]]) -> None:
    """Post start requests to the ingress queue, ten to a call."""
    url = host.config.queue_url(host.config.ingress_queue)
    for start in range(0, len(requests), 10):
        entries = [{"Id": str(n), "MessageBody": json.dumps(r)}
                   for n, r in enumerate(requests[start:start + 10])]
        host.config.sqs.send_message_batch(QueueUrl=url, Entries=entries)


def hello_sequence(host: AwsLocalHost, n: int, via: str) -> tuple[Callable[[], None],
                                                                   Callable[[], int]]:
    client = host.client()
    expected = w.expected_sequence(3)
    tag = uuid.uuid4().hex[:6]
    ids = [f"hello-{tag}-{i}" for i in range(n)]

    if via == "backlog":  # every start waits in the partition queues before the clock runs
        host.runner.stop()
        host.host.sender.send([
            requests.start(host.host.schema, host.config.partitions, host.config.epoch, iid,
                           w.HelloSequence(length=3)) for iid in ids])
        host.runner = host.new_runner()

    def body() -> None:
        if via == "backlog":
            host.runner.start()
        elif via == "ingress":
            post(host, [{"orchestration": "HelloSequence", "input": {"length": 3},
                         "instance_id": iid} for iid in ids])
        else:
            for iid in ids:
                client.start(w.HelloSequence(length=3), instance_id=iid)
        host.run()

    def verify() -> int:
        return sum(1 for iid in ids if (s := client.status(iid)) is None or s.result != expected)

    return body, verify


def bank(host: AwsLocalHost, n: int, via: str, accounts: int = 50) -> tuple[
        Callable[[], None], Callable[[], int]]:
    client = host.client()
    rng = random.Random(7)
    tag = uuid.uuid4().hex[:6]
    transfers = [(f"transfer-{tag}-{i}", rng.randrange(accounts), rng.randrange(accounts),
                  rng.randint(1, 300)) for i in range(n)]

    def body() -> None:
        if via == "ingress":
            post(host, [{"orchestration": "Transfer", "instance_id": iid,
                         "input": {"source": s, "target": t, "amount": a}}
                        for iid, s, t, a in transfers])
        else:
            for iid, s, t, a in transfers:
                client.start(w.Transfer(source=s, target=t, amount=a), instance_id=iid)
        host.run()

    def verify() -> int:
        balances: list[int] = [client.perform(w.Balance(account=a)) for a in range(accounts)]
        unfinished = sum(1 for iid, *_ in transfers
                         if (s := client.status(iid)) is None or s.status != "completed")
        return unfinished + int(sum(balances) != 1000 * accounts) + sum(b < 0 for b in balances)

    return body, verify


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosts.aws.bench")
    parser.add_argument("--endpoint", default=None)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--workload", choices=["hello-sequence", "bank", "all"], default="all")
    parser.add_argument("--pollers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=100,
                        help="messages per invocation at most (10 plays a FIFO queue's cap)")
    parser.add_argument("--via", choices=["ingress", "client", "backlog"], default="ingress",
                        help="start orchestrations by posting to the ingress queue (ten to "
                        "a call), with the client API (one start at a time), or (hello "
                        "only) queue them all before the runner starts")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    meter = CallMeter()
    meter.install()
    results: list[Figures] = []
    with contextlib.ExitStack() as stack:
        endpoint: str | None
        endpoint, moto_pid = args.endpoint, None
        if endpoint is None:
            endpoint, moto_pid = stack.enter_context(moto_server())
        for workload in ("hello-sequence", "bank"):
            if args.workload not in (workload, "all"):
                continue
            host = AwsLocalHost(w.app, args.partitions, endpoint, args.pollers,
                                args.batch_size)
            try:
                client = host.client()
                if workload == "bank":
                    for a in range(50):
                        client.fork(w.Open(account=a, amount=1000))
                    host.run()
                else:
                    client.perform(w.HelloSequence(length=1))  # every partition started
                body, verify = (hello_sequence if workload == "hello-sequence" else bank)(
                    host, args.n, args.via)
                figures = _measure(workload, host, meter, moto_pid, args.n, body, verify)
                figures.detail["via"] = args.via
                figures.detail["batch_size"] = args.batch_size
                results.append(figures)
            finally:
                host.close()
    meter.uninstall()
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return 0
    print(f"starts via {args.via}, batches of at most {args.batch_size}; host CPU excludes "
          "the client (the main thread)")
    print(f"{'workload':<16}{'P':>3}{'n':>6}{'s':>8}{'orch/s':>9}{'host CPU':>10}"
          f"{'moto CPU':>10}{'calls':>7}{'moto busy':>11}{'err':>5}")
    for r in results:
        print(f"{r.workload:<16}{r.partitions:>3}{r.n:>6}{r.seconds:>8.1f}{r.per_second:>9.1f}"
              f"{r.host_cpu_ms:>8.2f}ms{r.moto_cpu_ms:>8.2f}ms{r.calls:>7.1f}"
              f"{100 * r.moto_busy_share:>10.0f}%{r.errors:>5}")
        print(f"    invocations {r.detail['invocations']}, commits {r.detail['commits']}, "
              "calls per item: "
              + ", ".join(f"{k} {v}" for k, v in r.detail["calls_per_item"].items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
