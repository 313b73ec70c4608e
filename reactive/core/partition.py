"""The partition: a deterministic, sans-IO state machine.

``process(message, now)`` applies one input and returns the effects (messages for other
partitions, activities to run, log lines, unhandled errors). Messages a partition sends to
itself are processed within the same call. ``snapshot()`` / ``Partition.restore()`` move
it to bytes and back; a restored partition replays its live orchestrations.

This module dispatches messages and runs the orchestration lifecycle (start, completion,
termination, external events, forks); the key locks and state operations live in
:mod:`reactive.core.keys`, timers and activities in :mod:`reactive.core.timers`, the
snapshot codec in :mod:`reactive.core.snapshot`.
"""

from __future__ import annotations

from typing import Any

from reactive import errors
from reactive.core import messages as m
from reactive.core import routing
from reactive.core import snapshot as codec
from reactive.core.effects import ActivityTask, Effects
from reactive.core.keys import KeyedStates
from reactive.core.partition_base import HeldAnswer, Settling, StatusEntry
from reactive.core.runner import Run
from reactive.core.snapshot import SNAPSHOT_VERSION, apply_delta
from reactive.core.timers import TimersAndActivities
from reactive.model import Operation
from reactive.schema import Kind, PKey, Schema, StateInfo

__all__ = ["SNAPSHOT_VERSION", "ActivityTask", "Effects", "Partition", "apply_delta"]

_NO_PARENT = m.Reply(-1, "", 0, True)  # a detached fork: nobody to answer


class Partition(KeyedStates, TimersAndActivities):
    """One partition of a compiled application."""

    def __init__(self, schema: Schema, index: int, count: int) -> None:
        super().__init__(schema, index, count)
        self._handlers.update({
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
        })

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

    def instance_status(self, instance_id: str) -> StatusEntry | None:
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
            record: StatusEntry = {"name": info.name, "status": "completed" if ok else "failed"}
            record["result" if ok else "error"] = payload
            if run.custom_status is not None:
                record["custom_status"] = run.custom_status
            self._remember(run.instance_id, record)

    def _remember(self, instance_id: str, record: StatusEntry) -> None:
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
        self.settling[tag] = Settling(sorted(calls), release)

    def answer(self, tag: str, reply: m.Reply | None, ok: bool, value: Any, source: str) -> None:
        """Answer an ended run's caller, after the run has settled (a caller running inside
        the same locks may release them once it hears, so the answer waits too)."""
        held = self.settling.get(tag)
        if held is None:
            self.reply(reply, ok, value, source)
        else:
            held.answer = HeldAnswer(reply, ok, value, source)

    def _answered_after_end(self, tag: str, call: int) -> None:
        held = self.settling.get(tag)
        if held is None or call not in held.wait:
            return  # a duplicate, or an answer nobody waits for any more
        held.wait.remove(call)
        if held.wait:
            return
        del self.settling[tag]
        if held.release is not None:
            self.send_release(*held.release)
        if held.answer is not None:
            answer = held.answer
            self.reply(answer.reply, answer.ok, answer.value, answer.source)

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
        if self.schema.info(op).kind is Kind.ACTIVITY:
            _, iid, call, _ = reply
            self.start_activity(iid if reply.partition >= 0 else op_id, call, op, None, fork=True)  # type: ignore[arg-type]
            return
        msg = routing.operation(self.schema, self.count, op_id, op, reply)
        if msg is None:
            self.reply(reply, True, None, "")
        else:
            self.send(msg)

    def fork_detached(self, op_id: str, op: Operation) -> None:
        self.fork(op_id, op, _NO_PARENT)

    # -- state initializers: runs that create a state ------------------------------------

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

    # -- status and snapshots --------------------------------------------------------------

    def status_changed(self, run: Run) -> None:
        """A live top-level instance changed what it shows (its custom status)."""
        info = self.schema.info(run.op)  # type: ignore[arg-type]
        self._status_changes[run.instance_id] = {
            "name": info.name, "status": "running", "custom_status": run.custom_status,
        }

    def take_status_changes(self) -> dict[str, StatusEntry]:
        """Top-level instances whose status changed since the last call: instance id ->
        {"name", "status"[, "result" | "error"]}."""
        changes, self._status_changes = self._status_changes, {}
        return changes

    def snapshot(self) -> dict[str, Any]:
        """The partition's whole state as JSON-ready data (also clears the change marks)."""
        return codec.snapshot(self)

    def take_delta(self) -> dict[str, Any]:
        """What changed since the last snapshot() or take_delta(): apply it to that one with
        :func:`apply_delta` to get today's snapshot()."""
        return codec.take_delta(self)

    @classmethod
    def restore(cls, schema: Schema, data: dict[str, Any]) -> Partition:
        codec.check_version(data)
        part = cls(schema, data["head"]["index"], data["head"]["count"])
        codec.load(part, data)
        for run_data in data["runs"].values():
            run = Run.from_snapshot(part, run_data)
            part.runs[run.instance_id] = run
        for run in list(part.runs.values()):
            run.replay()
        part._drain_local()
        if all(iid in part.runs for iid in data["runs"]):
            part.clear_marks()  # replay re-marks what it touches; nothing changed yet
            part._status_changes.clear()
        # else a replay diverged (NonDeterminismError): that failure and all it caused are
        # real changes, and the next commit must make them durable (failed for good)
        # a faithful replay produces no effects; a nondeterministic one may fail an
        # orchestration, and that failure must reach its caller: take_effects() hands it over
        return part

    def take_effects(self) -> Effects:
        return self._take_effects()
