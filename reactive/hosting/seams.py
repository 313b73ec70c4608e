"""The two seams a serverless host implements: a transport and a snapshot store.

The host loop (:mod:`reactive.hosting.loop`) is written once against these; the emulator's
folder mode, Azure (Event Hubs + Blob Storage) and AWS (SQS + S3) each provide them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from reactive.errors import ReactiveError


@dataclass(frozen=True, slots=True)
class Record:
    """One entry of a partition's input log: its position, the time the transport
    accepted it (seconds since the epoch), and its bytes."""

    position: int
    time: float
    data: bytes


class Transport(Protocol):
    """Ordered, durable input logs, one per partition."""

    def append(self, partition: int, payloads: Sequence[bytes]) -> None:
        """Append in order; durable when this returns. Order is kept per caller."""

    def read(self, partition: int, after: int, limit: int) -> list[Record]:
        """Up to ``limit`` records with positions greater than ``after``, in order."""

    def acknowledge(self, partition: int, upto: int) -> None:
        """Everything up to ``upto`` is covered by a saved snapshot (queues may delete it)."""


class StaleSnapshotError(ReactiveError):
    """A snapshot write lost to a newer one: this invocation is stale and must stop."""


class SnapshotStore(Protocol):
    """Per-partition snapshots with optimistic, version-fenced writes."""

    def load(self, partition: int) -> tuple[bytes | None, str | None]:
        """The snapshot bytes and their version, or (None, None) if there is none."""

    def save(self, partition: int, data: bytes, expected_version: str | None) -> str:
        """Write if the stored version is still ``expected_version`` (None: no snapshot
        yet); returns the new version; raises :class:`StaleSnapshotError` otherwise."""

    def dead_letter(self, partition: int, data: bytes, reason: str) -> None:
        """Keep an input that cannot be processed, with the reason."""
