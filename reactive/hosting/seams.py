"""The seams a host implements: a sender, a snapshot store and a status store.

The partition worker (:mod:`reactive.hosting.worker`) is written once against these. An
invocation is handed a batch of inbound records (pushed by a trigger, or read from a local
log by a driver), processes it, commits, then sends:

1. load the partition: a base snapshot plus the deltas committed after it;
2. send the outbox the last commit saved, if it may not have been sent;
3. process the batch; activity results and due timers it causes are processed in memory;
4. append a delta (what changed, the new outbox, status changes), fenced by the version
   it loaded, so that a stale invocation loses and has sent nothing;
5. send the outbox, publish the status changes, emit log lines, mark it delivered;
6. the host acknowledges (deletes, checkpoints) the batch.

Every seam method may be called from several processes at once for one partition; only
the fence decides who commits.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from reactive.client import Status as Status  # re-exported: hosts read it from here
from reactive.errors import ReactiveError


@dataclass(frozen=True, slots=True)
class Inbound:
    """One record handed to an invocation: its bytes, the time the transport accepted it
    (seconds since the epoch) and the transport's own reference to it (a log position, a
    receipt handle, an Event Hubs sequence number), which the worker never interprets."""

    data: bytes
    time: float
    ref: Hashable = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for a partition's input. ``dedup`` is unique per (sender, sequence
    number) or client request, and equal on every resend: brokers that de-duplicate
    (SQS FIFO) may use it; receivers de-duplicate on their own either way."""

    dest: int
    data: bytes
    dedup: str


class Sender(Protocol):
    def send(self, messages: Sequence[Outgoing]) -> None:
        """Deliver to the destinations' inputs, durably when this returns, in order per
        destination. At least once: a retry after a failure may deliver some twice."""


class StaleSnapshotError(ReactiveError):
    """A snapshot write lost to a newer one: this invocation is stale and must stop."""


@dataclass(frozen=True, slots=True)
class Stored:
    """What a store holds for a partition: a base snapshot, the deltas committed after it
    in order, the version that fences the next write (None: nothing stored yet), and the
    last version whose outbox was marked delivered."""

    base: bytes | None = None
    deltas: tuple[bytes, ...] = ()
    version: str | None = None
    delivered: str | None = None


class SnapshotStore(Protocol):
    """Per-partition snapshots as a base plus fenced deltas.

    A write succeeds only if the stored version is still ``expected``; otherwise it raises
    :class:`StaleSnapshotError` and changes nothing. On S3 a delta is an object created
    with ``If-None-Match: *`` under the next number (the create is the fence); on Blob
    Storage an append with an append-position condition; in a folder, a transaction."""

    def load(self, partition: int) -> Stored: ...

    def append(self, partition: int, delta: bytes, expected: str | None) -> str:
        """Add a delta after the stored ones; the new version."""

    def compact(self, partition: int, base: bytes, expected: str | None) -> str:
        """Replace the base and every delta by ``base`` (also the first write)."""

    def mark_delivered(self, partition: int, version: str) -> None:
        """The outbox of commit ``version`` was sent and its output emitted; a later load
        reports it in :attr:`Stored.delivered` so that nothing is emitted twice."""

    def dead_letter(self, partition: int, data: bytes, reason: str) -> None:
        """Keep an input that cannot be processed, with the reason."""


@runtime_checkable
class GroupCommit(Protocol):
    """A store that may hold a commit back for a moment so that the next invocations'
    commits share its durable write (the state folder's fsync). The method's name is
    the whole check (``isinstance`` on a protocol looks at names only): keep it unique."""

    def commit_held(self) -> None:
        """Make every commit so far durable now: the worker calls this before it runs
        activities, so that user code of any duration never holds commits back."""


@dataclass(frozen=True, slots=True)
class StatusRecord:
    """An orchestration instance's status as clients read it. ``result`` is the JSON of
    the result, ``error`` the encoded error (``reactive.core.results``)."""

    instance_id: str
    name: str
    status: Status
    partition: int
    created: float
    updated: float
    result: Any = None
    error: Any = None
    custom_status: Any = None  # what the orchestration last set with ctx.set_custom_status


@dataclass(frozen=True, slots=True)
class PartitionHealth:
    """What a partition's last commit published about itself."""

    partition: int
    commit: str
    committed_at: float
    next_due: float | None = None
    snapshot_bytes: int = 0
    dead_letters: int = 0
    live_runs: int = 0  # orchestrations and initializers in memory
    # messages held until an earlier one from the same sender arrives, and when the oldest
    # of them arrived: a held message that stays is a gap in a sender's stream (its
    # predecessor lost or parked, say in a dead-letter queue), which stalls that sender
    held: int = 0
    held_since: float | None = None
    # the commit's number in the partition's history (1, 2, ...; 0: not known). Fencing
    # makes it name one commit, and a commit published again keeps it, so stores may
    # order publishes by it rather than by clock (``reactive.hosting.statuslog`` does)
    number: int = 0


@dataclass(frozen=True, slots=True)
class StatusQuery:
    status: Status | None = None
    name: str | None = None
    since: float | None = None  # created at or after
    until: float | None = None  # created before
    after: str | None = None  # paging: instance ids greater than this
    limit: int = 100
    extra: dict[str, Any] = field(default_factory=dict)


class StatusStore(Protocol):
    """Instance statuses, readable without restoring a partition."""

    def publish(self, records: Sequence[StatusRecord], health: PartitionHealth) -> None:
        """One commit's status changes, in one write where the backend allows. A record
        replaces a stored one only if it is not older (``updated``, or the commit's
        ``health.number`` in stores that order by it)."""

    def put_pending(self, record: StatusRecord) -> bool:
        """Record a submitted start if the instance is unknown; False if it exists."""

    def get(self, instance_id: str) -> StatusRecord | None: ...

    def query(self, query: StatusQuery) -> list[StatusRecord]:
        """Matching records ordered by instance id, at most ``query.limit``."""

    def health(self) -> list[PartitionHealth]: ...

    def purge(self, instance_id: str) -> bool:
        """Forget a finished instance's status; False if unknown or not finished."""

