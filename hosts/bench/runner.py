"""Runs the benchmark workloads on a host and reports verified figures."""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pydantic

from hosts.bench import workloads as w
from hosts.bench.brokers import BrokerHost
from hosts.bench.progress import Meter
from hosts.cli.wording import columns
from hosts.emulator.host import Emulator
from hosts.local import LocalHost
from reactive import Client
from reactive.hosting import Partition

HOSTS = ("emulator", "local", "folder", "fifo", "eventhubs", "aws-local", "azure-local")
WORKLOADS = (
    "hello-sequence", "hello-sequence5", "fan-out", "fan-out-10k", "fan-out-100k", "counter",
    "bank", "latency", "replay", "snapshot-size", "big-partition",
)
DEFAULT_N = {
    "hello-sequence": 2000, "hello-sequence5": 2000, "fan-out": 1000, "fan-out-10k": 10_000,
    "fan-out-100k": 100_000, "counter": 5000, "bank": 1000, "latency": 50, "replay": 1000,
    "snapshot-size": 4000, "big-partition": 100_000,
}
FAN_OUTS = ("fan-out", "fan-out-10k", "fan-out-100k")


class Host(Protocol):
    def client(self) -> Client: ...
    def run(self, until: Callable[[], bool] | None = None) -> bool: ...


@dataclass
class Result:
    workload: str
    host: str
    partitions: int
    n: int
    seconds: float
    throughput: float  # items per second
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_ms_per_item: float | None = None
    errors: int = 0
    detail: dict[str, Any] = field(default_factory=dict)


def environment() -> dict[str, Any]:
    """The versions and machine a run was measured on."""
    return {
        "python": platform.python_version(),
        "pydantic": pydantic.VERSION,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


@contextmanager
def _host(kind: str, partitions: int) -> Iterator[Host]:
    if kind == "emulator":
        yield Emulator(w.app, partitions=partitions)
    elif kind == "local":
        yield LocalHost(w.app, partitions=partitions)
    elif kind == "folder":
        with tempfile.TemporaryDirectory(prefix="reactive-bench-") as folder:
            host = LocalHost(w.app, partitions=partitions, state_dir=Path(folder))
            try:
                yield host
            finally:
                host.close()
    elif kind in ("fifo", "eventhubs"):
        yield BrokerHost(w.app, kind, partitions)
    elif kind == "aws-local":
        from hosts.aws.bench import aws_local  # starts and stops its own moto server

        with aws_local(w.app, partitions) as aws:
            yield aws
    elif kind == "azure-local":
        from hosts.azure.bench import AzureLocalBench  # Azurite and the stand-in of its own

        azure = AzureLocalBench(w.app, partitions)
        try:
            yield azure
        finally:
            azure.close()
    else:
        raise ValueError(f"unknown host {kind!r}; choose from {', '.join(HOSTS)}")


def _batch(host: Host) -> AbstractContextManager[None]:
    """Submit a workload's requests as one batch where the host can (one durable write)."""
    batch = getattr(host, "batch", None)
    return batch() if batch is not None else nullcontext()


class _Clock:
    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def stop(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _timed(workload: str, host: str, partitions: int, n: int, clock: _Clock,
           errors: int, **detail: Any) -> Result:
    seconds, cpu = clock.stop()
    return Result(
        workload, host, partitions, n, seconds, n / seconds if seconds else 0.0,
        cpu_ms_per_item=1000 * cpu / n if n else None, errors=errors, detail=detail,
    )


def _finished(host: Emulator | LocalHost) -> int:
    """Orchestration instances the host's partitions hold as finished."""
    return sum(len(part.completed) for part in host.parts)


def _drive(host: Host, label: str, n: int) -> None:
    """``host.run()``, showing how many of the workload's ``n`` instances have finished
    (on the hosts whose run reports progress: the emulator and the local ones)."""
    if not isinstance(host, Emulator | LocalHost):
        host.run()
        return
    before = _finished(host)
    last = [0.0]
    with Meter(label, n) as meter:
        def report(driven: Emulator | LocalHost) -> None:
            now = time.monotonic()
            if now - last[0] >= 0.1:  # counting the finished instances is not free
                last[0] = now
                meter.update(_finished(driven) - before)

        host.run(progress=report)


def hello(host: Host, kind: str, partitions: int, n: int, length: int) -> Result:
    client = host.client()
    expected = w.expected_sequence(length)
    clock = _Clock()
    with _batch(host):
        ids = [client.start(w.HelloSequence(length=length)) for _ in range(n)]
    _drive(host, f"hello-sequence on {kind}", n)
    name = "hello-sequence" if length == 3 else f"hello-sequence{length}"
    # the clock stops when the host is done, as for bank: reading every result back
    # afterwards is the check, not the work (on a cloud host it is n status reads)
    result = _timed(name, kind, partitions, n, clock, 0)
    for iid in ids:
        status = client.status(iid)
        result.errors += status is None or status.result != expected
    return result


def fan_out(host: Host, kind: str, partitions: int, n: int, name: str = "fan-out") -> Result:
    client = host.client()
    clock = _Clock()
    total = client.perform(w.FanOut(width=n))
    return _timed(name, kind, partitions, n, clock, int(total != w.expected_fan_out(n)))


def counter(host: Host, kind: str, partitions: int, n: int, keys: int = 100) -> Result:
    client = host.client()
    clock = _Clock()
    for i in range(n):
        client.fork(w.Increment(counter=i % keys))
    host.run()
    errors = 0
    for k in range(keys):
        expected = n // keys + (1 if k < n % keys else 0)
        value = client.perform(w.CounterValue(counter=k)) if expected else 0
        errors += value != expected
    return _timed("counter", kind, partitions, n, clock, errors, keys=keys)


def bank(host: Host, kind: str, partitions: int, n: int, accounts: int = 100) -> Result:
    client = host.client()
    rng = random.Random(7)
    for a in range(accounts):
        client.fork(w.Open(account=a, amount=1000))
    host.run()
    clock = _Clock()
    ids = []
    with _batch(host):
        for _ in range(n):
            source, target = rng.randrange(accounts), rng.randrange(accounts)
            amount = rng.randint(1, 300)
            ids.append(client.start(w.Transfer(source=source, target=target, amount=amount)))
    _drive(host, f"bank on {kind}", n)
    result = _timed("bank", kind, partitions, n, clock, 0, accounts=accounts)
    balances = [client.perform(w.Balance(account=a)) for a in range(accounts)]
    statuses = [client.status(iid) for iid in ids]
    unfinished = sum(1 for s in statuses if s is None or s.status != "completed")
    negative = sum(b < 0 for b in balances)
    result.errors = unfinished + int(sum(balances) != 1000 * accounts) + negative
    result.detail["total"] = sum(balances)
    return result


def latency(host: Host, kind: str, partitions: int, n: int) -> Result:
    client = host.client()
    expected = w.expected_sequence(3)
    samples, errors = [], 0
    clock = _Clock()
    for _ in range(n):
        started = time.perf_counter()
        errors += client.perform(w.HelloSequence()) != expected
        samples.append(1000 * (time.perf_counter() - started))
    result = _timed("latency", kind, partitions, n, clock, errors)
    result.p50_ms, result.p99_ms = _percentile(samples, 0.5), _percentile(samples, 0.99)
    return result


def replay(kind: str, n: int) -> Result:
    """Cold restore of one orchestration with a history of 10, 100 ... ``n`` activities."""
    sizes = [s for s in (10, 100, 1000, 10_000) if s <= n] or [n]
    restore_ms: dict[str, float] = {}
    clock = _Clock()
    for size in sizes:
        em = Emulator(w.app, partitions=1)
        em.client().start(w.WaitAfterSequence(length=size))
        em.run()
        blob = json.dumps(em.parts[0].snapshot())
        times = []
        for _ in range(5):
            started = time.perf_counter()
            restored = Partition.restore(em.schema, json.loads(blob))
            times.append(1000 * (time.perf_counter() - started))
            assert len(restored.runs) == 1
        restore_ms[str(size)] = round(statistics.median(times), 3)
    result = _timed("replay", kind, 1, sum(sizes), clock, 0)
    result.detail = {
        "restore_ms_by_history": restore_ms,
        "us_per_record": {k: round(1000 * v / (2 * int(k)), 2) for k, v in restore_ms.items()},
    }
    return result


def snapshot_size(kind: str, partitions: int, n: int) -> Result:
    """Snapshot bytes after ``n`` completed instances, with and without retention."""
    sizes: dict[str, int] = {}
    clock = _Clock()
    for keep in (100, 1_000_000):
        app = w.app
        saved = app.keep_completed
        app.keep_completed = keep
        app._schema = None
        try:
            em = Emulator(app, partitions=partitions)
            client = em.client()
            for step in range(4):
                for _ in range(n // 4):
                    client.start(w.HelloSequence())
                em.run()
                total = sum(len(json.dumps(p.snapshot())) for p in em.parts)
                sizes[f"keep={keep} after {(step + 1) * (n // 4)}"] = total
        finally:
            app.keep_completed = saved
            app._schema = None
    result = _timed("snapshot-size", kind, partitions, n, clock, 0)
    result.detail = {"snapshot_bytes": sizes}
    return result


def big_partition(kind: str, n: int, probes: int = 200) -> Result:
    """One partition holding 1,000 ... ``n`` keyed states; after each size, ``probes``
    requests each update one state and commit alone: bytes written and CPU per commit
    must stay flat as the partition grows (a commit writes what changed)."""
    if kind not in ("local", "folder"):
        raise ValueError("big-partition measures commits: run it on --hosts local,folder")
    sizes = sorted({s for s in (1_000, 10_000, 100_000) if s < n} | {n})
    per_size: dict[str, dict[str, float]] = {}
    clock = _Clock()
    with _host(kind, 1) as host:
        assert isinstance(host, LocalHost)
        client = host.client()
        created = 0
        for size in sizes:
            with host.batch():
                for key in range(created, size):
                    client.fork(w.Increment(counter=key))
            created = size
            host.run()
            worker = host.workers[0]
            written = cpu = 0.0
            for probe in range(probes):
                client.fork(w.Increment(counter=probe * 7 % size))
                started = time.process_time()
                outcome = host.invoke(0, worker=worker)
                cpu += time.process_time() - started
                written += outcome.commit_bytes
            per_size[str(size)] = {
                "bytes_per_commit": round(written / probes),
                "cpu_ms_per_commit": round(1000 * cpu / probes, 3),
            }
        errors = int(client.perform(w.CounterValue(counter=0)) < 1)
    result = _timed("big-partition", kind, 1, created, clock, errors)
    result.detail = {"per_commit": per_size}
    return result


def run_workload(name: str, kind: str, partitions: int, n: int | None) -> Result:
    count = n if n is not None else DEFAULT_N[name]
    if name == "replay":
        return replay(kind, count)
    if name == "snapshot-size":
        return snapshot_size(kind, partitions, count)
    if name == "big-partition":
        return big_partition(kind, count)
    with _host(kind, partitions) as host:
        result = _on_host(host, name, kind, partitions, count)
        # a host may measure more about its run (the moto share of aws-local)
        measured: Callable[[], dict[str, Any]] | None = getattr(host, "measurements", None)
        if measured is not None:
            result.detail.update(measured())
        return result


def _on_host(host: Host, name: str, kind: str, partitions: int, count: int) -> Result:
    if name == "hello-sequence":
        return hello(host, kind, partitions, count, 3)
    if name == "hello-sequence5":
        return hello(host, kind, partitions, count, 5)
    if name in FAN_OUTS:
        return fan_out(host, kind, partitions, count, name)
    if name == "counter":
        return counter(host, kind, partitions, count)
    if name == "bank":
        return bank(host, kind, partitions, count)
    if name == "latency":
        return latency(host, kind, partitions, count)
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")


def format_table(results: list[Result]) -> str:
    header = ("workload", "host", "parts", "n", "seconds", "per second", "p50 ms", "p99 ms",
              "cpu ms/item", "errors")
    rows = [header]
    for r in results:
        rows.append((
            r.workload, r.host, str(r.partitions), str(r.n), f"{r.seconds:.3f}",
            f"{r.throughput:,.0f}", "" if r.p50_ms is None else f"{r.p50_ms:.2f}",
            "" if r.p99_ms is None else f"{r.p99_ms:.2f}",
            "" if r.cpu_ms_per_item is None else f"{r.cpu_ms_per_item:.3f}", str(r.errors),
        ))
    lines = columns(rows, rule=True)
    for r in results:
        if r.detail:
            lines.append(f"{r.workload} ({r.host}): {json.dumps(r.detail)}")
    return "\n".join(lines)


def run_all(
    workloads: list[str], hosts: list[str], partitions: list[int], n: int | None,
    progress: Callable[[str], None] = lambda text: print(text, file=sys.stderr),
) -> list[Result]:
    plan = []
    for kind in hosts:
        for parts in partitions:
            for name in workloads:
                once = name in ("replay", "snapshot-size")
                if once and (kind != hosts[0] or parts != partitions[0]):
                    continue  # host-independent: measured once
                if name == "big-partition" and (kind == "emulator" or parts != partitions[0]):
                    continue  # measures commits, on one partition: local hosts only
                plan.append((name, kind, parts))
    results = []
    began = time.monotonic()
    for number, (name, kind, parts) in enumerate(plan, 1):
        progress(f"[{number}/{len(plan)}] running {name} on {kind} with {parts} partitions ...")
        result = run_workload(name, kind, parts, n)
        elapsed = time.monotonic() - began
        progress(f"  {result.throughput:,.0f}/s in {result.seconds:.2f} s, "
                 f"{result.errors} errors ({number}/{len(plan)} workloads done, "
                 f"{elapsed:,.0f} s so far)")
        results.append(result)
    return results


def to_json(results: list[Result]) -> dict[str, Any]:
    return {"environment": environment(), "results": [asdict(r) for r in results]}
