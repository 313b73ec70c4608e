from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from hosts.azure.settings import AzureSettings
from tests.azure.servers import Azurite, azurite, azurite_binary
from tests.services.servers import azurite_installed, start_azurite
from tests.standins.eventhubs import StandIn, start_standin

# hubs for the session; a test that needs empty hubs takes the next unused set
HUB_SETS = 40
HUBS = {f"{kind}{n}": count for n in range(HUB_SETS) for kind, count in (("p", 4), ("in", 2))}


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Azurite]:
    """Azurite: the project's pinned install (tests/services) when present, else a binary
    found on this machine; skipped with the reason when there is none."""
    if azurite_installed():
        shared = start_azurite()
        try:
            yield Azurite(shared.blob_port, shared.pid)
        finally:
            shared.stop()
        return
    binary = azurite_binary()
    if binary is None:
        pytest.skip("Azurite is not installed: run `make test` (npm ci --prefix tests/services)")
    with azurite(binary) as server:
        yield server


@pytest.fixture
def blob_connection(azurite_server: Azurite) -> str:
    return azurite_server.connection_string


@pytest.fixture
def container_name() -> str:
    """A fresh container per test, so tests never see each other's blobs."""
    return "t" + uuid.uuid4().hex[:20]


@pytest.fixture(scope="session")
def standin() -> Iterator[StandIn]:
    """The Event Hubs stand-in, a subprocess on 127.0.0.1, with the hubs the tests use."""
    server = start_standin(HUBS)
    try:
        yield server
    finally:
        server.stop()


_next_hubs = iter(range(HUB_SETS))


@pytest.fixture
def hubs() -> tuple[str, str]:
    """A partition hub (4 partitions) and an ingress hub (2) that no other test used."""
    n = next(_next_hubs)
    return f"p{n}", f"in{n}"


@pytest.fixture
def settings(
    azurite_server: Azurite, standin: StandIn, hubs: tuple[str, str], container_name: str
) -> AzureSettings:
    """Settings for a 4-partition app on fresh hubs and a fresh container."""
    partition_hub, ingress_hub = hubs
    return AzureSettings(
        4,
        storage_connection=azurite_server.connection_string,
        eventhubs_connection=standin.connection_string(partition_hub),
        partition_hub=partition_hub,
        ingress_hub=ingress_hub,
        container=container_name,
        catchup_group="catchup",
        api_key="test-key",
    )
