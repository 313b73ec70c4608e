"""Measure the queue layouts on an SQS endpoint (a moto server, locally):

    python -m hosts.aws.measure [http://127.0.0.1:5000] [--partitions 4] [--messages 400]

For each layout it sends ``messages`` small messages spread over the partitions in batches
of 10, then drains them with one consumer per partition (receive up to 10, delete the
batch), and prints messages per second for both, the requests made, and the largest
batch one partition's consumer could take in one receive cycle. Layouts: one FIFO queue
with a message group per partition, a FIFO queue per partition, a standard queue per
partition.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import boto3

BODY = json.dumps({"e": "1", "s": 0, "q": 1, "m": ["Start", 0, "x" * 150]})


@dataclass
class Figures:
    layout: str
    messages: int
    send_per_s: float
    drain_per_s: float
    send_ms_per_batch: float
    receives: int
    largest_receive: int


def _client(endpoint: str) -> Any:
    return boto3.client("sqs", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def _make(sqs: Any, name: str, fifo: bool) -> str:
    attrs = {"FifoQueue": "true"} if fifo else {}
    return str(sqs.create_queue(QueueName=name + (".fifo" if fifo else ""),
                                Attributes=attrs)["QueueUrl"])


def measure(endpoint: str, layout: str, partitions: int, messages: int) -> Figures:
    sqs = _client(endpoint)
    stem = f"m{uuid.uuid4().hex[:6]}"
    fifo = layout != "standard-per-partition"
    if layout == "fifo-one-queue":
        one = _make(sqs, stem, True)
        urls = [one] * partitions
    else:
        urls = [_make(sqs, f"{stem}-p{p}", fifo) for p in range(partitions)]
    per = messages // partitions
    batches = 0
    t0 = time.perf_counter()
    for p in range(partitions):
        for start in range(0, per, 10):
            entries: list[dict[str, Any]] = []
            for n in range(start, min(per, start + 10)):
                entry: dict[str, Any] = {"Id": str(n - start), "MessageBody": BODY}
                if fifo:
                    entry["MessageGroupId"] = f"p{p}"
                    entry["MessageDeduplicationId"] = f"{p}-{n}"
                entries.append(entry)
            sqs.send_message_batch(QueueUrl=urls[p], Entries=entries)
            batches += 1
    send_s = time.perf_counter() - t0

    counts = [0] * partitions
    receives = [0] * partitions
    largest = [0] * partitions
    total = per * partitions
    done = threading.Event()

    def consume(p: int) -> None:
        own = _client(endpoint)
        while not done.is_set():
            got = own.receive_message(QueueUrl=urls[p], MaxNumberOfMessages=10,
                                      WaitTimeSeconds=1, VisibilityTimeout=30)
            msgs = got.get("Messages", [])
            receives[p] += 1
            largest[p] = max(largest[p], len(msgs))
            if msgs:
                own.delete_message_batch(QueueUrl=urls[p], Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(msgs)])
                counts[p] += len(msgs)
            if sum(counts) >= total:
                done.set()

    t1 = time.perf_counter()
    threads = [threading.Thread(target=consume, args=(p,)) for p in range(partitions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    drain_s = time.perf_counter() - t1
    for url in set(urls):
        sqs.delete_queue(QueueUrl=url)
    return Figures(layout, total, total / send_s, total / drain_s,
                   1000 * send_s / batches, sum(receives), max(largest))


LAYOUTS = ("fifo-one-queue", "fifo-per-partition", "standard-per-partition")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("endpoint", nargs="?", default=None,
                        help="an SQS endpoint; without one a moto server is started")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        endpoint = args.endpoint
        if endpoint is None:
            from hosts.aws.bench import moto_server

            endpoint = stack.enter_context(moto_server())[0]
        rows = [measure(endpoint, layout, args.partitions, args.messages) for layout in LAYOUTS]
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
        return 0
    print(f"{'layout':<24}{'msgs':>6}{'send/s':>9}{'ms/batch':>10}{'drain/s':>9}"
          f"{'receives':>10}{'max/recv':>10}")
    for r in rows:
        print(f"{r.layout:<24}{r.messages:>6}{r.send_per_s:>9.0f}{r.send_ms_per_batch:>10.1f}"
              f"{r.drain_per_s:>9.0f}{r.receives:>10}{r.largest_receive:>10}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
