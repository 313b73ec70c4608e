"""Where an ``azure-local`` benchmark run spends its time: storage requests and Event Hubs
sends counted and timed by kind, and the CPU of this process, Azurite and the Event Hubs
stand-in, per item.

``python -m hosts.azure.accounting hello-sequence 300`` (or ``bank 200``) runs one
workload of ``reactive bench`` on the ``azure-local`` host and prints the figures for the
workload's timed part. A measuring tool: it times every request by wrapping the storage
SDK's HTTP transport and the Event Hubs producer's ``send_batch`` for the whole process.

``--hops`` adds where a hop's latency goes: from a message's enqueued time at the hub
(the sending commit's send) until the receiving partition's commit that applies it is
saved, split into the wait for the receiving partition's previous invocation, the
receive after it was free, and the invocation up to its append; and per invocation, its
steps after the append (sends, status publish) that keep the partition busy.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
from azure.core.pipeline.transport import RequestsTransport
from azure.eventhub import EventHubProducerClient

from hosts.azure.bench import AzureLocalBench
from hosts.azure.events import partition_of
from hosts.azure.host import BatchReport
from hosts.azure.sender import WAKE
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


@dataclass
class _Invocation:
    partition: int
    started: float  # epoch seconds, as the hub's enqueued times
    free_at: float  # when the partition's previous invocation ended
    enqueued: list[float]
    steps: dict[str, float] = field(default_factory=dict)
    ended: float = 0.0


class Hops:
    """Times each partition invocation's steps (through the host's hook) and the
    enqueued times of the events it got."""

    def __init__(self) -> None:
        self.invocations: list[_Invocation] = []
        self.recording = False
        self._current = threading.local()
        self._ended: dict[int, float] = {}
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self.invocations.clear()
            self.recording = True

    def stop(self) -> None:
        self.recording = False

    def attach(self, host: Any) -> None:
        """Wrap ``host.on_partition_events`` (an :class:`AzureHost`) and set its hook."""
        handle: Callable[[list[func.EventHubEvent]], BatchReport] = host.on_partition_events

        def timed(events: list[func.EventHubEvent]) -> BatchReport:
            started = time.time()
            enqueued = [e.enqueued_time.timestamp() for e in events
                        if e.enqueued_time is not None and e.get_body() != WAKE]
            with self._lock:
                partition = partition_of(events)
                partition = -1 if partition is None else partition
                invocation = _Invocation(partition, started, self._ended.get(partition, 0.0),
                                         enqueued)
            self._current.invocation = invocation
            try:
                return handle(events)
            finally:
                invocation.ended = time.time()
                self._current.invocation = None
                with self._lock:
                    self._ended[partition] = invocation.ended
                    if self.recording and "saved" in invocation.steps:
                        self.invocations.append(invocation)

        host.on_partition_events = timed
        host.hook = self._step

    def _step(self, step: str) -> None:
        invocation: _Invocation | None = getattr(self._current, "invocation", None)
        if invocation is not None:
            invocation.steps.setdefault(step, time.time())

    def report(self) -> list[str]:
        with self._lock:
            done = list(self.invocations)
        if not done:
            return ["hops: no invocation committed"]
        hop, busy, receive, to_save = [], [], [], []
        for i in done:
            saved = i.steps["saved"]
            for sent in i.enqueued:
                hop.append(saved - sent)
                busy.append(max(0.0, i.free_at - sent))
                receive.append(max(0.0, i.started - max(sent, i.free_at)))
                to_save.append(saved - i.started)
        lines = [
            f"hops: {len(hop)} messages in {len(done)} committing invocations "
            f"({len(hop) / len(done):.1f} per invocation); ms mean, p50, p90:",
            f"  {_spread(hop)}  hop: enqueued until the receiver's commit is saved",
            f"  {_spread(busy)}    waiting for the partition's previous invocation",
            f"  {_spread(receive)}    receive once the partition was free",
            f"  {_spread(to_save)}    invocation start to saved (load, process, append)",
        ]
        for first, then in (("saved", "sent"), ("sent", "published")):
            gaps = [i.steps[then] - i.steps[first] for i in done if then in i.steps]
            lines.append(f"  {_spread(gaps)}  per invocation: {first} until {then}")
        lines.append(f"  {_spread([i.ended - i.started for i in done])}  per invocation: "
                     "whole")
        return lines


def _spread(seconds: list[float]) -> str:
    if not seconds:
        return "     -      -      -"
    ordered = sorted(seconds)
    mean = statistics.fmean(ordered)
    p50, p90 = ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.9)]
    return f"{1000 * mean:6.1f} {1000 * p50:6.1f} {1000 * p90:6.1f}"


def process_cpu(pid: int) -> float:
    """Seconds of CPU (user + system) a process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Counted(AzureLocalBench):
    """The bench host, with the counters reset when the workload's timed part starts
    (its batch of starts) and read when its run ends."""

    def __init__(self, partitions: int, calls: Calls, hops: Hops | None = None) -> None:
        super().__init__(w.app, partitions)
        self.calls = calls
        self.hops = hops
        if hops is not None:
            hops.attach(self.served.host)
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
        if self.hops is not None:
            self.hops.reset()
        cpu = {name: process_cpu(pid) for name, pid in self.processes().items()}
        self.started = (time.perf_counter(), cpu)
        with super().batch():
            yield

    def run(self, until: Callable[[], bool] | None = None) -> bool:
        done = super().run(until)
        if self.started is not None and self.figures is None:
            if self.hops is not None:
                self.hops.stop()
            wall, cpu = self.started
            now = {name: process_cpu(pid) for name, pid in self.processes().items()}
            with self.calls.lock:
                counts, seconds = dict(self.calls.counts), dict(self.calls.seconds)
            self.figures = (time.perf_counter() - wall,
                            {k: now[k] - cpu[k] for k in now}, counts, seconds)
        return done


def report(workload: str, n: int, partitions: int = 4, hops: bool = False) -> str:
    calls = Calls()
    timing = Hops() if hops else None
    with timed_calls(calls):
        host = _Counted(partitions, calls, timing)
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
    if timing is not None:
        lines += timing.report()
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workload", choices=("hello-sequence", "bank"))
    parser.add_argument("n", type=int)
    parser.add_argument("--hops", action="store_true",
                        help="also split the latency of a message's hop between partitions")
    args = parser.parse_args()
    print(report(args.workload, args.n, hops=args.hops))


if __name__ == "__main__":
    main()
