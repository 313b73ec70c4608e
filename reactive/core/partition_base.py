"""The records a partition holds, and the outbox through which every part of it sends
messages, answers callers and reports errors. The parts of the partition (key locks and
state operations, timers and activities, orchestration lifecycle) build on this class."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple, Required, TypedDict

from reactive.client import Status
from reactive.core import messages as m
from reactive.core import results, routing
from reactive.core.effects import Effects
from reactive.core.runner import Run
from reactive.model import Activity, Event, Orchestration, RetryPolicy, State
from reactive.schema import OperationInfo, PKey, Schema

# the sections of a snapshot written entry by entry (a delta carries the changed ones)
KEYED_SECTIONS = ("states", "queues", "runs", "completed")


class StatusEntry(TypedDict, total=False):
    """A top-level instance's status as its partition reports it to the host (and keeps
    it, once finished): JSON as it stands."""

    name: Required[str]  # the orchestration's registered name
    status: Required[Status]  # never "pending": that is only the hosts' to say
    result: Any  # the encoded result, when completed
    error: Any  # the encoded error (reactive.core.results), when failed or terminated
    custom_status: Any  # what the code last set with ctx.set_custom_status


class TimerKind(StrEnum):
    CALL = "call"  # an orchestration's call (a sleep) resolves
    RETRY = "retry"  # an activity's next attempt starts


class Timer(NamedTuple):
    """A durable timer; the heap orders timers by due time, then by when they were set."""

    due: float
    seq: int
    instance_id: str  # the run's tag
    call: int
    kind: TimerKind


@dataclass(slots=True)
class HeldAnswer:
    """The answer to an ended run's caller, held until the run has settled."""

    reply: m.Reply | None
    ok: bool
    value: Any
    source: str


@dataclass(slots=True)
class Settling:
    """A run that ended while calls it made inside its locks were in flight: what it still
    waits for, then the lock release and the answer to its caller, both held until then."""

    wait: list[int]
    release: tuple[str, tuple[PKey, ...]] | None
    answer: HeldAnswer | None = None


@dataclass(slots=True)
class PendingActivity:
    """An activity started and not yet finished (or waiting for its retry timer)."""

    op: Activity[Any]
    attempt: int
    policy: RetryPolicy | None
    fork: bool
    waiting_retry: bool = False


class PartitionBase:
    """One partition's records and outbox."""

    def __init__(self, schema: Schema, index: int, count: int) -> None:
        self.schema = schema
        self.index = index
        self.count = count
        self.clock = 0.0
        self.started = False
        self.states: dict[tuple[str, PKey], State[Any]] = {}
        self.queues: dict[PKey, deque[m.LocalOp | m.Acquire]] = {}
        self.runs: dict[str, Run] = {}
        self.completed: dict[str, StatusEntry] = {}
        self.timers: list[Timer] = []
        self.timer_seq = 0
        self.activities: dict[tuple[str, int], PendingActivity] = {}
        self.initializing: dict[tuple[str, PKey], list[m.LocalOp | m.Commit | m.Exists]] = {}
        self.early_events: dict[str, list[tuple[str, Any]]] = {}
        self.early_count = 0  # events in early_events, bounded by schema.keep_early_events
        # runs that ended (terminated, or failed for good) while something they sent inside
        # their locks was still in flight, by tag
        self.settling: dict[str, Settling] = {}
        # whether the stored head names this code's record layouts (see core.snapshot)
        self.layouts_stored = False
        self._effects = Effects()
        self._local: deque[m.Message] = deque()
        # what changed since the last take_delta(): a commit writes only these entries
        self._dirty: dict[str, set[Any]] = {name: set() for name in KEYED_SECTIONS}
        # of each queue changed since then: [its length then, entries appended since]; a
        # queue only loses its head and grows at its tail, so a delta can carry the edit
        # (drop so many, add these) instead of the whole queue
        self._queue_edits: dict[PKey, list[int]] = {}
        # top-level instances whose status changed since the last take_status_changes()
        self._status_changes: dict[str, StatusEntry] = {}
        # message type -> handler, filled in by the partition
        self._handlers: dict[type[Any], Callable[[Any], None]] = {}

    # -- sending ---------------------------------------------------------------------------

    def send(self, msg: m.Message) -> None:
        if msg.dest == self.index:
            self._local.append(msg)
        else:
            self._effects.sends.append(msg)

    def send_start(
        self,
        instance_id: str,
        op: Orchestration[Any],
        reply: m.Reply | None,
        lock_keys: tuple[PKey, ...] | None,
        holder: str | None = None,
    ) -> None:
        self.send(routing.start(self.schema, self.count, instance_id, op, reply, lock_keys, holder))

    def send_release(self, lock_id: str, keys: tuple[PKey, ...]) -> None:
        for msg in routing.releases(self.schema, self.count, lock_id, keys):
            self.send(msg)

    def send_commits(
        self, lock_id: str, event: Event, keys: Any, locked: bool, holder: str | None = None
    ) -> None:
        for dest, group in routing.by_owner(self.schema, self.count, tuple(keys)).items():
            self.send(m.Commit(dest, lock_id, event, group, locked, holder))

    def app_log(self, level: int, text: str) -> None:
        self._effects.logs.append((level, text))

    def report(self, source: str, error: Any) -> None:
        """An error nobody awaits (a failed fork, an event handler): the host's hook gets it."""
        where = f" (at {error['where']})" if isinstance(error, dict) and "where" in error else ""
        self._effects.errors.append(f"{source}: {error['type']}: {error['message']}{where}")

    def _take_effects(self) -> Effects:
        effects, self._effects = self._effects, Effects()
        return effects

    def _drain_local(self) -> None:
        while self._local:
            self._dispatch(self._local.popleft())

    def _dispatch(self, msg: m.Message) -> None:
        try:
            self._handlers[type(msg)](msg)
        except Exception as exc:  # a bug or bad input must not stop the partition
            logging.getLogger("reactive").exception("failed to process %s", type(msg).__name__)
            self.report(f"partition {self.index} processing {type(msg).__name__}",
                        self.encode_error(exc))

    # -- results and errors ----------------------------------------------------------------

    def encode_error(self, exc: BaseException) -> dict[str, Any]:
        return results.encode_error(exc)

    def decode_error(self, data: Any) -> BaseException:
        return results.decode_error(self.schema, data)

    def encode_result(self, info: OperationInfo, value: Any) -> tuple[bool, Any]:
        return results.encode_result(info, value)

    def reply(self, reply: m.Reply | None, ok: bool, value: Any, source: str) -> None:
        if reply is None:
            return
        dest, instance_id, call, is_fork = reply
        if is_fork and not ok:
            self.report(source, value)
        if dest >= 0:
            self.send(m.Response(dest, instance_id, call, ok, None if is_fork else value))

    # -- runs ------------------------------------------------------------------------------

    def run_for(self, tag: str) -> Run | None:
        """The live run a reply, timer or activity result addressed by ``tag`` belongs to."""
        run = self.runs.get(tag)
        if run is not None and run.tag == tag:
            return run
        instance_id, sep, generation = tag.rpartition("~")
        run = self.runs.get(instance_id) if sep and generation.isdigit() else None
        return run if run is not None and run.tag == tag else None

    def touch_run(self, instance_id: str) -> None:
        self._dirty["runs"].add(instance_id)

    def edit_queue(self, key: PKey, appended: int = 0) -> None:
        """Call before changing ``key``'s queue (``appended``: entries about to be added
        at its tail; anything else may only take entries from its head)."""
        edit = self._queue_edits.get(key)
        if edit is None:
            queue = self.queues.get(key)
            self._queue_edits[key] = [0 if queue is None else len(queue), appended]
            self._dirty["queues"].add(key)
        else:
            edit[1] += appended

    def clear_marks(self) -> None:
        """Forget what changed: the store now holds everything as it is."""
        for dirty in self._dirty.values():
            dirty.clear()
        self._queue_edits.clear()
