"""The Event Hubs sender against the stand-in: partitions, order, byte-split batches and
claim checks."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from hosts.azure.sender import CLAIM, ClaimChecks, EventHubSender
from hosts.azure.settings import AzureSettings
from reactive.hosting.seams import Outgoing
from tests.azure.reading import read_partition
from tests.standins.eventhubs import StandIn

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def container(blob_connection: str, container_name: str) -> Iterator[ContainerClient]:
    service = BlobServiceClient.from_connection_string(blob_connection)
    client = service.create_container(container_name)
    yield client
    client.delete_container()


def test_sends_to_partitions_in_order_splitting_by_bytes(
    standin: StandIn, container: ContainerClient, hubs: tuple[str, str],
) -> None:
    hub = hubs[0]
    settings = AzureSettings(4, eventhubs_connection=standin.connection_string(hub))
    sender = EventHubSender(lambda: settings.producer(hub), ClaimChecks(container))
    try:
        big = b"x" * 400_000  # three of these do not fit one 1 MB batch
        messages = [Outgoing(n % 3, b"%d:" % n + big, f"m{n}") for n in range(9)]
        messages.append(Outgoing(1, b"small", "s"))
        sender.send(messages)
        assert sender.calls == 6  # two batches for each of the three partitions
        for p in range(3):
            bodies = [e.body_as_str()[:3] for e in read_partition(settings, hub, p)]
            expected = [f"{n}:x" for n in range(p, 9, 3)] + (["sma"] if p == 1 else [])
            assert bodies == expected
        assert read_partition(settings, hub, 3) == []
    finally:
        sender.close()


def test_oversized_messages_travel_as_claim_checks(
    standin: StandIn, container: ContainerClient, hubs: tuple[str, str],
) -> None:
    hub = hubs[0]
    settings = AzureSettings(4, eventhubs_connection=standin.connection_string(hub))
    claims = ClaimChecks(container)
    sender = EventHubSender(lambda: settings.producer(hub), claims)
    try:
        huge = b"y" * 1_500_000
        sender.send([Outgoing(2, b"before", "a"), Outgoing(2, huge, "b"),
                     Outgoing(2, b"after", "c")])
        sender.send([Outgoing(2, huge, "b")])  # a resend writes the same claim blob
        events = read_partition(settings, hub, 2)
        bodies = [b"".join(e.body) for e in events]
        assert bodies[0] == b"before" and bodies[2] == b"after"
        assert bodies[1].startswith(CLAIM) and bodies[3] == bodies[1]
        assert claims.resolve(bodies[1]) == huge
        assert claims.resolve(b"plain") == b"plain"
        assert sender.claimed == 2
        assert len(list(container.list_blobs(name_starts_with="claims/"))) == 1
    finally:
        sender.close()
