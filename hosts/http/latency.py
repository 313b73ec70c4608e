"""Measure a server's start-and-wait latency and throughput from this (separate) process:

    python -m hosts.http.latency --url URL [--api-key KEY] [--name Hello] [-n 200]
                                 [--concurrency 1] [--input JSON] [--one-request]

Each sample starts an instance (``POST /api/orchestrations/NAME``) and long-polls its
``/wait`` until it completes (or, with ``--one-request``, starts it with ``?wait=``), over
kept-alive connections. Prints p50/p90/p99 and orchestrations per second.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Sequence

import httpx


def _sample(http: httpx.Client, name: str, body: bytes, one_request: bool) -> float:
    instance_id = uuid.uuid4().hex
    started = time.perf_counter()
    params: dict[str, str | float] = {"id": instance_id}
    if one_request:
        params["wait"] = 60
    response = http.post(f"/api/orchestrations/{name}", params=params, content=body,
                         headers={"content-type": "application/json"})
    if response.status_code == 202:
        response = http.get(f"/api/instances/{instance_id}/wait", params={"timeout": 60})
    elapsed = time.perf_counter() - started
    data = response.json()
    if response.status_code != 200 or data.get("status") != "completed":
        raise RuntimeError(f"{instance_id}: {response.status_code} {data}")
    return elapsed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosts.http.latency")
    parser.add_argument("--url", required=True)
    parser.add_argument("--api-key", default=os.environ.get("REACTIVE_API_KEY"))
    parser.add_argument("--name", default="Hello")
    parser.add_argument("--input", default="{}")
    parser.add_argument("-n", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--one-request", action="store_true")
    args = parser.parse_args(argv)
    headers = {"x-api-key": args.api_key} if args.api_key else {}
    body = args.input.encode()
    json.loads(body)
    limits = httpx.Limits(max_connections=args.concurrency + 1)
    with httpx.Client(base_url=args.url, headers=headers, timeout=120, limits=limits) as http:
        for _ in range(args.warmup):
            _sample(http, args.name, body, args.one_request)
        samples: list[float] = []
        lock = threading.Lock()
        remaining = [args.n]

        def worker() -> None:
            while True:
                with lock:
                    if remaining[0] == 0:
                        return
                    remaining[0] -= 1
                took = _sample(http, args.name, body, args.one_request)
                with lock:
                    samples.append(took)

        began = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - began
    ms = [s * 1000 for s in samples]
    print(
        f"{len(ms)} x {args.name} (concurrency {args.concurrency}"
        f"{', one request' if args.one_request else ''}): "
        f"p50 {statistics.median(ms):.2f} ms, p90 {_percentile(ms, 0.9):.2f} ms, "
        f"p99 {_percentile(ms, 0.99):.2f} ms, {len(ms) / wall:,.0f} orchestrations/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
