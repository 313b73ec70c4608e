"""Event Hubs events as the Functions host hands them to a function, and reading a
partition's range directly (the catch-up read)."""

from __future__ import annotations

import json
import threading
import types
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
from azure.eventhub import EventData, PartitionContext
from azure.functions import meta
from azure.functions.eventhub import EventHubTriggerConverter

from hosts.azure.settings import AzureSettings
from reactive import ReactiveError

READ_WAIT = 0.5  # seconds without events that end a catch-up read


class CatchUpError(ReactiveError):
    """A partition's missing range could not be read."""


def trigger_metadata(
    events: Sequence[EventData], hub: str, consumer_group: str, partition_id: str
) -> dict[str, meta.Datum]:
    """The trigger metadata the Functions host sends with a cardinality-many batch."""
    system = [
        {
            "EnqueuedTimeUtc": (e.enqueued_time or datetime.now(UTC)).isoformat(),
            "SequenceNumber": e.sequence_number,
            "Offset": int(e.offset) if e.offset is not None else None,
            "PartitionKey": e.partition_key,
        }
        for e in events
    ]
    properties = [
        {_text(k): _text(v) for k, v in (e.properties or {}).items()} for e in events
    ]
    context = {
        "EventHubName": hub, "ConsumerGroup": consumer_group, "PartitionId": partition_id,
        "FullyQualifiedNamespace": "",
    }
    return {
        "SystemPropertiesArray": meta.Datum(json.dumps(system), "json"),
        "PropertiesArray": meta.Datum(json.dumps(properties), "json"),
        "PartitionContext": meta.Datum(json.dumps(context), "json"),
    }


def _text(value: Any) -> Any:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def trigger_batch(
    events: Sequence[EventData], hub: str, consumer_group: str, partition_id: str
) -> list[func.EventHubEvent]:
    """Decode a batch through the library's own trigger converter, as the Python worker
    does for ``cardinality=many`` with ``dataType=binary``."""
    bodies = [event_bytes(e) for e in events]
    data = meta.Datum(types.SimpleNamespace(bytes=bodies), "collection_bytes")
    decoded = EventHubTriggerConverter.decode(
        data, trigger_metadata=trigger_metadata(events, hub, consumer_group, partition_id)
    )
    assert isinstance(decoded, list)
    return decoded


def event_bytes(event: EventData) -> bytes:
    body: Any = event.body
    return body if isinstance(body, bytes) else b"".join(body)


def number(event: EventData) -> int:
    """An event's sequence number (every received event has one)."""
    assert event.sequence_number is not None
    return event.sequence_number


def partition_of(events: Sequence[func.EventHubEvent]) -> int | None:
    """The partition id the trigger's metadata names."""
    for event in events:
        metadata = event.metadata or {}
        context = metadata.get("PartitionContext") or {}
        if isinstance(context, str):
            context = json.loads(context)
        if "PartitionId" in context:
            return int(context["PartitionId"])
    return None


def read_range(
    settings: AzureSettings, hub: str, partition: int, first: int, last: int,
    timeout: float = 30.0,
) -> list[EventData]:
    """The events with sequence numbers ``first`` to ``last`` (those the hub still
    retains), read with a consumer of its own."""
    if last < first:
        return []
    client = settings.consumer(hub, settings.catchup_group)
    got: list[EventData] = []
    done = threading.Event()
    failure: list[BaseException] = []

    def on_batch(_: PartitionContext, events: list[EventData]) -> None:
        for event in events:
            if number(event) > last:
                done.set()
                return
            got.append(event)
        if not events or (got and number(got[-1]) >= last):
            done.set()

    def on_error(_: PartitionContext | None, error: Exception) -> None:
        failure.append(error)
        done.set()

    def run() -> None:
        try:
            client.receive_batch(
                on_batch, on_error=on_error, partition_id=str(partition),
                starting_position=first, starting_position_inclusive=True,
                max_batch_size=500, max_wait_time=READ_WAIT,
            )
        except Exception as exc:
            failure.append(exc)
            done.set()

    thread = threading.Thread(target=run, name=f"catch-up-{hub}-{partition}", daemon=True)
    thread.start()
    finished = done.wait(timeout)
    client.close()
    thread.join(10)
    if failure:
        raise CatchUpError(f"reading {hub}/{partition} [{first}, {last}]: {failure[0]}")
    if not finished:
        raise CatchUpError(f"reading {hub}/{partition} [{first}, {last}] timed out")
    return got
