from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.azure.servers import Azurite, azurite, azurite_binary


@pytest.fixture(scope="session")
def azurite_server() -> Iterator[Azurite]:
    binary = azurite_binary()
    if binary is None:
        pytest.skip("no Azurite binary (npm install --prefix /tmp/azurite azurite@3.37.0)")
    with azurite(binary) as server:
        yield server


@pytest.fixture
def blob_connection(azurite_server: Azurite) -> str:
    return azurite_server.connection_string


@pytest.fixture
def container_name() -> str:
    """A fresh container per test, so tests never see each other's blobs."""
    return "t" + uuid.uuid4().hex[:20]
