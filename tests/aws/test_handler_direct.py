"""The partition handler with the real worker, driven directly with the SQS event dicts
Lambda builds from the messages really in the queues: redeliveries, concurrent
invocations of one partition, client retries."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hosts.aws.config import AwsConfig
from hosts.aws.handler import KIND_ATTRIBUTE, AwsHost
from hosts.aws.local import FakeContext, lambda_record
from hosts.aws.store import S3SnapshotStore
from reactive.hosting.client import SeamClient
from samples.counter.app import Count, IncrementMany, app
from tests.aws.events import sqs_event, sqs_record


class Driver:
    """Receives from the partition queues and invokes a host's handler by hand."""

    def __init__(self, aws: AwsConfig) -> None:
        self.aws = aws
        self.sqs = aws.client("sqs")

    def url(self, partition: int) -> str:
        return self.aws.queue_url(self.aws.partition_queue(partition))

    def receive(self, partition: int, visibility: int = 0) -> list[dict[str, Any]]:
        response = self.sqs.receive_message(
            QueueUrl=self.url(partition), MaxNumberOfMessages=10, WaitTimeSeconds=0,
            VisibilityTimeout=visibility, AttributeNames=["All"], MessageAttributeNames=["All"])
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def event(self, partition: int, messages: list[dict[str, Any]]) -> dict[str, Any]:
        arn = f"arn:aws:sqs:us-east-1:123456789012:{self.aws.partition_queue(partition)}"
        return {"Records": [lambda_record(m, arn, "us-east-1") for m in messages]}

    def invoke(self, host: AwsHost, partition: int, messages: list[dict[str, Any]]) -> set[str]:
        """Invoke; the message ids the response names as failed."""
        response = host.on_partition_batch(self.event(partition, messages), FakeContext(60))
        return {f["itemIdentifier"] for f in response["batchItemFailures"]}

    def delete(self, partition: int, messages: list[dict[str, Any]], failed: set[str]) -> None:
        for m in messages:
            if m["MessageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url(partition),
                                        ReceiptHandle=m["ReceiptHandle"])

    def run(self, host: AwsHost, redeliver: bool = False) -> int:
        """Invoke every partition until all queues are empty; with ``redeliver`` every
        batch is handed over twice (a delete that got lost); the invocations made."""
        invocations = 0
        idle_rounds = 0
        last_busy = time.monotonic()
        # idle: two empty rounds and longer than a stale batch stays invisible (1 s)
        while idle_rounds < 2 or time.monotonic() - last_busy < 1.5:
            busy = False
            for p in range(self.aws.partitions):
                messages = self.receive(p)
                if not messages:
                    continue
                busy = True
                failed = self.invoke(host, p, messages)
                invocations += 1
                if redeliver:
                    failed = self.invoke(host, p, messages)
                    invocations += 1
                self.delete(p, messages, failed)
            idle_rounds = 0 if busy else idle_rounds + 1
            if busy:
                last_busy = time.monotonic()
            else:
                time.sleep(0.1)
        return invocations


def _ring_all(host: AwsHost) -> None:
    host.ring(list(range(host.config.partitions)))


def _count(driver: Driver, host: AwsHost, counter: int) -> int:
    client = host.client()
    iid = client.start(_perform(host, Count(counter=counter)))
    driver.run(host)
    result: int = client.wait(iid, timeout=5)
    return result


def _perform(host: AwsHost, op: Any) -> Any:
    from reactive.core.builtin_ops import ClientPerform

    return ClientPerform(op=list(host.schema.encode_op(op)))


def test_redelivered_batches_apply_once(aws: AwsConfig) -> None:
    host = AwsHost(app, aws)
    driver = Driver(aws)
    client = host.client()
    ids = [client.start(IncrementMany(counter=k, times=4, parallel=k == 1)) for k in range(3)]
    driver.run(host, redeliver=True)
    assert [client.wait(i, timeout=5) for i in ids] == [[1, 2, 3, 4]] * 3
    host.forget(0)  # a new container redelivered to, after a cold start
    driver.run(AwsHost(app, aws), redeliver=True)
    assert [_count(driver, host, k) for k in range(3)] == [4, 4, 4]


def test_client_retries_start_once(aws: AwsConfig) -> None:
    host = AwsHost(app, aws)
    driver = Driver(aws)
    client = host.client()
    for _ in range(3):  # a client that retries, e.g. after a timeout
        client.start(IncrementMany(counter=7, times=2), instance_id="retried")
    driver.run(host)
    client.start(IncrementMany(counter=7, times=2), instance_id="retried")  # even when done
    driver.run(host)
    assert client.wait("retried", timeout=5) == [1, 2]
    assert _count(driver, host, 7) == 2


def _ids_on(host: AwsHost, partition: int, count: int) -> list[str]:
    found: list[str] = []
    n = 0
    while len(found) < count:
        iid = f"inst-{n}"
        if host.schema.instance_owner(iid, host.config.partitions) == partition:
            found.append(iid)
        n += 1
    return found


Race = tuple[AwsHost, AwsHost, Driver, SeamClient, list[str], list[dict[str, Any]]]


def _race_for_commit_2(aws: AwsConfig, attempts: int, visibility: int = 0) -> Race:
    """Containers ``a`` and ``b`` hold partition 2 warm at commit 1; ``a`` commits 2 with
    the first of two starts; the second start's batch is received (not yet handled)."""
    a, b = AwsHost(app, aws), AwsHost(app, aws, attempts=attempts)
    driver = Driver(aws)
    wake = sqs_event(sqs_record(aws, aws.partition_queue(2), "wake", {KIND_ATTRIBUTE: "wake"}))
    assert a.on_partition_batch(wake) == {"batchItemFailures": []}  # first start: commit 1
    assert b.on_partition_batch(wake) == {"batchItemFailures": []}  # loads commit 1
    ids = _ids_on(a, 2, 2)
    client = a.client()
    client.start(IncrementMany(counter=1, times=1), instance_id=ids[0])
    m1 = driver.receive(2)
    assert driver.invoke(a, 2, m1) == set()  # commit 2
    driver.delete(2, m1, set())
    client.start(IncrementMany(counter=2, times=1), instance_id=ids[1])
    return a, b, driver, client, ids, driver.receive(2, visibility=visibility)


def _both_ran_once(race: Race) -> None:
    a, _, driver, client, ids, _ = race
    driver.run(a)
    assert [client.wait(i, timeout=5) for i in ids] == [[1], [1]]
    assert [_count(driver, a, k) for k in (1, 2)] == [1, 1]


def test_a_stale_invocation_loses_and_its_batch_comes_back(aws: AwsConfig) -> None:
    """The second container to commit loses the fence and, told to try only once,
    acknowledges nothing and sends nothing; its batch comes back."""
    race = _race_for_commit_2(aws, attempts=1, visibility=300)
    _, b, driver, _, _, m2 = race
    sent_before = b.sender.calls
    assert driver.invoke(b, 2, m2) == {m["MessageId"] for m in m2}  # stale at commit 1
    assert b.sender.calls == sent_before  # it sent nothing
    # not poison, only late: visible again after a second, not after the 300 s
    deadline = time.monotonic() + 30
    while not (again := driver.receive(2)):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert [m["MessageId"] for m in again] == [m["MessageId"] for m in m2]
    assert driver.invoke(b, 2, again) == set()  # reloaded: goes through
    driver.delete(2, again, set())
    _both_ran_once(race)


def test_a_stale_invocation_loads_the_newer_commit_and_goes_through(aws: AwsConfig) -> None:
    """The same race with the default tries: the loser loads the winner's commit and
    commits on top of it in the same invocation, so its batch costs SQS no second receive."""
    race = _race_for_commit_2(aws, attempts=3)
    _, b, driver, _, _, m2 = race
    assert driver.invoke(b, 2, m2) == set()  # lost the fence at commit 1, then went through
    driver.delete(2, m2, set())
    _both_ran_once(race)


def test_concurrent_invocations_of_one_partition(
    aws: AwsConfig, caplog: pytest.LogCaptureFixture
) -> None:
    """The same batch handed to two containers at once (its visibility ran out while
    the first was slow): whoever commits second loses the fence, loads the winner's
    commit and finds only duplicates."""
    hosts = [AwsHost(app, aws), AwsHost(app, aws)]
    driver = Driver(aws)
    for host in hosts:
        _ring_all(host)
    client = hosts[0].client()
    ids = [client.start(IncrementMany(counter=k, times=3)) for k in range(4)]
    def run(n: int, p: int, messages: list[dict[str, Any]], barrier: threading.Barrier,
            results: list[set[str]]) -> None:
        barrier.wait()
        results[n] = driver.invoke(hosts[n], p, messages)

    for _ in range(60):
        for p in range(aws.partitions):
            messages = driver.receive(p)
            if not messages:
                continue
            results: list[set[str]] = [set(), set()]
            barrier = threading.Barrier(2)
            threads = [threading.Thread(target=run, args=(n, p, messages, barrier, results))
                       for n in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            driver.delete(p, messages, results[0] & results[1])
        if all(client.status(i) and client.status(i).done for i in ids):  # type: ignore[union-attr]
            break
    # the race really happened (both invocations start at a barrier)
    assert any("StaleSnapshotError" in r.getMessage() for r in caplog.records)
    assert [client.wait(i, timeout=5) for i in ids] == [[1, 2, 3]] * 4
    assert [_count(driver, hosts[0], k) for k in range(4)] == [3] * 4


def test_only_a_quiet_partitions_last_commit_gets_its_delivered_mark(aws: AwsConfig) -> None:
    # commit n+1 exists only once n was delivered, so the marks in between are needless;
    # the last one spares a new container resending the last outbox
    host = AwsHost(app, aws)
    driver = Driver(aws)
    client = host.client()
    ids = [client.start(IncrementMany(counter=k, times=3)) for k in range(4)]
    driver.run(host)
    assert [client.wait(i, timeout=5) for i in ids] == [[1, 2, 3]] * 4
    host.close()
    commits = marks = 0
    for p in range(aws.partitions):
        listed = aws.s3.list_objects_v2(Bucket=aws.bucket, Prefix=host.store.prefix(p))
        keys = [o["Key"] for o in listed.get("Contents", [])]
        commits += sum(1 for k in keys if not k.endswith(".d"))
        marks += sum(1 for k in keys if k.endswith(".d"))
        stored = S3SnapshotStore(aws).load(p)
        assert stored.delivered == stored.version
    assert marks < commits
    assert [_count(driver, AwsHost(app, aws), k) for k in range(4)] == [3] * 4
