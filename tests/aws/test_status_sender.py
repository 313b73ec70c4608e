"""The S3 status store and the SQS sender (batches, claim checks)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from hosts.aws.claims import (
    BUNDLE_ATTRIBUTE,
    SIZE_ATTRIBUTE,
    ClaimError,
    decode_body,
    decode_payloads,
)
from hosts.aws.config import AwsConfig
from hosts.aws.sender import Entry, SqsSender, split
from hosts.aws.status import S3StatusStore
from reactive.hosting.seams import Outgoing, PartitionHealth, StatusQuery, StatusRecord


def _record(iid: str, status: Any = "running", updated: float = 1.0, **kw: Any) -> StatusRecord:
    return StatusRecord(iid, kw.pop("name", "Hello"), status, 0, 0.5, updated, **kw)


def _health(partition: int, at: float, due: float | None = None) -> PartitionHealth:
    """The health of commit number ``at``."""
    return PartitionHealth(partition, str(int(at)), at, next_due=due, number=int(at))


def test_statuses_replace_only_older_ones(aws: AwsConfig) -> None:
    status = S3StatusStore(aws, health_interval=0)
    home = status.owner("a")  # the partition that owns instance "a" publishes it
    assert status.put_pending(_record("a", "pending", 5.0))
    assert not status.put_pending(_record("a", "pending", 6.0))
    status.publish([_record("a", "running", 1.0)], _health(home, 1.0))  # pending always yields
    assert status.get("a") == _record("a", "running", 1.0)
    status.publish([_record("a", "completed", 3.0, result=["x"])], _health(home, 3.0))
    late = S3StatusStore(aws)  # another process, publishing an older commit late
    late.publish([_record("a", "running", 2.0)], _health(home, 2.0))
    assert status.get("a") == _record("a", "completed", 3.0, result=["x"])
    assert not late.put_pending(_record("a", "pending", 9.0))
    assert [h.commit for h in status.health()] == ["3"]
    assert status.get("missing") is None


def test_query_filters_and_pages_in_id_order(aws: AwsConfig) -> None:
    status = S3StatusStore(aws)
    ids = ["b/1", "a 2", "a-1", "é", "c"]
    records = [_record(i, "completed" if n % 2 else "running", float(n), name=f"N{n % 2}")
               for n, i in enumerate(ids)]
    for partition in range(aws.partitions):  # each partition publishes its instances
        status.publish([r for r in records if status.owner(r.instance_id) == partition],
                       _health(partition, 1.0))
    assert [r.instance_id for r in status.query(StatusQuery())] == sorted(ids)
    assert [r.instance_id for r in status.query(StatusQuery(status="completed"))] == ["a 2", "é"]
    page1 = status.query(StatusQuery(limit=2))
    page2 = status.query(StatusQuery(limit=2, after=page1[-1].instance_id))
    page3 = status.query(StatusQuery(limit=2, after=page2[-1].instance_id))
    assert [r.instance_id for r in page1 + page2 + page3] == sorted(ids)
    assert [r.instance_id for r in status.query(StatusQuery(name="N0", since=1.0))] == []
    assert not status.purge("c")  # still running
    assert status.purge("a 2") and status.get("a 2") is None


def test_unchanged_health_is_written_at_intervals(aws: AwsConfig) -> None:
    status = S3StatusStore(aws, health_interval=3600)
    status.publish([], _health(0, 1.0))
    status.publish([], _health(0, 2.0))  # nothing the schedule acts on changed: skipped
    assert [h.commit for h in status.health()] == ["1"]
    status.publish([], _health(0, 3.0, due=9.0))  # a timer: written at once
    assert [(h.commit, h.next_due) for h in status.health()] == [("3", 9.0)]


def test_health_per_partition(aws: AwsConfig) -> None:
    status = S3StatusStore(aws)
    status.publish([], _health(1, 5.0, due=7.0))
    status.publish([], _health(2, 6.0))
    status.publish([], _health(1, 4.0))  # older: ignored
    assert {(h.partition, h.next_due) for h in status.health()} == {(1, 7.0), (2, None)}


def test_split_by_count_and_bytes() -> None:
    entries = [Entry("x", {}, size) for size in (400, 400, 300, 100, 900, 50)]
    batches = split(entries, 3, 1000)
    assert [[e.size for e in b] for b in batches] == [[400, 400], [300, 100], [900, 50]]
    assert [len(b) for b in split([Entry("x", {}, 1)] * 25, 10, 10_000)] == [10, 10, 5]


def _drain(aws: AwsConfig, partition: int) -> list[bytes]:
    url = aws.queue_url(aws.partition_queue(partition))
    got: list[bytes] = []
    while True:
        response = aws.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10,
                                           MessageAttributeNames=["All"])
        messages = response.get("Messages", [])
        if not messages:
            return got
        for m in messages:
            got.extend(decode_payloads(aws, m["Body"], m.get("MessageAttributes", {})))
            aws.sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_sender_batches_and_claim_checks(aws: AwsConfig) -> None:
    sender = SqsSender(aws)
    small = [Outgoing(n % 2, json.dumps({"n": n}).encode(), f"d{n}") for n in range(25)]
    big = Outgoing(3, b'{"x":"' + b"y" * (2 * 1024 * 1024) + b'"}', "big")
    binary = Outgoing(3, b"\x00\xff not text", "bin")
    near = Outgoing(2, b"z" * (1024 * 1024 - 100), "near")  # fits, but not beside others
    sender.send([*small, big, binary, near, near])
    assert sender.claims == 1
    # 13 and 12 small messages in a bundle each, 2 batches of one near-limit message each,
    # one batch with the claim check and the binary message
    assert sender.calls == 5
    got0, got1 = _drain(aws, 0), _drain(aws, 1)
    assert sorted(json.loads(b)["n"] for b in got0 + got1) == list(range(25))
    assert sorted(_drain(aws, 3)) == sorted([big.data, binary.data])
    assert _drain(aws, 2) == [near.data, near.data]


def test_claim_pointer_shape(aws: AwsConfig) -> None:
    sender = SqsSender(aws, max_message_bytes=1000)
    entry = sender.entry(b"q" * 5000)
    kind, pointer = json.loads(entry.body)
    assert kind == "software.amazon.payloadoffloading.PayloadS3Pointer"
    assert pointer["s3BucketName"] == aws.bucket
    assert entry.attributes[SIZE_ATTRIBUTE]["StringValue"] == "5000"
    assert decode_body(aws, entry.body, entry.attributes) == b"q" * 5000


def test_bundles_carry_any_text_in_order_within_their_size(aws: AwsConfig) -> None:
    sender = SqsSender(aws, max_bundle_bytes=2000)
    texts = ['{"q": "a \\"quoted\\" \\\\ back"}', "é ü 漢字 🙂", "tab\tnew\nline\x01", "</x>&"]
    payloads = [(t * (1 + n % 7)).encode() for n, t in enumerate(texts * 30)]
    entries = sender.bundles(payloads)
    assert len(entries) > 1  # 120 payloads do not fit one bundle of 2000 bytes
    for entry in entries:
        assert entry.body.isascii() and len(entry.body) <= 2000
        assert entry.attributes[BUNDLE_ATTRIBUTE]["StringValue"] == str(len(json.loads(entry.body)))
    sender.send([Outgoing(1, p, str(n)) for n, p in enumerate(payloads)])
    assert sender.calls == 1  # a few bundles: one request
    assert _drain(aws, 1) == payloads  # every payload, byte for byte, in order


def test_lone_or_binary_payloads_travel_unbundled(aws: AwsConfig) -> None:
    sender = SqsSender(aws)
    binary = b"\xff\xfe not UTF-8"
    entries = sender.bundles([b"alone"])
    assert [(e.body, e.attributes) for e in entries] == [("alone", {})]
    entries = sender.bundles([b"a", binary, b"b", b"c"])
    assert [BUNDLE_ATTRIBUTE in e.attributes for e in entries] == [False, False, True]
    sender.send([Outgoing(0, p, "x") for p in (b"a", binary, b"b", b"c")])
    assert _drain(aws, 0) == [b"a", binary, b"b", b"c"]


def test_a_malformed_bundle_is_an_error(aws: AwsConfig) -> None:
    def bundle(body: str, count: str) -> list[bytes]:
        attributes = {BUNDLE_ATTRIBUTE: {"DataType": "Number", "StringValue": count}}
        return decode_payloads(aws, body, attributes)

    assert bundle('["a","b"]', "2") == [b"a", b"b"]
    for body, count in (('["a", "b"', "2"), ('["a", 1]', "2"), ('["a","b"]', "3"),
                        ('{"a": "b"}', "1")):
        try:
            bundle(body, count)
        except ClaimError as error:
            assert str(error).startswith("bundle is not")
        else:
            raise AssertionError(f"{body!r} was accepted")


def test_sends_to_one_queue_from_several_threads_share_requests(aws: AwsConfig) -> None:
    sender = SqsSender(aws)
    url = aws.queue_url(aws.partition_queue(2))
    underway, release = threading.Event(), threading.Event()
    real = sender._send_batch

    def held_first(queue: str, batch: list[Entry]) -> None:
        if not release.is_set():  # the first request stays under way until released
            underway.set()
            release.wait(60)
        real(queue, batch)

    sender._send_batch = held_first  # type: ignore[method-assign,assignment]
    first = threading.Thread(target=sender.send, args=([Outgoing(2, b"first", "f")],))
    first.start()
    assert underway.wait(60)
    others = [threading.Thread(target=sender.send, args=([Outgoing(2, f"p{n}".encode(), "")],))
              for n in range(5)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 60
    while len(sender._lane(url).waiting) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join()
    assert sender.calls == 2  # the five that waited went out in one request
    assert sorted(_drain(aws, 2)) == sorted([b"first", *(f"p{n}".encode() for n in range(5))])
