"""The Azure host as a host of the feature and scenario suites (kind ``azure``):
:class:`hosts.azure.testing.AzureTestHost` over Azurite and the Event Hubs stand-in. Each
host gets a fresh container and a partition hub no other host used.

Azurite and the stand-in are started on first use (``tests.services.servers``: by pid,
stopped when the process exits), so ``python -m pytest tests/features`` needs nothing else.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from hosts.azure.testing import AzureTestHost, azure_test_host
from reactive import App
from tests.services.servers import Azurite, PythonServer, start_azurite, start_eventhubs_standin
from tests.standins.eventhubs.server import connection_string

HUBS_PER_STANDIN = 64  # fresh hubs of one partition count per stand-in process


class _Services:
    """Azurite and stand-ins shared by every Azure feature host of this process; a
    stand-in per partition count, replaced by a fresh one when its hubs are used up."""

    def __init__(self) -> None:
        self._azurite: Azurite | None = None
        self._standins: dict[int, tuple[PythonServer, Iterator[str]]] = {}
        self._lock = threading.Lock()

    def storage(self) -> str:
        with self._lock:
            if self._azurite is None or not self._azurite.alive():
                self._azurite = start_azurite()
            return self._azurite.connection_string

    def hub(self, partitions: int) -> tuple[str, str]:
        """A hub with ``partitions`` partitions that no host used, and a connection
        string to its namespace."""
        with self._lock:
            entry = self._standins.get(partitions)
            name = next(entry[1], None) if entry is not None and entry[0].alive() else None
            if entry is None or name is None:
                if entry is not None:
                    entry[0].stop()
                names = [f"f{partitions}x{n}" for n in range(HUBS_PER_STANDIN)]
                server = start_eventhubs_standin({n: partitions for n in names})
                entry = (server, iter(names))
                self._standins[partitions] = entry
                name = next(entry[1])
            return name, connection_string(entry[0].port, name)


SERVICES = _Services()


@contextlib.contextmanager
def azure_host(app: App, partitions: int, seed: int = 0) -> Iterator[AzureTestHost]:
    """An :class:`AzureTestHost` for one scenario, closed (and its container deleted)
    afterwards."""
    hub, connection = SERVICES.hub(partitions)
    with azure_test_host(app, SERVICES.storage(), connection, hub, partitions, seed,
                         catchup_group="catchup") as host:
        yield host
