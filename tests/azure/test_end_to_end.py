"""Sample apps end to end on the Azure host with 4 partitions: the local runner plays the
Functions host over Azurite and the Event Hubs stand-in."""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from azure.eventhub import EventData
from azure.storage.blob import ContainerClient

from hosts.azure.local import CHECKPOINT_EVERY, BlobCheckpoints, Served, serve, wait_until
from hosts.azure.settings import AzureSettings
from reactive.hosting.seams import StatusQuery
from samples.bank import app as bank
from samples.counter import app as counter
from samples.hello import app as hello

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def running(settings: AzureSettings, request: pytest.FixtureRequest) -> Iterator[Served]:
    served = serve(request.param.app, 4, settings, timer_interval=0.5, http_port=0)
    try:
        yield served
    finally:
        served.stop()


@pytest.mark.parametrize("running", [hello], indirect=True)
def test_hello(running: Served) -> None:
    client = running.client()
    ids = [client.start(hello.Hello()) for _ in range(8)]
    assert [client.wait(i, timeout=60) for i in ids] == ["Hello World"] * 8
    status = running.host.status

    def startup_done() -> bool:
        found = status.query(StatusQuery(name="HelloStartup"))
        return bool(found) and found[0].status == "completed"

    assert wait_until(startup_done, 60)
    assert status.query(StatusQuery(name="HelloStartup"))[0].result == ["Hello World"] * 5
    assert {h.partition for h in status.health()} == {0, 1, 2, 3}
    assert running.runner.stats.failures == 0


@pytest.mark.parametrize("running", [hello], indirect=True)
def test_http_api_through_the_http_function(running: Served) -> None:
    """The local runner serves the HTTP function on 127.0.0.1, as the Functions host would."""
    assert running.runner.url is not None
    headers = {"x-api-key": "test-key", "content-type": "application/json"}
    start = urllib.request.Request(
        running.runner.url + "/api/orchestrations/Hello?id=over-http", data=b"{}",
        method="POST", headers=headers,
    )
    with urllib.request.urlopen(start, timeout=30) as reply:
        assert reply.status == 202
        assert json.loads(reply.read())["id"] == "over-http"
    assert running.client().wait("over-http", timeout=60) == "Hello World"
    status = urllib.request.Request(running.runner.url + "/api/instances/over-http",
                                    headers=headers)
    with urllib.request.urlopen(status, timeout=30) as reply:
        body = json.loads(reply.read())
    assert (body["status"], body["result"]) == ("completed", "Hello World")


@pytest.mark.parametrize("running", [counter], indirect=True)
def test_counter_increments_exactly(running: Served) -> None:
    client = running.client()
    ids = [
        client.start(counter.IncrementMany(counter=k, times=5, parallel=k % 2 == 0))
        for k in range(8)
    ]
    for iid in ids:
        assert sorted(client.wait(iid, timeout=60)) == [1, 2, 3, 4, 5]
    assert [client.perform(counter.Count(counter=k)) for k in range(8)] == [5] * 8
    assert running.runner.stats.failures == 0


@pytest.mark.parametrize("running", [bank], indirect=True)
def test_bank_transfers_keep_the_money(running: Served) -> None:
    client = running.client()
    for user in ("zed", "yan"):
        client.perform(bank.SignUp(user=user, name=user.title(), checking=f"{user}-1",
                                   savings=f"{user}-2"))
    client.perform(bank.Deposit(account="zed-1", amount=100))
    ids = [
        client.start(bank.Transfer(src=src, dst=dst, amount=7))
        for src, dst in [("zed-1", "yan-1"), ("zed-1", "zed-2"), ("yan-1", "yan-2")] * 3
    ]
    for iid in ids:
        client.wait(iid, timeout=60)
    balances = [client.perform(bank.Balance(account=a))
                for a in ("zed-1", "zed-2", "yan-1", "yan-2")]
    assert sum(balances) == 100
    assert running.runner.stats.failures == 0


@pytest.mark.parametrize("running", [hello], indirect=True)
def test_ingress_routes_requests_and_dead_letters_bad_ones(
    running: Served, settings: AzureSettings
) -> None:
    producer = settings.producer(settings.ingress_hub)
    try:
        batch = producer.create_batch()
        for body in [
            json.dumps({"orchestration": "Hello", "instance_id": "via-ingress"}),
            "not json at all",
            json.dumps({"orchestration": "NoSuchThing"}),
            json.dumps({"orchestration": "Hello", "colour": "red"}),
            json.dumps({"orchestration": "Hello", "instance_id": "via-ingress"}),  # a retry
        ]:
            batch.add(EventData(body))
        producer.send_batch(batch)
    finally:
        producer.close()
    client = running.client()
    assert wait_until(lambda: client.status("via-ingress") is not None, 60)
    assert client.wait("via-ingress", timeout=60) == "Hello World"
    dead = running.host.dead_letters
    assert wait_until(lambda: len(dead.list("ingress")) == 3, 30)
    reasons = [d["reason"] for d in dead.list("ingress")]
    assert reasons[0].startswith("not JSON")
    assert "unknown orchestration 'NoSuchThing'" in reasons[1]
    assert "unknown request fields ['colour']" in reasons[2]
    assert dead.list("ingress")[0]["data"] == b"not json at all"


class CountingCheckpoints(BlobCheckpoints):
    def __init__(self, container: ContainerClient) -> None:
        super().__init__(container)
        self.puts = 0

    def put(self, hub: str, group: str, partition: str, sequence_number: int) -> None:
        self.puts += 1
        super().put(hub, group, partition, sequence_number)


def test_the_runner_checkpoints_every_nth_batch_and_when_it_stops(
    settings: AzureSettings,
) -> None:
    """As host.json's batchCheckpointFrequency asks: one checkpoint write per
    ``CHECKPOINT_EVERY`` batches, and none lost at a clean stop (every partition's
    checkpoint is its last event)."""
    checkpoints = CountingCheckpoints(settings.container_client())
    served = serve(hello.app, 4, settings, timer_interval=0.5, checkpoints=checkpoints,
                   max_batch_size=1)
    try:
        client = served.client()
        ids = [client.start(hello.Hello()) for _ in range(10)]
        assert [client.wait(i, timeout=60) for i in ids] == ["Hello World"] * 10
        status = served.host.status
        assert wait_until(lambda: [r.status for r in status.query(
            StatusQuery(name="HelloStartup"))] == ["completed"], 60)
        assert wait_until(lambda: len(status.health()) == 4, 30)  # no more wake-ups
        seen = [-1]

        def settled() -> bool:  # no invocation for a second
            now = served.runner.stats.invocations
            seen.append(now)
            return seen[-2] == now

        assert wait_until(settled, 60, poll=1.0)
    finally:
        served.stop()
    consumers = 4 + 2  # the partition hub's and the ingress hub's partitions
    invocations = served.runner.stats.invocations
    # enough batches that a checkpoint per batch would break the bound below
    assert invocations >= 2 * consumers
    assert checkpoints.puts <= invocations // CHECKPOINT_EVERY + consumers
    producer = settings.producer(settings.partition_hub)
    try:
        for p in range(4):
            last = producer.get_partition_properties(str(p))["last_enqueued_sequence_number"]
            saved = checkpoints.get(settings.partition_hub, settings.consumer_group, str(p))
            assert saved == last, f"partition {p}: checkpoint {saved}, last event {last}"
    finally:
        producer.close()


class StuckCheckpoints(BlobCheckpoints):
    """Checkpoint writes that hang until released (a slow storage account)."""

    def __init__(self, container: ContainerClient) -> None:
        super().__init__(container)
        self.release = threading.Event()
        self.stuck = 0

    def put(self, hub: str, group: str, partition: str, sequence_number: int) -> None:
        self.stuck += 1
        self.release.wait(120)
        super().put(hub, group, partition, sequence_number)


def test_batches_do_not_wait_for_their_checkpoint(settings: AzureSettings) -> None:
    """A checkpoint write is the runner's business, not the partition's: while one hangs,
    the next batches are still delivered, and the stop saves the last position."""
    checkpoints = StuckCheckpoints(settings.container_client())
    served = serve(hello.app, 4, settings, timer_interval=0.5, checkpoints=checkpoints,
                   max_batch_size=1, checkpoint_every=1)
    try:
        client = served.client()
        ids = [client.start(hello.Hello()) for _ in range(4)]
        assert [client.wait(i, timeout=60) for i in ids] == ["Hello World"] * 4
        assert checkpoints.stuck >= 1  # the results came while a checkpoint hung
        status = served.host.status
        assert wait_until(lambda: len(status.health()) == 4, 30)  # no more wake-ups
        seen = [-1]

        def settled() -> bool:  # no invocation for a second
            seen.append(served.runner.stats.invocations)
            return seen[-2] == seen[-1]

        assert wait_until(settled, 60, poll=1.0)
    finally:
        checkpoints.release.set()
        served.stop()
    producer = settings.producer(settings.partition_hub)
    try:
        for p in range(4):
            last = producer.get_partition_properties(str(p))["last_enqueued_sequence_number"]
            saved = checkpoints.get(settings.partition_hub, settings.consumer_group, str(p))
            assert saved == last, f"partition {p}: checkpoint {saved}, last event {last}"
    finally:
        producer.close()
