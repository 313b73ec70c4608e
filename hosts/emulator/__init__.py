"""The emulator host: every partition in one process, a seeded schedule, fault injection."""

from hosts.emulator.host import Emulator
from hosts.emulator.options import ALL_FAULTS, Faults
from reactive.hosting.client import HostClient as EmulatorClient

__all__ = ["ALL_FAULTS", "Emulator", "EmulatorClient", "Faults"]
