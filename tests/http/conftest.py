"""Fixtures: the API over the emulator-backed fake (unit tests of the HTTP layer)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from hosts.http import create_app
from tests.http.fakes import DictStatusStore, EmulatorClient2
from tests.http.opsapp import app as ops_app

KEY = "test-key"


@dataclass
class FakeEnv:
    http: TestClient
    client: EmulatorClient2
    status: DictStatusStore


@pytest.fixture
def fake() -> Iterator[FakeEnv]:
    status = DictStatusStore()
    client = EmulatorClient2(ops_app, status)
    app = create_app(ops_app.compile(), client, status, api_key=KEY)
    with TestClient(app, headers={"x-api-key": KEY}) as http:
        yield FakeEnv(http, client, status)
