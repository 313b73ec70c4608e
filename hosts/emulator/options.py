"""Emulator settings: the schedule seed, the clock, and the faults to inject."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Faults:
    """Faults the emulator injects. None of them may change any result.

    ``roundtrip``: serialize and parse every message; ``restore_probability``: after a
    delivery, snapshot the partition to bytes and replace it by a restored copy (its live
    orchestrations replay; its pending activities run again); ``duplicate_probability``:
    deliver a message twice (the receiver must drop the copy).
    """

    roundtrip: bool = False
    restore_probability: float = 0.0
    duplicate_probability: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("restore_probability", "duplicate_probability"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")


ALL_FAULTS = Faults(roundtrip=True, restore_probability=0.3, duplicate_probability=0.2)

Clock = Literal["virtual", "real"]
