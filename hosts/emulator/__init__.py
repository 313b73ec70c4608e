"""The emulator host: every partition in one process, a seeded schedule, fault injection."""

from hosts.emulator.client import EmulatorClient
from hosts.emulator.host import Emulator
from hosts.emulator.options import ALL_FAULTS, Faults

__all__ = ["ALL_FAULTS", "Emulator", "EmulatorClient", "Faults"]
