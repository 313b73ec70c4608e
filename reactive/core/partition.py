"""The partition: a deterministic, sans-IO state machine.

``process(message, now)`` applies one input and returns the effects (messages for other
partitions, activities to run, log lines, unhandled errors). Messages a partition sends to
itself are processed within the same call. ``snapshot()`` / ``Partition.restore()`` move
it to bytes and back; a restored partition replays its live orchestrations.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import ValidationError

from reactive import errors
from reactive.core import messages as m
from reactive.core import results, routing, states
from reactive.core.context import ReadContext, SubscriptionContext, UpdateContext
from reactive.core.orchestration import Run
from reactive.model import Activity, Event, Operation, Orchestration, RetryPolicy, State
from reactive.schema import Kind, OperationInfo, PKey, Schema, StateInfo

SNAPSHOT_VERSION = 2
_KEYED_SECTIONS = ("states", "queues", "runs", "completed")
_NO_PARENT: m.Reply = (-1, "", 0, True)  # a detached fork: nobody to answer


@dataclass(slots=True)
class ActivityTask:
    """An activity the host must run; its result comes back as an ``ActivityResult``."""

    partition: int
    instance_id: str
    call: int
    attempt: int
    op: Activity[Any]


@dataclass(slots=True)
class Effects:
    sends: list[m.Message] = field(default_factory=list)
    activities: list[ActivityTask] = field(default_factory=list)
    logs: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _PendingActivity:
    op: Activity[Any]
    attempt: int
    policy: RetryPolicy | None
    fork: bool
    waiting_retry: bool = False


class Partition:
    """One partition of a compiled application."""

    def __init__(self, schema: Schema, index: int, count: int) -> None:
        self.schema = schema
        self.index = index
        self.count = count
        self.clock = 0.0
        self.started = False
        self.states: dict[tuple[str, PKey], State[Any]] = {}
        self.queues: dict[PKey, deque[m.LocalOp | m.Acquire]] = {}
        self.runs: dict[str, Run] = {}
        self.completed: dict[str, dict[str, Any]] = {}
        self.timers: list[tuple[float, int, str, int, str]] = []
        self.timer_seq = 0
        self.activities: dict[tuple[str, int], _PendingActivity] = {}
        self.initializing: dict[tuple[str, PKey], list[m.LocalOp | m.Commit | m.Exists]] = {}
        self.early_events: dict[str, list[tuple[str, Any]]] = {}
        self.early_count = 0  # events in early_events, bounded by schema.keep_early_events
        # runs that ended (terminated, or failed for good) while something they sent inside
        # their locks was still in flight: tag -> what they still wait for, the release and
        # the answer to their caller, both held until every one of those calls has answered
        self.settling: dict[str, dict[str, Any]] = {}
        self._effects = Effects()
        self._local: deque[m.Message] = deque()
        # what changed since the last take_delta(): a commit writes only these entries
        self._dirty: dict[str, set[Any]] = {name: set() for name in _KEYED_SECTIONS}
        # top-level instances whose status changed since the last take_status_changes()
        self._status_changes: dict[str, dict[str, Any]] = {}
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            m.Start: self._on_start,
            m.Response: self._on_response,
            m.LocalOp: self._on_local,
            m.Exists: self._on_exists,
            m.Acquire: self._on_acquire,
            m.Granted: self._on_granted,
            m.Release: self._on_release,
            m.Commit: self._on_commit,
            m.ActivityResult: self._on_activity_result,
            m.Tick: self._on_tick,
            m.RaiseEvent: self._on_raise_event,
            m.Terminate: self._on_terminate,
        }

    # -- the host-facing interface ---------------------------------------------------------

    def first_start(self, now: float) -> Effects:
        """Start the application's startup orchestrations (partition 0, once)."""
        self.clock = max(self.clock, now)
        if self.index == 0 and not self.started:
            for instance_id, op in self.schema.startup_instances():
                self.send_start(instance_id, op, None, None)
            self._drain_local()
        self.started = True
        return self._take_effects()

    def process(self, msg: m.Message, now: float) -> Effects:
        """Apply one input message; ``now`` is the time the host stamped on it."""
        self.clock = max(self.clock, now)
        self._dispatch(msg)
        self._drain_local()
        return self._take_effects()

    def next_due(self) -> float | None:
        """When the earliest timer is due (the host delivers a ``Tick`` then)."""
        return self.timers[0][0] if self.timers else None

    def pending_activities(self) -> list[ActivityTask]:
        """Activities started but not finished: a restored partition's host reruns them."""
        return [
            ActivityTask(self.index, iid, call, p.attempt, p.op)
            for (iid, call), p in self.activities.items()
            if not p.waiting_retry
        ]

    def instance_status(self, instance_id: str) -> dict[str, Any] | None:
        record = self.completed.get(instance_id)
        if record is not None:
            return record
        run = self.runs.get(instance_id)
        if run is not None and run.init is None:
            record = {"status": "running", "name": type(run.op).__name__}
            if run.custom_status is not None:
                record["custom_status"] = run.custom_status
            return record
        return None

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

    def send_acquire(
        self, lock_id: str, keys: tuple[PKey, ...], reply: m.Reply | None, event: Event | None
    ) -> None:
        self.send(routing.acquire(self.schema, self.count, lock_id, keys, reply, event))

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

    # -- orchestrations --------------------------------------------------------------------

    def _on_start(self, msg: m.Start) -> None:
        iid = msg.instance_id
        if iid in self.runs or iid in self.completed:
            return  # starting an existing instance again is a no-op
        lock_mode = lock_keys = None
        info = self.schema.info(msg.op)
        if msg.lock_keys is not None:
            lock_mode, lock_keys = "caller", msg.lock_keys
        elif info.lock:
            lock_mode, lock_keys = "acquire", self.schema.lock_keys(msg.op)
        run = Run(
            self, iid, msg.op, msg.reply, lock_keys, lock_mode,  # type: ignore[arg-type]
            holder=msg.holder,
        )
        self.runs[iid] = run
        self.touch_run(iid)
        if msg.reply is None:
            self._status_changes[iid] = {"name": info.name, "status": "running"}
        early = self.early_events.pop(iid, [])
        self.early_count -= len(early)
        for name, value in early:
            run.deliver_event(name, value)
        run.start()

    def run_completed(self, run: Run, ok: bool, value: Any) -> None:
        self.runs.pop(run.instance_id, None)
        self.touch_run(run.instance_id)
        self.drop_timers(run.tag)
        if run.init is not None:
            self._install_state(run, ok, value)
            return
        info = self.schema.info(run.op)  # type: ignore[arg-type]
        if ok:
            ok, payload = self.encode_result(info, value)
        else:
            payload = self.encode_error(value)
        self.answer(run.tag, run.reply, ok, payload, f"forked orchestration {info.name}")
        if run.reply is None:
            record: dict[str, Any] = {"name": info.name, "status": "completed" if ok else "failed"}
            record["result" if ok else "error"] = payload
            if run.custom_status is not None:
                record["custom_status"] = run.custom_status
            self._remember(run.instance_id, record)

    def run_for(self, tag: str) -> Run | None:
        """The live run a reply, timer or activity result addressed by ``tag`` belongs to."""
        run = self.runs.get(tag)
        if run is not None and run.tag == tag:
            return run
        instance_id, sep, generation = tag.rpartition("~")
        run = self.runs.get(instance_id) if sep and generation.isdigit() else None
        return run if run is not None and run.tag == tag else None

    def _remember(self, instance_id: str, record: dict[str, Any]) -> None:
        """Keep a finished instance's outcome; forget the oldest beyond the app's limit."""
        self.completed[instance_id] = record
        self._dirty["completed"].add(instance_id)
        self._status_changes[instance_id] = record
        while len(self.completed) > self.schema.keep_completed:
            oldest = next(iter(self.completed))
            del self.completed[oldest]
            self._dirty["completed"].add(oldest)

    def _on_response(self, msg: m.Response) -> None:
        run = self.run_for(msg.instance_id)
        if run is not None:
            run.deliver(msg.call, msg.ok, msg.value)
        else:
            self._answered_after_end(msg.instance_id, msg.call)

    def hold_until_answered(
        self, tag: str, calls: list[int], release: tuple[str, tuple[PKey, ...]] | None
    ) -> None:
        """An ended run's locks must outlive what it sent inside them: an event that
        reached one owner before the release and another after it would be half-applied.
        Hold the release (and the run's answer, see :meth:`answer`) until ``calls`` answer."""
        self.settling[tag] = {
            "wait": sorted(calls), "release": None if release is None else list(release),
            "reply": None,
        }

    def answer(self, tag: str, reply: m.Reply | None, ok: bool, value: Any, source: str) -> None:
        """Answer an ended run's caller, after the run has settled (a caller running inside
        the same locks may release them once it hears, so the answer waits too)."""
        held = self.settling.get(tag)
        if held is None:
            self.reply(reply, ok, value, source)
        else:
            held["reply"] = [reply, ok, value, source]

    def _answered_after_end(self, tag: str, call: int) -> None:
        held = self.settling.get(tag)
        if held is None or call not in held["wait"]:
            return  # a duplicate, or an answer nobody waits for any more
        held["wait"].remove(call)
        if held["wait"]:
            return
        del self.settling[tag]
        if held["release"] is not None:
            lock_id, keys = held["release"]
            self.send_release(lock_id, tuple((k[0], k[1]) for k in keys))
        if held["reply"] is not None:
            reply, ok, value, source = held["reply"]
            self.reply(None if reply is None else tuple(reply), ok, value, source)

    def _on_granted(self, msg: m.Granted) -> None:
        run = self.run_for(msg.instance_id)
        if run is None:  # terminated while waiting for the lock: give it back
            self.send_release(msg.lock_id, msg.keys)
        else:
            run.deliver(msg.call, True, None)

    def _on_raise_event(self, msg: m.RaiseEvent) -> None:
        run = self.runs.get(msg.instance_id)
        if run is not None:
            run.deliver_event(msg.name, msg.value)
        elif msg.instance_id not in self.completed:
            self.early_events.setdefault(msg.instance_id, []).append((msg.name, msg.value))
            self.early_count += 1
            self._bound_early_events()

    def _bound_early_events(self) -> None:
        """Events for instances that never start must not pile up: beyond the app's limit,
        drop the oldest (of the instance id that has waited longest) and report it."""
        while self.early_count > self.schema.keep_early_events:
            instance_id = next(iter(self.early_events))
            waiting = self.early_events[instance_id]
            name, _ = waiting.pop(0)
            if not waiting:
                del self.early_events[instance_id]
            self.early_count -= 1
            self.report(f"partition {self.index}", self.encode_error(errors.ReactiveError(
                f"dropped external event {name!r} raised to instance {instance_id!r}, which "
                f"has not started: more than {self.schema.keep_early_events} events wait for "
                "instances that have not started on this partition (App(keep_early_events=...))"
            )))

    def _on_terminate(self, msg: m.Terminate) -> None:
        run = self.runs.pop(msg.instance_id, None)
        if run is None or run.init is not None:
            if run is not None:
                self.runs[msg.instance_id] = run  # initializers cannot be terminated
            return
        self.touch_run(msg.instance_id)
        run.terminate()
        self.drop_timers(run.tag)
        error = self.encode_error(
            errors.TerminatedError(f"{run.name} was terminated: {msg.reason or 'no reason given'}")
        )
        self.answer(run.tag, run.reply, False, error, "terminated orchestration")
        if run.reply is None:
            self._remember(
                msg.instance_id,
                {"name": type(run.op).__name__, "status": "terminated", "error": error},
            )

    def fork(self, op_id: str, op: Operation, reply: m.Reply) -> None:
        """Start ``op`` detached from its caller; ``reply`` hears when it completes."""
        info = self.schema.info(op)
        if info.kind is Kind.ORCHESTRATION:
            self.send_start(op_id, op, reply, None)  # type: ignore[arg-type]
        elif info.kind is Kind.ACTIVITY:
            _, iid, call, _ = reply
            self.start_activity(iid if reply[0] >= 0 else op_id, call, op, None, fork=True)  # type: ignore[arg-type]
        elif info.kind is Kind.EVENT:
            effects = self.schema.event_effects(op)  # type: ignore[arg-type]
            if effects:
                self.send_acquire(op_id, tuple(effects), reply, op)  # type: ignore[arg-type]
            else:
                self.reply(reply, True, None, "")
        else:
            key = self.schema.state_key(op)  # type: ignore[arg-type]
            self.send(m.LocalOp(self.schema.owner(key, self.count), op_id, op, key, reply))

    def fork_detached(self, op_id: str, op: Operation) -> None:
        self.fork(op_id, op, _NO_PARENT)

    # -- timers and activities -------------------------------------------------------------

    def add_timer(self, due: float, instance_id: str, call: int, kind: str = "call") -> None:
        self.timer_seq += 1
        heapq.heappush(self.timers, (due, self.timer_seq, instance_id, call, kind))

    def drop_timers(self, instance_id: str) -> None:
        if any(t[2] == instance_id for t in self.timers):
            self.timers = [t for t in self.timers if t[2] != instance_id]
            heapq.heapify(self.timers)

    def _on_tick(self, _tick: m.Tick) -> None:
        while self.timers and self.timers[0][0] <= self.clock:
            _, _, iid, call, kind = heapq.heappop(self.timers)
            if kind == "retry":
                pending = self.activities.get((iid, call))
                if pending is not None and pending.waiting_retry:
                    pending.waiting_retry = False
                    self._effects.activities.append(
                        ActivityTask(self.index, iid, call, pending.attempt, pending.op)
                    )
            else:
                run = self.run_for(iid)
                if run is not None:
                    run.deliver(call, True, None)
            self._drain_local()

    def start_activity(
        self, instance_id: str, call: int, op: Activity[Any], policy: RetryPolicy | None, fork: bool
    ) -> None:
        self.activities[(instance_id, call)] = _PendingActivity(op, 1, policy, fork)
        self._effects.activities.append(ActivityTask(self.index, instance_id, call, 1, op))

    def _on_activity_result(self, msg: m.ActivityResult) -> None:
        key = (msg.instance_id, msg.call)
        pending = self.activities.get(key)
        if pending is None or pending.attempt != msg.attempt or pending.waiting_retry:
            return  # a duplicate, e.g. from an activity rerun after a restore
        policy = pending.policy
        if not msg.ok and policy is not None and msg.attempt < policy.max_attempts:
            pending.attempt += 1
            pending.waiting_retry = True
            due = self.clock + policy.delay_before(pending.attempt)
            self.add_timer(due, msg.instance_id, msg.call, "retry")
            return
        del self.activities[key]
        value = msg.value if msg.ok else results.after_attempts(msg.value, msg.attempt)
        if pending.fork and not msg.ok:
            self.report(f"forked activity {type(pending.op).__name__}", value)
        run = self.run_for(msg.instance_id)
        if run is not None:
            run.deliver(msg.call, msg.ok, value)

    # -- states: reads and updates under key locks ----------------------------------------

    def _holds(self, key: PKey, holder: str | None) -> bool:
        """Whether the lock ``holder`` still holds ``key`` (a locked operation may arrive
        after its critical section ended, e.g. from a child abandoned by its caller)."""
        queue = self.queues.get(key)
        if not queue:
            return False
        head = queue[0]
        return isinstance(head, m.Acquire) and head.lock_id == holder

    def _refuse(self, reply: m.Reply | None, key: PKey, what: str) -> None:
        error = errors.SynchronizationDisciplineError(
            f"{what} on {key[0]} {key[1]} arrived after its caller's lock was released"
        )
        self.reply(reply, False, self.encode_error(error), what)

    def _on_local(self, msg: m.LocalOp) -> None:
        if msg.locked:
            if self._holds(msg.key, msg.holder):
                self._execute_local(msg)
            else:
                self._refuse(msg.reply, msg.key, type(msg.op).__name__)
            return
        queue = self.queues.get(msg.key)
        if queue:
            queue.append(msg)
            self._dirty["queues"].add(msg.key)
        elif not self._execute_local(msg):
            self.queues[msg.key] = deque([msg])
            self._dirty["queues"].add(msg.key)

    def _execute_local(self, msg: m.LocalOp) -> bool:
        """Run a read or update; False if it must wait for the state's initializer."""
        info = self.schema.info(msg.op)
        state_info = info.state
        assert state_info is not None
        skey = (state_info.name, msg.key)
        waiters = self._parked_at(skey, msg.locked)
        if waiters is not None:
            waiters.append(msg)
            return False
        state = self.states.get(skey)
        if state is None:
            if not info.create:
                error = errors.StateNotFoundError(
                    f"no {state_info.name} state for key {msg.key[1]} "
                    f"({info.kind.value} {info.name} does not create it)"
                )
                self.reply(msg.reply, False, self.encode_error(error), f"{info.name}")
                return True
            if state_info.has_initializer:
                if self._start_initializer(state_info, msg.key):
                    self.initializing[skey].append(msg)
                    return False
                state = self.states[skey]
            else:
                state = self.states[skey] = state_info.cls()
        self._dirty["states"].add(skey)
        key_value = state_info.affinity.key_value(msg.key)
        ctx_cls = UpdateContext if info.kind is Kind.UPDATE else ReadContext
        before = state.model_dump(mode="json")
        try:
            result = msg.op.execute(ctx_cls(self, msg.op_id, key_value, state))  # type: ignore[attr-defined]
            ok, payload = self.encode_result(info, result)
        except Exception as exc:
            ok, payload = False, self.encode_error(exc)
        invalid = self._settle(skey, state, before, f"{info.kind.value} {info.name}")
        if invalid is not None:
            ok, payload = False, self.encode_error(invalid)
        self.reply(msg.reply, ok, payload, f"forked {info.kind.value} {info.name}")
        return True

    def _settle(
        self, skey: tuple[str, PKey], state: State[Any], before: Any, what: str
    ) -> errors.InvalidStateError | None:
        """Keep the state user code left if it reads back from its snapshot form; else
        restore it as it was (``before``, its snapshot form) and return the error."""
        info = self.schema.states_by_name[skey[0]]
        try:
            self.states[skey] = states.settle(info, skey[1], state, what)
            return None
        except errors.InvalidStateError as exc:
            self.states[skey] = info.cls.model_validate(before)
            return exc

    def _parked_at(self, skey: tuple[str, PKey], locked: bool) -> list[Any] | None:
        """The waiters to join if this state is being initialized. A locked operation also
        waits behind an event commit parked at its key (for another state type), so that
        the lock holder observes its own earlier event."""
        waiters = self.initializing.get(skey)
        if waiters is not None or not locked or not self.initializing:
            return waiters
        for (_, key), parked in self.initializing.items():
            if key == skey[1] and any(isinstance(w, m.Commit) for w in parked):
                return parked
        return None

    def _on_exists(self, msg: m.Exists) -> None:
        if not self._holds(msg.key, msg.holder):
            self._refuse(msg.reply, msg.key, "state_exists")
            return
        self._answer_exists(msg)

    def _answer_exists(self, msg: m.Exists) -> None:
        skey = (msg.state, msg.key)
        waiters = self._parked_at(skey, True)  # creation under way: answer once it is done
        if waiters is not None:
            waiters.append(msg)
            return
        self.reply(msg.reply, True, skey in self.states, "")

    def _start_initializer(self, state_info: StateInfo, key: PKey) -> bool:
        """Create a state by running its initializer; True while it is still running
        (the caller then parks behind it), False if it already installed the state."""
        skey = (state_info.name, key)
        self.initializing[skey] = []
        iid = f"init/{state_info.name}/{key[0]}/{key[1]}"
        run = Run(self, iid, None, init=(state_info, key))
        self.runs[iid] = run
        self.touch_run(iid)
        run.start()
        return skey in self.initializing

    def _install_state(self, run: Run, ok: bool, value: Any) -> None:
        assert run.init is not None and run.init_state is not None
        state_info, key = run.init
        if not ok:
            self.report(f"initializer of {state_info.name} {key[1]}", self.encode_error(value))
        skey = (state_info.name, key)
        self.states[skey] = state_info.cls()
        self._dirty["states"].add(skey)
        invalid = self._settle(
            skey, run.init_state, self.states[skey].model_dump(mode="json"),
            f"the initializer of {state_info.name}",
        )
        if invalid is not None:  # it starts from its field defaults instead
            self.report(f"initializer of {state_info.name} {key[1]}", self.encode_error(invalid))
        for waiter in self.initializing.pop(skey, []):
            self._resume(waiter)

    def _resume(self, waiter: m.LocalOp | m.Commit | m.Exists) -> None:
        if isinstance(waiter, m.Exists):
            self._answer_exists(waiter)
        elif isinstance(waiter, m.LocalOp):
            if self._execute_local(waiter) and not waiter.locked:
                self._advance(waiter.key)
        elif self._apply_event(waiter, waiter.keys[0]) and not waiter.locked:
            self._advance(waiter.keys[0])

    def _advance(self, key: PKey) -> None:
        """The head of ``key``'s queue has exited: let the next requests in."""
        queue = self.queues.get(key)
        if not queue:
            return
        self._dirty["queues"].add(key)
        queue.popleft()
        while queue:
            head = queue[0]
            if isinstance(head, m.Acquire):
                self._hold(head)
                return
            if not self._execute_local(head):
                return
            queue.popleft()
        del self.queues[key]

    # -- lock chains: critical sections and events ------------------------------------------

    def _on_acquire(self, msg: m.Acquire) -> None:
        key = msg.keys[msg.position]
        queue = self.queues.get(key)
        self._dirty["queues"].add(key)
        if queue:
            queue.append(msg)
        else:
            self.queues[key] = deque([msg])
            self._hold(msg)

    def _hold(self, msg: m.Acquire) -> None:
        """``msg`` now holds its key: walk on to the next key, or grant / commit."""
        position = msg.position + 1
        if position < len(msg.keys):
            dest = self.schema.owner(msg.keys[position], self.count)
            self.send(m.Acquire(dest, msg.lock_id, msg.keys, position, msg.reply, msg.event))
        elif msg.event is None:
            assert msg.reply is not None
            dest, iid, call, _ = msg.reply
            self.send(m.Granted(dest, iid, call, msg.lock_id, msg.keys))
        else:
            self.send_commits(msg.lock_id, msg.event, msg.keys, False)
            self.reply(msg.reply, True, None, "")

    def _on_release(self, msg: m.Release) -> None:
        for key in msg.keys:
            queue = self.queues.get(key)
            if queue and isinstance(queue[0], m.Acquire) and queue[0].lock_id == msg.lock_id:
                self._advance(key)

    def _on_commit(self, msg: m.Commit) -> None:
        keys, rest = msg.keys, tuple[PKey, ...]()
        if msg.reply is not None:  # walking the owners: ours now, the rest further on
            mine = [self.schema.owner(k, self.count) == self.index for k in msg.keys]
            keys = tuple(k for k, own in zip(msg.keys, mine, strict=True) if own)
            rest = tuple(k for k, own in zip(msg.keys, mine, strict=True) if not own)
        refused: errors.SynchronizationDisciplineError | None = None
        for key in keys:
            if msg.locked and not self._holds(key, msg.holder):
                refused = errors.SynchronizationDisciplineError(
                    f"event {type(msg.event).__name__} on {key[0]} {key[1]} arrived "
                    "after its caller's lock was released; it was not applied"
                )
                self.report(f"event {type(msg.event).__name__}", self.encode_error(refused))
                continue
            single = m.Commit(msg.dest, msg.lock_id, msg.event, (key,), msg.locked, msg.holder)
            if self._apply_event(single, key) and not msg.locked:
                self._advance(key)
        if msg.reply is None:
            return
        if rest and refused is None:
            dest = self.schema.owner(rest[0], self.count)
            self.send(m.Commit(
                dest, msg.lock_id, msg.event, rest, msg.locked, msg.holder, msg.reply
            ))
        elif refused is not None:
            self.reply(msg.reply, False, self.encode_error(refused), "")
        else:
            self.reply(msg.reply, True, None, "")

    def _apply_event(self, msg: m.Commit, key: PKey) -> bool:
        """Apply the event to every subscribing state at ``key``, creating missing ones;
        False if it must first wait for an initializer."""
        subscribers = self.schema.event_effects(msg.event).get(key, [])
        for state_info in subscribers:
            skey = (state_info.name, key)
            if skey in self.initializing:
                self.initializing[skey].append(msg)
                return False
            if skey not in self.states:
                if state_info.has_initializer:
                    if self._start_initializer(state_info, key):
                        self.initializing[skey].append(msg)
                        return False
                else:
                    self.states[skey] = state_info.cls()
        event_name = type(msg.event).__name__
        for state_info in subscribers:
            skey = (state_info.name, key)
            state = self.states[skey]
            self._dirty["states"].add(skey)
            before = state.model_dump(mode="json")
            key_value = state_info.affinity.key_value(key)
            source = f"{state_info.name} {key[1]} handling {event_name}"
            for handler in state_info.handlers[type(msg.event)]:
                ctx = SubscriptionContext(self, f"{msg.lock_id}@{key[1]}", key_value)
                try:
                    handler(state, ctx, msg.event)
                except Exception as exc:
                    self.report(source, self.encode_error(exc))
            invalid = self._settle(skey, state, before, f"event {event_name}")
            if invalid is not None:
                self.report(source, self.encode_error(invalid))
        return True

    # -- snapshots -------------------------------------------------------------------------
    #
    # A snapshot is a "head" (small, written whole) and keyed sections (states, queues,
    # runs, completed instances). A delta holds the head and only the keyed entries that
    # changed since the previous delta (None: removed), so that a commit costs what changed.

    def touch_run(self, instance_id: str) -> None:
        self._dirty["runs"].add(instance_id)

    def status_changed(self, run: Run) -> None:
        """A live top-level instance changed what it shows (its custom status)."""
        info = self.schema.info(run.op)  # type: ignore[arg-type]
        self._status_changes[run.instance_id] = {
            "name": info.name, "status": "running", "custom_status": run.custom_status,
        }

    def take_status_changes(self) -> dict[str, dict[str, Any]]:
        """Top-level instances whose status changed since the last call: instance id ->
        {"name", "status"[, "result" | "error"]}."""
        changes, self._status_changes = self._status_changes, {}
        return changes

    def _head(self) -> dict[str, Any]:
        wire = self.schema
        return {
            "index": self.index,
            "count": self.count,
            "clock": self.clock,
            "started": self.started,
            "timer_seq": self.timer_seq,
            "timers": self.timers,
            "activities": [
                [iid, call, p.attempt, wire.encode_op(p.op),
                 None if p.policy is None else asdict(p.policy),
                 p.fork, p.waiting_retry]
                for (iid, call), p in self.activities.items()
            ],
            "initializing": [
                [name, key, [m.to_wire(w, wire) for w in waiters]]
                for (name, key), waiters in self.initializing.items()
            ],
            "early_events": self.early_events,
            "settling": self.settling,
        }

    def _entry(self, section: str, key: Any) -> tuple[str, Any]:
        """One keyed entry as (its string key, its JSON value or None if it is gone)."""
        if section == "states":
            state = self.states.get(key)
            return _key_text(key), None if state is None else [
                key[0], key[1], state.model_dump(mode="json")
            ]
        if section == "queues":
            queue = self.queues.get(key)
            return _key_text(key), None if not queue else [
                key, [m.to_wire(e, self.schema) for e in queue]
            ]
        if section == "runs":
            run = self.runs.get(key)
            return key, None if run is None else run.to_snapshot()
        return key, self.completed.get(key)

    def _keys(self, section: str) -> list[Any]:
        sections: dict[str, dict[Any, Any]] = {
            "states": self.states, "queues": self.queues, "runs": self.runs,
            "completed": self.completed,
        }
        return list(sections[section])

    def snapshot(self) -> dict[str, Any]:
        """The partition's whole state as JSON-ready data (also clears the change marks)."""
        data: dict[str, Any] = {"v": SNAPSHOT_VERSION, "head": self._head()}
        for section in _KEYED_SECTIONS:
            entries = dict(self._entry(section, key) for key in self._keys(section))
            data[section] = {k: v for k, v in entries.items() if v is not None}
            self._dirty[section].clear()
        return data

    def take_delta(self) -> dict[str, Any]:
        """What changed since the last snapshot() or take_delta(): apply it to that one with
        :func:`apply_delta` to get today's snapshot()."""
        data: dict[str, Any] = {"v": SNAPSHOT_VERSION, "head": self._head()}
        for section in _KEYED_SECTIONS:
            dirty = self._dirty[section]
            data[section] = dict(self._entry(section, key) for key in dirty)
            dirty.clear()
        return data

    @classmethod
    def restore(cls, schema: Schema, data: dict[str, Any]) -> Partition:
        if data.get("v") != SNAPSHOT_VERSION:
            raise errors.CorruptSnapshotError(f"unsupported snapshot version {data.get('v')!r}")
        head = data["head"]
        part = cls(schema, head["index"], head["count"])
        part.clock = head["clock"]
        part.started = head["started"]
        part.timer_seq = head["timer_seq"]
        for name, key, state in data["states"].values():
            try:
                loaded = schema.states_by_name[name].cls.model_validate(state)
            except (KeyError, ValidationError) as exc:
                raise errors.CorruptSnapshotError(
                    f"partition {part.index}: state {name} at key {key[1]} cannot be loaded: "
                    f"{exc}"
                ) from exc
            part.states[(name, (key[0], key[1]))] = loaded
        for key, entries in data["queues"].values():
            part.queues[(key[0], key[1])] = deque(
                m.from_wire(e, schema) for e in entries  # type: ignore[misc]
            )
        part.completed = dict(data["completed"])
        part.timers = [tuple(t) for t in head["timers"]]
        heapq.heapify(part.timers)
        for iid, call, attempt, op, policy, fork, waiting in head["activities"]:
            part.activities[(iid, call)] = _PendingActivity(
                schema.decode_op(op),  # type: ignore[arg-type]
                attempt,
                RetryPolicy(**policy) if policy is not None else None,
                fork,
                waiting,
            )
        for name, key, waiters in head["initializing"]:
            part.initializing[(name, (key[0], key[1]))] = [
                m.from_wire(w, schema) for w in waiters  # type: ignore[misc]
            ]
        part.early_events = {k: [tuple(e) for e in v] for k, v in head["early_events"].items()}
        part.early_count = sum(len(v) for v in part.early_events.values())
        part.settling = {tag: dict(held) for tag, held in head.get("settling", {}).items()}
        for run_data in data["runs"].values():
            run = Run.from_snapshot(part, run_data)
            part.runs[run.instance_id] = run
        for run in list(part.runs.values()):
            run.replay()
        part._drain_local()
        if all(iid in part.runs for iid in data["runs"]):
            for dirty in part._dirty.values():
                dirty.clear()  # replay re-marks what it touches; nothing changed yet
            part._status_changes.clear()
        # else a replay diverged (NonDeterminismError): that failure and all it caused are
        # real changes, and the next commit must make them durable (failed for good)
        # a faithful replay produces no effects; a nondeterministic one may fail an
        # orchestration, and that failure must reach its caller: take_effects() hands it over
        return part

    def take_effects(self) -> Effects:
        return self._take_effects()


def _key_text(key: Any) -> str:
    return json.dumps(key, separators=(",", ":"))


def apply_delta(snapshot: dict[str, Any], delta: dict[str, Any]) -> None:
    """Bring ``snapshot`` (a snapshot() result, changed in place) forward by ``delta``."""
    snapshot["head"] = delta["head"]
    for section in _KEYED_SECTIONS:
        entries = snapshot[section]
        for key, value in delta[section].items():
            if value is None:
                entries.pop(key, None)
            else:
                entries[key] = value
