"""Reading a hub partition back in tests."""

from __future__ import annotations

from azure.eventhub import EventData

from hosts.azure.events import read_range
from hosts.azure.settings import AzureSettings


def read_partition(settings: AzureSettings, hub: str, partition: int) -> list[EventData]:
    """Every event in a partition, oldest first."""
    client = settings.producer(hub)
    try:
        props = client.get_partition_properties(str(partition))
    finally:
        client.close()
    if props["is_empty"]:
        return []
    return read_range(
        settings, hub, partition, props["beginning_sequence_number"],
        props["last_enqueued_sequence_number"],
    )
