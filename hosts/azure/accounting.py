"""Where an ``azure-local`` benchmark run spends its time: storage requests and Event Hubs
sends counted and timed by kind, and the CPU of this process, Azurite and the Event Hubs
stand-in, per item.

``python -m hosts.azure.accounting hello-sequence 300`` (or ``bank 200``) runs one
workload of ``reactive bench`` on the ``azure-local`` host and prints the figures for the
workload's timed part. A measuring tool: it times every request by wrapping the storage
SDK's HTTP transport and the Event Hubs producer's ``send_batch`` for the whole process.
"""

from __future__ import annotations

import argparse
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from azure.core.pipeline.transport import RequestsTransport
from azure.eventhub import EventHubProducerClient

from hosts.azure.bench import AzureLocalBench
from hosts.bench import runner
from hosts.bench import workloads as w

EVENTHUBS = "eventhubs send_batch"
_NAMES = re.compile(r"[0-9a-f]{6,}|\d+")


@dataclass
class Calls:
    """Requests per kind: how many, and their wall time summed over threads."""

    counts: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            self.seconds[kind] = self.seconds.get(kind, 0.0) + seconds

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.seconds.clear()


def request_kind(method: str, url: str) -> str:
    """``PUT status/p#/w/#.#`` and the like: the blob name with its numbers blanked, the
    container-level operations by their ``comp``."""
    path, _, query = url.partition("?")
    parts = path.split("/", 5)  # scheme, '', host, account, container, blob name
    name = parts[5] if len(parts) > 5 else "(container)"
    comp = re.search(r"comp=(\w+)", query)
    return f"{method} {_NAMES.sub('#', name)}" + (f" ({comp.group(1)})" if comp else "")


@contextmanager
def timed_calls(calls: Calls) -> Iterator[None]:
    """Time every storage request and Event Hubs send this process makes."""
    send: Callable[..., Any] = RequestsTransport.send
    send_batch: Callable[..., Any] = EventHubProducerClient.send_batch

    def timed_send(self: RequestsTransport, request: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return send(self, request, **kwargs)
        finally:
            calls.add(request_kind(request.method, request.url), time.perf_counter() - started)

    def timed_send_batch(self: EventHubProducerClient, *args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return send_batch(self, *args, **kwargs)
        finally:
            calls.add(EVENTHUBS, time.perf_counter() - started)

    RequestsTransport.send = timed_send
    EventHubProducerClient.send_batch = timed_send_batch  # type: ignore[method-assign]
    try:
        yield
    finally:
        RequestsTransport.send = send
        EventHubProducerClient.send_batch = send_batch  # type: ignore[method-assign]


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) a process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Counted(AzureLocalBench):
    """The bench host, with the counters reset when the workload's timed part starts
    (its batch of starts) and read when its run ends."""

    def __init__(self, partitions: int, calls: Calls) -> None:
        super().__init__(w.app, partitions)
        self.calls = calls
        self.started: tuple[float, dict[str, float]] | None = None
        self.figures: tuple[float, dict[str, float], dict[str, int], dict[str, float]] | None
        self.figures = None

    def processes(self) -> dict[str, int]:
        found = {"host": os.getpid()}
        if self.services is not None:
            azurite, standin = self.services.pids()
            found.update(azurite=azurite, standin=standin)
        return found

    @contextmanager
    def batch(self) -> Iterator[None]:
        self.calls.reset()
        cpu = {name: process_cpu(pid) for name, pid in self.processes().items()}
        self.started = (time.perf_counter(), cpu)
        with super().batch():
            yield

    def run(self, until: Callable[[], bool] | None = None) -> bool:
        done = super().run(until)
        if self.started is not None and self.figures is None:
            wall, cpu = self.started
            now = {name: process_cpu(pid) for name, pid in self.processes().items()}
            with self.calls.lock:
                counts, seconds = dict(self.calls.counts), dict(self.calls.seconds)
            self.figures = (time.perf_counter() - wall,
                            {k: now[k] - cpu[k] for k in now}, counts, seconds)
        return done


def report(workload: str, n: int, partitions: int = 4) -> str:
    calls = Calls()
    with timed_calls(calls):
        host = _Counted(partitions, calls)
        try:
            if workload == "hello-sequence":
                result = runner.hello(host, "azure-local", partitions, n, 3)
            elif workload == "bank":
                result = runner.bank(host, "azure-local", partitions, n)
            else:
                raise SystemExit(f"workload must be hello-sequence or bank, not {workload!r}")
        finally:
            host.close()
    assert host.figures is not None
    wall, cpu, counts, seconds = host.figures
    storage = sum(s for k, s in seconds.items() if k != EVENTHUBS)
    lines = [
        f"{workload} n={n}: {result.throughput:.1f}/s over the whole workload "
        f"({result.errors} errors); its submit-and-run part took {wall:.2f} s",
        "CPU per item (ms): " + ", ".join(f"{k} {1000 * v / n:.1f}" for k, v in cpu.items()),
        f"storage requests per item {sum(c for k, c in counts.items() if k != EVENTHUBS) / n:.2f}"
        f", their time summed over threads {storage / wall:.0%} of the wall time; "
        f"Event Hubs sends per item {counts.get(EVENTHUBS, 0) / n:.2f}, "
        f"{seconds.get(EVENTHUBS, 0.0) / wall:.0%}",
    ]
    for kind in sorted(counts, key=lambda k: -seconds[k]):
        each = 1000 * seconds[kind] / counts[kind]
        lines.append(f"  {counts[kind] / n:6.2f}/item {each:7.1f} ms "
                     f"{seconds[kind] / wall:5.0%}  {kind}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=("hello-sequence", "bank"))
    parser.add_argument("n", type=int)
    args = parser.parse_args()
    print(report(args.workload, args.n))


if __name__ == "__main__":
    main()
