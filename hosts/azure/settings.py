"""The Azure host's settings, from environment variables (Function App settings), and the
SDK clients they describe.

Connections follow the Functions conventions, so that the triggers and this code read the
same settings: ``AzureWebJobsStorage`` (a connection string) or
``AzureWebJobsStorage__blobServiceUri`` (a managed identity), and ``EventHubConnection``
(a connection string) or ``EventHubConnection__fullyQualifiedNamespace`` (a managed
identity). Credentials never come from code.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.eventhub import EventHubConsumerClient, EventHubProducerClient
from azure.storage.blob import BlobServiceClient, ContainerClient

from reactive import ReactiveError

STORAGE = "AzureWebJobsStorage"
EVENTHUBS = "EventHubConnection"


class SettingsError(ReactiveError):
    """A required setting is missing or malformed."""


def _credential() -> Any:
    try:
        identity = importlib.import_module("azure.identity")
    except ImportError as exc:  # pragma: no cover - depends on the deployment
        raise SettingsError(
            "a managed-identity connection needs the azure-identity package"
        ) from exc
    return identity.DefaultAzureCredential()


def strip_entity_path(connection: str) -> tuple[str, str | None]:
    """A namespace connection string and the ``EntityPath`` it named, if any."""
    parts, entity = [], None
    for part in connection.strip().strip(";").split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "entitypath":
            entity = value
        elif part:
            parts.append(part)
    return ";".join(parts), entity


@dataclass(frozen=True)
class AzureSettings:
    partitions: int
    storage_connection: str | None = None
    storage_url: str | None = None
    eventhubs_connection: str | None = None
    eventhubs_namespace: str | None = None
    partition_hub: str = "partitions"
    ingress_hub: str = "ingress"
    consumer_group: str = "$Default"  # the trigger's (and the local runner's)
    # catch-up reads use a group of their own: Event Hubs refuses a plain receiver on a
    # partition that the trigger holds with an owner level in the same group
    catchup_group: str = "$Default"
    container: str = "reactive"
    epoch: str = "1"
    time_budget: float = 30.0  # seconds of work per invocation before it commits and stops
    wait_limit: float = 2.0  # timers due this soon are awaited within the invocation
    api_key: str | None = None
    # seconds a consumer's socket read waits: the SDK's sync receiver hands events over
    # only when a read times out (or after reading its prefetch count of frames), so this
    # is the receive latency of every hop (the SDK's default is 0.2 s). 5 ms rather than
    # 10: bank on azure-local ran 33 to 40 transfers/s against 26 to 29, for an idle
    # local runner's CPU of 6.5 % of a core against 5.2 % (2 ms: 10.8 %, no faster)
    receive_timeout: float = 0.005

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AzureSettings:
        env = os.environ if env is None else env
        raw = env.get("REACTIVE_PARTITIONS", "")
        if not raw.isdigit() or int(raw) < 1:
            raise SettingsError(
                "REACTIVE_PARTITIONS must be the partition hub's partition count "
                f"(a positive integer), got {raw!r}"
            )
        settings = cls(
            partitions=int(raw),
            storage_connection=env.get(STORAGE) or None,
            storage_url=env.get(f"{STORAGE}__blobServiceUri") or None,
            eventhubs_connection=env.get(EVENTHUBS) or None,
            eventhubs_namespace=env.get(f"{EVENTHUBS}__fullyQualifiedNamespace") or None,
            partition_hub=env.get("REACTIVE_PARTITION_HUB", "partitions"),
            ingress_hub=env.get("REACTIVE_INGRESS_HUB", "ingress"),
            consumer_group=env.get("REACTIVE_CONSUMER_GROUP", "$Default"),
            catchup_group=env.get("REACTIVE_CATCHUP_GROUP", "$Default"),
            container=env.get("REACTIVE_CONTAINER", "reactive"),
            epoch=env.get("REACTIVE_EPOCH", "1"),
            time_budget=float(env.get("REACTIVE_TIME_BUDGET", "30")),
            wait_limit=float(env.get("REACTIVE_WAIT_LIMIT", "2")),
            api_key=env.get("REACTIVE_API_KEY") or None,
        )
        if not (settings.storage_connection or settings.storage_url):
            raise SettingsError(f"set {STORAGE} or {STORAGE}__blobServiceUri")
        if not (settings.eventhubs_connection or settings.eventhubs_namespace):
            raise SettingsError(f"set {EVENTHUBS} or {EVENTHUBS}__fullyQualifiedNamespace")
        return settings

    def environment(self) -> dict[str, str]:
        """The environment variables that describe these settings (for a child process)."""
        env = {
            "REACTIVE_PARTITIONS": str(self.partitions),
            "REACTIVE_PARTITION_HUB": self.partition_hub,
            "REACTIVE_INGRESS_HUB": self.ingress_hub,
            "REACTIVE_CONSUMER_GROUP": self.consumer_group,
            "REACTIVE_CATCHUP_GROUP": self.catchup_group,
            "REACTIVE_CONTAINER": self.container,
            "REACTIVE_EPOCH": self.epoch,
            "REACTIVE_TIME_BUDGET": repr(self.time_budget),
            "REACTIVE_WAIT_LIMIT": repr(self.wait_limit),
        }
        optional = {
            STORAGE: self.storage_connection,
            f"{STORAGE}__blobServiceUri": self.storage_url,
            EVENTHUBS: self.eventhubs_connection,
            f"{EVENTHUBS}__fullyQualifiedNamespace": self.eventhubs_namespace,
            "REACTIVE_API_KEY": self.api_key,
        }
        env.update({k: v for k, v in optional.items() if v})
        return env

    # -- clients -------------------------------------------------------------------------

    def container_client(self) -> ContainerClient:
        if self.storage_connection:
            service = BlobServiceClient.from_connection_string(self.storage_connection)
        else:
            assert self.storage_url is not None
            service = BlobServiceClient(self.storage_url, credential=_credential())
        return service.get_container_client(self.container)

    def producer(self, hub: str) -> EventHubProducerClient:
        if self.eventhubs_connection:
            connection, _ = strip_entity_path(self.eventhubs_connection)
            return EventHubProducerClient.from_connection_string(connection, eventhub_name=hub)
        assert self.eventhubs_namespace is not None
        return EventHubProducerClient(self.eventhubs_namespace, hub, _credential())

    def consumer(
        self, hub: str, group: str | None = None, receive_timeout: float | None = None
    ) -> EventHubConsumerClient:
        """A consumer whose socket reads wait ``receive_timeout`` (default: the
        settings'), which is its receive latency and how often it wakes when idle."""
        group = group or self.consumer_group
        timeout = self.receive_timeout if receive_timeout is None else receive_timeout
        if self.eventhubs_connection:
            connection, _ = strip_entity_path(self.eventhubs_connection)
            return EventHubConsumerClient.from_connection_string(
                connection, group, eventhub_name=hub, socket_timeout=timeout
            )
        assert self.eventhubs_namespace is not None
        return EventHubConsumerClient(self.eventhubs_namespace, hub, group, _credential(),
                                      socket_timeout=timeout)
