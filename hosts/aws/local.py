"""Run an app locally on a moto server (or any SQS and S3 endpoint), playing the part of
Lambda's event source mappings and the timer schedule:

    python -m hosts.aws.local samples.hello.app:app --partitions 4 \\
        --endpoint-url http://127.0.0.1:5000

Each queue has its own pollers (threads; several for one queue play Lambda scaling out).
A poller long-polls its queue, gathers a batch for up to ``batching_window`` seconds (as
``MaximumBatchingWindowInSeconds`` does), builds the event dict Lambda builds, invokes the
same handler a deployed function runs, and deletes what the partial batch response does
not name. Records the handler fails are made visible again after ``retry_delay`` seconds
(Lambda leaves them invisible for the whole visibility timeout; locally that only slows
things down). A thread runs the schedule handler at once and then every
``schedule_interval`` seconds: a backstop, as the deployed schedule is (an invocation leaves
a delayed wake-up message for its next timer itself), so a tick every second would only
read every partition's health object again and again.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hosts.aws.config import AwsConfig
from hosts.aws.handler import AwsHost
from hosts.aws.provision import provision
from reactive import App

log = logging.getLogger("reactive.aws.local")
RECEIVE_MAX = 10  # messages one ReceiveMessage returns at most
SCHEDULE_INTERVAL = 10.0  # seconds between schedule ticks (the template: a minute)

Handler = Callable[[dict[str, Any], Any], Mapping[str, Any]]


@dataclass
class FakeContext:
    """The parts of the Lambda context object the handlers use."""

    timeout: float
    function_name: str = "reactive-local"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout - (time.monotonic() - self.started)) * 1000))


def lambda_record(message: Mapping[str, Any], arn: str, region: str) -> dict[str, Any]:
    """The record Lambda's SQS event source builds from a received message."""
    attributes = {
        name: {
            "stringValue": value.get("StringValue"),
            "binaryValue": value.get("BinaryValue"),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in (message.get("MessageAttributes") or {}).items()
    }
    for value in attributes.values():
        for key in ("stringValue", "binaryValue"):
            if value[key] is None:
                del value[key]
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes") or {}),
        "messageAttributes": attributes,
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


@dataclass
class EventSourceMapping:
    """One event source mapping: a queue, its handler and how it batches."""

    queue: str
    handler: Handler
    batch_size: int = 100
    batching_window: float = 0.1
    pollers: int = 1
    timeout: float = 60.0  # the function timeout the context reports


class LocalRunner:
    """Pollers for every mapping plus the schedule thread; :meth:`start` and :meth:`stop`."""

    def __init__(
        self,
        host: AwsHost,
        *,
        batch_size: int = 100,
        batching_window: float = 0.1,
        partition_pollers: int = 1,
        ingress_pollers: int = 2,
        wait_seconds: int = 1,
        retry_delay: int = 1,
        schedule_interval: float | None = SCHEDULE_INTERVAL,
    ) -> None:
        self.host = host
        self.config = host.config
        self.wait_seconds = wait_seconds
        self.retry_delay = retry_delay
        self.schedule_interval = schedule_interval
        self.mappings = [
            EventSourceMapping(self.config.partition_queue(p), host.on_partition_batch,
                               batch_size, batching_window, partition_pollers)
            for p in range(self.config.partitions)
        ]
        self.mappings.append(EventSourceMapping(self.config.ingress_queue, host.on_ingress_batch,
                                                batch_size, batching_window, ingress_pollers))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.invocations = 0
        self.active = 0  # invocations under way
        self.errors = 0
        self._count_lock = threading.Lock()
        self.region = self.config.region or self.config.sqs.meta.region_name

    def start(self) -> LocalRunner:
        for mapping in self.mappings:
            url = self.config.queue_url(mapping.queue)
            arn = self.config.sqs.get_queue_attributes(
                QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            for n in range(mapping.pollers):
                # made here, not in the thread: a client costs CPU to make, which belongs
                # to the start, not to the first batches
                sqs = self.config.client("sqs")
                thread = threading.Thread(target=self._poll, args=(mapping, url, arn, sqs),
                                          name=f"poll-{mapping.queue}-{n}", daemon=True)
                self._threads.append(thread)
        if self.schedule_interval is not None:
            self._threads.append(threading.Thread(target=self._schedule, name="schedule",
                                                  daemon=True))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.wait_seconds + 30)
        self._threads.clear()

    def __enter__(self) -> LocalRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _schedule(self) -> None:
        assert self.schedule_interval is not None
        # a tick at once rings the partitions that never committed (startup orchestrations)
        while not self._stop.is_set():
            try:
                self.host.on_schedule({}, None)
            except Exception:
                log.exception("the schedule handler failed")
            if self._stop.wait(self.schedule_interval):
                break

    def _receive(self, sqs: Any, url: str, count: int, wait: int) -> list[dict[str, Any]]:
        response = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=min(RECEIVE_MAX, count), WaitTimeSeconds=wait,
            AttributeNames=["All"], MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _poll(self, mapping: EventSourceMapping, url: str, arn: str, sqs: Any) -> None:
        while not self._stop.is_set():
            try:
                batch = self._receive(sqs, url, mapping.batch_size, self.wait_seconds)
                if not batch:
                    continue
                window_end = time.monotonic() + mapping.batching_window
                more = batch
                # a receive that came back short found the queue drained: asking again
                # would cost a request (an expensive one on moto) to learn nothing
                while (len(more) == RECEIVE_MAX and len(batch) < mapping.batch_size
                       and time.monotonic() < window_end):
                    more = self._receive(sqs, url, mapping.batch_size - len(batch), 0)
                    batch.extend(more)
                self.invoke(sqs, mapping, url, arn, batch)
            except Exception:
                log.exception("poller of %s failed; it goes on", mapping.queue)
                self._stop.wait(0.5)

    def invoke(
        self, sqs: Any, mapping: EventSourceMapping, url: str, arn: str, batch: list[dict[str, Any]]
    ) -> None:
        """Invoke the handler on one batch and settle the messages as Lambda would."""
        event = {"Records": [lambda_record(m, arn, self.region) for m in batch]}
        with self._count_lock:
            self.invocations += 1
            self.active += 1
        try:
            response = mapping.handler(event, FakeContext(mapping.timeout))
            failed = {str(f["itemIdentifier"]) for f in response.get("batchItemFailures", [])}
        except Exception:
            log.exception("handler for %s raised: the whole batch comes back", mapping.queue)
            with self._count_lock:
                self.errors += 1
            failed = {m["MessageId"] for m in batch}
        finally:
            with self._count_lock:
                self.active -= 1
        done = [m for m in batch if m["MessageId"] not in failed]
        back = [m for m in batch if m["MessageId"] in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]}
                for n, m in enumerate(done[start:start + 10])])
        for start in range(0, len(back), 10):
            sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"],
                 "VisibilityTimeout": self.retry_delay}
                for n, m in enumerate(back[start:start + 10])])


def serve(
    app: App,
    partitions: int,
    endpoint_url: str | None = None,
    *,
    bucket: str = "reactive-local",
    stem: str = "reactive",
    region: str = "us-east-1",
    partition_pollers: int = 1,
    ingress_pollers: int = 2,
    stop: threading.Event | None = None,
    ready: Callable[[LocalRunner], None] | None = None,
) -> int:
    """Provision the deployment on the endpoint, run it until ``stop`` is set (or Ctrl-C);
    the exit status."""
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint_url:
        raise SystemExit("aws-local needs an endpoint: --endpoint-url or AWS_ENDPOINT_URL "
                         "(start one with: moto_server -H 127.0.0.1 -p 5000)")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    config = AwsConfig(bucket=bucket, partitions=partitions, stem=stem,
                       endpoint_url=endpoint_url, region=region)
    provision(config)
    host = AwsHost(app, config)
    runner = LocalRunner(host, partition_pollers=partition_pollers,
                         ingress_pollers=ingress_pollers)
    stop = stop or threading.Event()
    with runner:
        log.info("serving %s on %d partitions; post requests to %s", app.name, partitions,
                 config.queue_url(config.ingress_queue))
        if ready is not None:
            ready(runner)
        else:
            print(f"serving {app.name} with {partitions} partitions on {endpoint_url}")
            print(f"ingress queue: {config.queue_url(config.ingress_queue)}")
            print(f"bucket: {bucket}    (Ctrl-C stops)", flush=True)
        try:
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    return 0


def cli_serve(args: argparse.Namespace) -> int:
    """``reactive serve MODULE:APP --host aws-local [--partitions N] [--endpoint-url URL]``:
    the hook for the ``reactive`` command (it reads ``app``, ``partitions`` and
    ``endpoint_url`` from the parsed arguments)."""
    from hosts.aws.entry import load_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    partitions = getattr(args, "partitions", None) or 4
    return serve(load_app(args.app), partitions, getattr(args, "endpoint_url", None))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hosts.aws.local", description="run an app on a local AWS endpoint")
    parser.add_argument("app", metavar="MODULE:APP")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--endpoint-url", default=None)
    parser.add_argument("--bucket", default="reactive-local")
    parser.add_argument("--stem", default="reactive")
    parser.add_argument("--pollers", type=int, default=1, help="pollers per partition queue")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from hosts.aws.entry import load_app

    return serve(load_app(args.app), args.partitions, args.endpoint_url, bucket=args.bucket,
                 stem=args.stem, partition_pollers=args.pollers)


if __name__ == "__main__":
    raise SystemExit(main())
