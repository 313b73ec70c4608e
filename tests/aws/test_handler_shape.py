"""The partition handler's contract with SQS, with a scripted worker standing in for the
shared one: what the response names as failed, wake-ups, claim checks, follow-ups."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import pytest

from hosts.aws.claims import BUNDLE_ATTRIBUTE, put_claim
from hosts.aws.config import AwsConfig
from hosts.aws.handler import KIND_ATTRIBUTE, AwsHost
from hosts.aws.local import FakeContext
from reactive.hosting.seams import Inbound, StaleSnapshotError
from samples.counter.app import app
from tests.aws.events import sqs_event, sqs_record


@dataclass
class Result:
    acknowledged: Sequence[Hashable]
    next_due: float | None = None
    more: bool = False


@dataclass
class ScriptedWorker:
    """Acknowledges what ``ack`` selects; raises or reports what it is told to."""

    batches: list[list[Inbound]] = field(default_factory=list)
    ack: str = "all"  # "all", "first", "stale", "boom"
    next_due: list[float | None] = field(default_factory=list)
    more: list[bool] = field(default_factory=list)

    def handle(self, batch: Sequence[Inbound]) -> Result:
        self.batches.append(list(batch))
        if self.ack == "stale":
            raise StaleSnapshotError("a newer commit exists")
        if self.ack == "boom":
            raise ValueError("boom")
        refs = [b.ref for b in batch][: 1 if self.ack == "first" else None]
        due = self.next_due.pop(0) if self.next_due else None
        more = self.more.pop(0) if self.more else False
        return Result(refs, due, more)


def _host(aws: AwsConfig, worker: ScriptedWorker, now: float = 1000.0) -> AwsHost:
    return AwsHost(app, aws, worker_factory=lambda host, index: worker, clock=lambda: now)


def _failures(response: dict[str, object]) -> list[str]:
    items = response["batchItemFailures"]
    assert isinstance(items, list)
    return [f["itemIdentifier"] for f in items]


def test_records_not_covered_by_the_commit_are_reported(aws: AwsConfig) -> None:
    worker = ScriptedWorker(ack="first")
    queue = aws.partition_queue(1)
    records = [sqs_record(aws, queue, f"m{n}", message_id=f"id{n}") for n in range(3)]
    response = _host(aws, worker).on_partition_batch(sqs_event(*records))
    assert _failures(response) == ["id1", "id2"]
    assert [b.data for b in worker.batches[0]] == [b"m0", b"m1", b"m2"]
    assert [b.ref for b in worker.batches[0]] == ["id0", "id1", "id2"]
    assert worker.batches[0][0].time > 1_000_000_000  # the SentTimestamp, in seconds


def test_a_bundle_is_covered_only_when_all_its_payloads_are(aws: AwsConfig) -> None:
    queue = aws.partition_queue(2)

    def records() -> list[dict[str, object]]:
        return [sqs_record(aws, queue, "solo", message_id="s"),
                sqs_record(aws, queue, '["b0","b1","b2"]', {BUNDLE_ATTRIBUTE: "3"},
                           message_id="b")]

    worker = ScriptedWorker()
    assert _failures(_host(aws, worker).on_partition_batch(sqs_event(*records()))) == []
    assert [b.data for b in worker.batches[0]] == [b"solo", b"b0", b"b1", b"b2"]
    assert len({b.ref for b in worker.batches[0]}) == 4
    worker = ScriptedWorker(ack="first")  # the bundle is partly covered: it comes back
    assert _failures(_host(aws, worker).on_partition_batch(sqs_event(*records()))) == ["b"]
    for ack in ("stale", "boom"):  # the bundle is named once
        response = _host(aws, ScriptedWorker(ack=ack)).on_partition_batch(sqs_event(*records()))
        assert _failures(response) == ["s", "b"]
    bad = sqs_record(aws, queue, '["b0"', {BUNDLE_ATTRIBUTE: "1"}, message_id="x")
    response = _host(aws, ScriptedWorker()).on_partition_batch(sqs_event(bad))
    assert _failures(response) == []  # dead-lettered with its reason, not retried
    assert [r for _, r in _host(aws, ScriptedWorker()).store.dead_letters(2)] == [
        "bundle is not JSON (Expecting ',' delimiter: line 1 column 6 (char 5))"]


def test_a_stale_or_failing_invocation_acknowledges_nothing(aws: AwsConfig) -> None:
    queue = aws.partition_queue(0)
    for ack in ("stale", "boom"):
        records = [sqs_record(aws, queue, "x", message_id="a"),
                   sqs_record(aws, queue, "wake", {KIND_ATTRIBUTE: "wake"}, message_id="w")]
        response = _host(aws, ScriptedWorker(ack=ack)).on_partition_batch(sqs_event(*records))
        assert sorted(_failures(response)) == ["a", "w"]


def test_wake_ups_reach_the_worker_as_an_empty_batch(aws: AwsConfig) -> None:
    worker = ScriptedWorker()
    record = sqs_record(aws, aws.partition_queue(3), "wake", {KIND_ATTRIBUTE: "wake"})
    assert _failures(_host(aws, worker).on_partition_batch(sqs_event(record))) == []
    assert worker.batches == [[]]


def test_claim_checks_are_resolved(aws: AwsConfig) -> None:
    worker = ScriptedWorker()
    payload = b"p" * 3_000_000
    body, attributes = put_claim(aws, payload)
    record = sqs_record(aws, aws.partition_queue(2), body,
                        {k: v["StringValue"] for k, v in attributes.items()})
    bad = sqs_record(aws, aws.partition_queue(2), body, {"ExtendedPayloadSize": "1"})
    bad["body"] = '["software.amazon.payloadoffloading.PayloadS3Pointer", {"s3BucketName": "x"}]'
    response = _host(aws, worker).on_partition_batch(sqs_event(record, bad))
    assert _failures(response) == []  # the bad pointer is dead-lettered, not retried
    assert [b.data for b in worker.batches[0]] == [payload]
    host = _host(aws, worker)
    assert [reason for _, reason in host.store.dead_letters(2)] == [
        "malformed claim check pointer ('s3Key')"
    ]


def test_foreign_queues_are_refused(aws: AwsConfig) -> None:
    record = sqs_record(aws, "someone-elses-queue", "x", message_id="f")
    assert _failures(_host(aws, ScriptedWorker()).on_partition_batch(sqs_event(record))) == ["f"]


def test_more_work_and_short_timers_are_run_in_the_invocation(aws: AwsConfig) -> None:
    worker = ScriptedWorker(next_due=[None, 1000.0, None], more=[True, False, False])
    host = _host(aws, worker)
    record = sqs_record(aws, aws.partition_queue(0), "x")
    host.on_partition_batch(sqs_event(record), FakeContext(timeout=60))
    assert [len(b) for b in worker.batches] == [1, 0, 0]  # more, then a due timer


def test_a_later_timer_leaves_one_delayed_wake_up(aws: AwsConfig) -> None:
    worker = ScriptedWorker(next_due=[1100.0, 1100.0])
    host = _host(aws, worker)
    for _ in range(2):
        host.on_partition_batch(sqs_event(sqs_record(aws, aws.partition_queue(1), "x")))
    url = aws.queue_url(aws.partition_queue(1))
    attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessagesDelayed"] == "1"
    assert len(worker.batches) == 2


@dataclass
class FailingFollowUp:
    """Commits the batch and reports more work; the follow-up try raises."""

    calls: int = 0

    def handle(self, batch: Sequence[Inbound]) -> Result:
        self.calls += 1
        if self.calls > 1:
            raise ValueError("the follow-up failed")
        return Result([b.ref for b in batch], None, more=True)


def test_a_failed_follow_up_leaves_a_wake_up(aws: AwsConfig) -> None:
    """What the follow-up committed may be undelivered, and the batch is acknowledged:
    without a wake-up nothing would bring the partition back to deliver it."""
    worker = FailingFollowUp()
    host = AwsHost(app, aws, worker_factory=lambda host, index: worker, stale_retry=0)
    record = sqs_record(aws, aws.partition_queue(1), "x", message_id="a")
    response = host.on_partition_batch(sqs_event(record), FakeContext(timeout=60))
    assert _failures(response) == []
    assert worker.calls == 2
    url = aws.queue_url(aws.partition_queue(1))
    messages = aws.sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"],
                                       WaitTimeSeconds=2).get("Messages", [])
    assert [m["MessageAttributes"][KIND_ATTRIBUTE]["StringValue"] for m in messages] == ["wake"]


def test_a_batch_needs_at_least_one_try(aws: AwsConfig) -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        AwsHost(app, aws, attempts=0)
