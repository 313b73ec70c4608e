"""Measure a server's start-and-wait latency and throughput from this (separate) process:

    python -m hosts.http.latency --url URL [--api-key KEY] [--name Hello] [-n 200]
                                 [--concurrency 1] [--input JSON] [--one-request]

Each sample starts an instance (``POST /api/orchestrations/NAME``) and long-polls its
``/wait`` until it completes (or, with ``--one-request``, starts it with ``?wait=``), over
kept-alive connections. Prints p50/p95/p99 and orchestrations per second (``--json``:
as JSON). The requests in flight share one asyncio event loop, so that the client's own
cost per request stays small next to the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Sequence

import aiohttp

JSON = {"content-type": "application/json"}


async def _sample(http: aiohttp.ClientSession, name: str, body: bytes, one_request: bool) -> float:
    instance_id = uuid.uuid4().hex
    started = time.perf_counter()
    params = {"id": instance_id, "wait": "60"} if one_request else {"id": instance_id}
    async with http.post(f"/api/orchestrations/{name}", params=params, data=body,
                         headers=JSON) as response:
        status, data = response.status, await response.json()
    if status == 202:
        async with http.get(f"/api/instances/{instance_id}/wait",
                            params={"timeout": "60"}) as response:
            status, data = response.status, await response.json()
    elapsed = time.perf_counter() - started
    if status != 200 or data.get("status") != "completed":
        raise RuntimeError(f"{instance_id}: {status} {data}")
    return elapsed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(url: str, headers: dict[str, str], name: str, body: bytes, n: int,
                  concurrency: int, warmup: int, one_request: bool) -> tuple[list[float], float]:
    """``n`` samples with ``concurrency`` in flight over a pool of kept-alive connections
    (one per request in flight, opened during the warm-up): seconds each, and the wall
    time of the lot."""
    # aiohttp rather than httpx: its C parser costs the client about a tenth of the CPU per
    # request, which matters with the client on the same two cores as the server
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(base_url=url, headers=headers, connector=connector,
                                     timeout=timeout) as http:
        await asyncio.gather(*(_sample(http, name, body, one_request)
                               for _ in range(max(warmup, concurrency))))
        samples: list[float] = []
        remaining = [n]

        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                samples.append(await _sample(http, name, body, one_request))

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return samples, time.perf_counter() - began


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
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    headers = {"x-api-key": args.api_key} if args.api_key else {}
    body = args.input.encode()
    json.loads(body)
    samples, wall = asyncio.run(measure(args.url, headers, args.name, body, args.n,
                                        args.concurrency, args.warmup, args.one_request))
    ms = [s * 1000 for s in samples]
    figures = {
        "n": len(ms), "concurrency": args.concurrency, "one_request": args.one_request,
        "p50_ms": statistics.median(ms), "p90_ms": _percentile(ms, 0.9),
        "p95_ms": _percentile(ms, 0.95), "p99_ms": _percentile(ms, 0.99),
        "per_second": len(ms) / wall,
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print(
        f"{len(ms)} x {args.name} (concurrency {args.concurrency}"
        f"{', one request' if args.one_request else ''}): "
        f"p50 {figures['p50_ms']:.2f} ms, p95 {figures['p95_ms']:.2f} ms, "
        f"p99 {figures['p99_ms']:.2f} ms, {figures['per_second']:,.0f} orchestrations/s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
