"""Apps end to end on the AWS host over a moto server: the local runner plays Lambda's
event source mappings (4 partitions, a queue each, several pollers), clients post to the
partition queues and read statuses from S3."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hosts.aws.config import AwsConfig
from hosts.aws.handler import AwsHost
from hosts.aws.local import LocalRunner
from reactive import App, Orchestration
from reactive.core.builtin_ops import ClientPerform
from reactive.hosting.client import SeamClient
from reactive.hosting.seams import StatusQuery
from samples.bank.app import Balance, Deposit, SignUp, Transfer
from samples.bank.app import app as bank_app
from samples.counter.app import Count, EventCount, Increment, Incremented, IncrementMany
from samples.counter.app import app as counter_app
from samples.hello.app import HelloStartup
from samples.hello.app import app as hello_app
from tests.aws import bigapp

WAIT = 120.0  # seconds; generous, the machine is shared


class Deployment:
    def __init__(self, host: AwsHost, runner: LocalRunner) -> None:
        self.host = host
        self.runner = runner
        self.client: SeamClient = host.client()

    def wait(self, instance_id: str) -> Any:
        return self.client.wait(instance_id, timeout=WAIT)

    def perform(self, op: Any) -> Any:
        """As ``Client.perform``, with a time limit."""
        schema = self.host.schema
        info = schema.info(op)
        if isinstance(op, Orchestration):
            return self.wait(self.client.start(op))
        iid = self.client.start(ClientPerform(op=list(schema.encode_op(op))))
        return info.result.validate_python(self.wait(iid))

    def wait_known(self, instance_id: str) -> Any:
        """Wait for an instance this client did not start (e.g. a startup one)."""
        deadline = time.monotonic() + WAIT
        while self.client.status(instance_id) is None:
            assert time.monotonic() < deadline, f"{instance_id} never appeared"
            time.sleep(0.1)
        return self.wait(instance_id)


Deploy = Callable[..., Deployment]


@pytest.fixture
def deploy(aws: AwsConfig) -> Iterator[Deploy]:
    runners: list[LocalRunner] = []

    def start(app: App, pollers: int = 2, retry_delay: int = 1, **host_options: Any) -> Deployment:
        host = AwsHost(app, aws, **host_options)
        runner = LocalRunner(host, partition_pollers=pollers, schedule_interval=0.5,
                             retry_delay=retry_delay)
        runners.append(runner.start())
        return Deployment(host, runner)

    yield start
    for runner in runners:
        runner.stop()


def test_hello_startup_runs_once(deploy: Deploy) -> None:
    d = deploy(hello_app)
    # started by the partition that owns it when the schedule first rings it
    assert d.wait_known(f"startup-0-{HelloStartup.__name__}") == ["Hello World"] * 5
    # statuses are kept for top-level instances only
    listed = d.host.status.query(StatusQuery(status="completed"))
    assert [r.name for r in listed] == ["HelloStartup"]


def test_counters_are_exact(deploy: Deploy) -> None:
    d = deploy(counter_app)
    assert d.perform(IncrementMany(counter=5, times=12, parallel=True)) == list(range(1, 13))
    ids = [d.client.start(IncrementMany(counter=k, times=5)) for k in range(8)]
    results = [d.wait(i) for i in ids]
    assert results == [list(range(13, 18)) if k == 5 else [1, 2, 3, 4, 5] for k in range(8)]
    for _ in range(6):
        d.client.fork(Incremented(counter=2))
    assert d.perform(Increment(counter=2)) == 6
    assert [d.perform(Count(counter=k)) for k in range(8)] == [5, 5, 6, 5, 5, 17, 5, 5]
    _eventually(lambda: d.perform(EventCount(counter=2)) == 6)


def _eventually(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.2)


ACCOUNTS = [f"{u}-{i}" for u in ("ann", "ben", "cat") for i in (1, 2)]
INITIAL = 100


def run_bank(d: Deployment, transfers: int, seed: int) -> dict[str, int]:
    for user in ("ann", "ben", "cat"):
        d.perform(SignUp(user=user, name=user.title(), checking=f"{user}-1", savings=f"{user}-2"))
    for account in ACCOUNTS:
        d.perform(Deposit(account=account, amount=INITIAL))
    rng = random.Random(seed)
    ids = [
        d.client.start(Transfer(src=rng.choice(ACCOUNTS), dst=rng.choice(ACCOUNTS),
                                amount=rng.randint(1, 150)), instance_id=f"transfer-{n}")
        for n in range(transfers)
    ]
    results = [d.wait(i) for i in ids]
    balances = {a: d.perform(Balance(account=a)) for a in ACCOUNTS}
    assert sum(balances.values()) == INITIAL * len(ACCOUNTS)
    assert all(b >= 0 for b in balances.values())
    assert sum(results) > 0
    return balances


def test_bank_conserves_money(deploy: Deploy) -> None:
    run_bank(deploy(bank_app), transfers=30, seed=1)


class Crashes:
    """Makes a host's invocations die: every ``every``-th snapshot write before it
    reaches S3, every ``every + 1``-th right after it, and every ``every + 2``-th send of
    an outbox (after the commit, before delivery)."""

    def __init__(self, host: AwsHost, every: int) -> None:
        self.calls = {"before": 0, "after": 0, "send": 0}
        self.crashed = {"before": 0, "after": 0, "send": 0}
        self.period = {"before": every, "after": every + 1, "send": every + 2}
        self._lock = threading.Lock()
        store, sender = host.store, host.sender
        real_append, real_compact, real_send = store.append, store.compact, sender.send

        def crash(kind: str) -> None:
            with self._lock:
                self.calls[kind] += 1
                if self.calls[kind] % self.period[kind]:
                    return
                self.crashed[kind] += 1
            raise RuntimeError(f"crash: {kind}")

        def wrap(real: Callable[..., str]) -> Callable[..., str]:
            def write(partition: int, data: bytes, expected: str | None) -> str:
                crash("before")
                version = real(partition, data, expected)
                crash("after")
                return version
            return write

        def send(messages: Any) -> None:
            crash("send")
            real_send(messages)

        store.append = wrap(real_append)  # type: ignore[method-assign]
        store.compact = wrap(real_compact)  # type: ignore[method-assign]
        sender.send = send  # type: ignore[method-assign]


# The crash tests make failed batches visible again at once: the path a retried batch takes
# is the same after 0 s as after Lambda's visibility timeout, and with one invocation in
# three crashing, a second per retry made the bank test take 110 s of its 120 s wait.
def test_crashes_before_and_after_the_snapshot_write_lose_nothing(deploy: Deploy) -> None:
    d = deploy(counter_app, retry_delay=0)
    crashes = Crashes(d.host, every=4)
    ids = [d.client.start(IncrementMany(counter=k, times=6, parallel=k % 2 == 0),
                          instance_id=f"many-{k}") for k in range(4)]
    assert [d.wait(i) for i in ids] == [list(range(1, 7))] * 4
    assert [d.perform(Count(counter=k)) for k in range(4)] == [6] * 4
    assert all(crashes.crashed.values()), crashes.crashed


def test_bank_under_crashes_and_competing_pollers(deploy: Deploy) -> None:
    d = deploy(bank_app, pollers=3, retry_delay=0)
    crashes = Crashes(d.host, every=6)
    run_bank(d, transfers=20, seed=2)
    assert sum(crashes.crashed.values()) > 0


def _receives_before_dead_letter(aws: AwsConfig, count: int) -> None:
    for p in range(aws.partitions):
        url = aws.queue_url(aws.partition_queue(p))
        attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
        policy = json.loads(attributes["Attributes"]["RedrivePolicy"])
        policy["maxReceiveCount"] = str(count)
        aws.sqs.set_queue_attributes(QueueUrl=url,
                                     Attributes={"RedrivePolicy": json.dumps(policy)})


def _dead_lettered(aws: AwsConfig) -> int:
    total = 0
    for p in range(aws.partitions):
        url = aws.queue_url(aws.partition_dlq(p))
        attributes = aws.sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
        total += int(attributes["Attributes"]["ApproximateNumberOfMessages"])
    return total


def test_a_failed_try_costs_no_receive(deploy: Deploy, aws: AwsConfig) -> None:
    """A record SQS hands out ``maxReceiveCount`` times goes to the dead-letter queue, and
    a message between partitions lost that way is a gap its receiver waits at for good. So
    an invocation whose commit fails tries again itself: here every partition's first try
    of each commit fails, and SQS would dead-letter a record on its second receive."""
    _receives_before_dead_letter(aws, 1)
    d = deploy(counter_app, retry_delay=0)
    lock = threading.Lock()
    calls: dict[int, int] = {}
    store = d.host.store

    def first_try_fails(real: Callable[..., str]) -> Callable[..., str]:
        def write(partition: int, data: bytes, expected: str | None) -> str:
            with lock:
                calls[partition] = calls.get(partition, 0) + 1
                fail = calls[partition] % 2 == 1
            if fail:
                raise RuntimeError("the first try fails")
            return real(partition, data, expected)
        return write

    store.append = first_try_fails(store.append)  # type: ignore[method-assign]
    store.compact = first_try_fails(store.compact)  # type: ignore[method-assign]
    ids = [d.client.start(IncrementMany(counter=k, times=4), instance_id=f"many-{k}")
           for k in range(4)]
    assert [d.wait(i) for i in ids] == [[1, 2, 3, 4]] * 4
    assert [d.perform(Count(counter=k)) for k in range(4)] == [4] * 4
    assert sum(calls.values()) >= 16  # the failures really happened
    assert _dead_lettered(aws) == 0


def test_two_processes_share_the_partitions(deploy: Deploy, aws: AwsConfig) -> None:
    """Two hosts (as two Lambda containers) poll the same queues: stale commits lose,
    nothing is lost or applied twice."""
    first = deploy(counter_app)
    deploy(counter_app)
    ids = [first.client.start(IncrementMany(counter=k, times=8), instance_id=f"m-{k}")
           for k in range(4)]
    assert [first.wait(i) for i in ids] == [list(range(1, 9))] * 4
    assert [first.perform(Count(counter=k)) for k in range(4)] == [8] * 4


def test_big_input_and_result_travel_by_claim_check(deploy: Deploy) -> None:
    d = deploy(bigapp.app)
    size = 2 * 1024 * 1024
    assert d.perform(bigapp.Measure(text="i" * size)) == size
    assert d.client.sender.claims == 1  # the start went by claim check
    assert d.perform(bigapp.Produce(size=size)) == "r" * size  # the result's status in S3
    # the result travels between instances (by claim check when they are on different
    # partitions, which depends on their ids)
    assert d.perform(bigapp.RoundTrip(size=size)) == size
    claims = d.host.config.s3.list_objects_v2(Bucket=d.host.config.bucket, Prefix="claims/")
    assert 1 <= claims["KeyCount"] <= 1 + d.host.sender.claims
