"""Durable timers (an orchestration's sleeps, an activity's retry delay) and the
activities a partition has started: their attempts, retries and results."""

from __future__ import annotations

import heapq
from typing import Any

from reactive.core import messages as m
from reactive.core import results
from reactive.core.effects import ActivityTask
from reactive.core.partition_base import PartitionBase, PendingActivity, Timer, TimerKind
from reactive.model import Activity, RetryPolicy


class TimersAndActivities(PartitionBase):
    """The partition's timer heap and its activities in flight."""

    def next_due(self) -> float | None:
        """When the earliest timer is due (the host delivers a ``Tick`` then)."""
        return self.timers[0].due if self.timers else None

    def pending_activities(self) -> list[ActivityTask]:
        """Activities started but not finished: a restored partition's host reruns them."""
        return [
            ActivityTask(self.index, iid, call, p.attempt, p.op)
            for (iid, call), p in self.activities.items()
            if not p.waiting_retry
        ]

    def add_timer(
        self, due: float, instance_id: str, call: int, kind: TimerKind = TimerKind.CALL
    ) -> None:
        self.timer_seq += 1
        heapq.heappush(self.timers, Timer(due, self.timer_seq, instance_id, call, kind))

    def drop_timers(self, instance_id: str) -> None:
        if any(t.instance_id == instance_id for t in self.timers):
            self.timers = [t for t in self.timers if t.instance_id != instance_id]
            heapq.heapify(self.timers)

    def _on_tick(self, _tick: m.Tick) -> None:
        while self.timers and self.timers[0].due <= self.clock:
            _, _, iid, call, kind = heapq.heappop(self.timers)
            if kind is TimerKind.RETRY:
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
        self.activities[(instance_id, call)] = PendingActivity(op, 1, policy, fork)
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
            self.add_timer(due, msg.instance_id, msg.call, TimerKind.RETRY)
            return
        del self.activities[key]
        value = msg.value if msg.ok else results.after_attempts(msg.value, msg.attempt)
        if pending.fork and not msg.ok:
            self.report(f"forked activity {type(pending.op).__name__}", value)
        run = self.run_for(msg.instance_id)
        if run is not None:
            run.deliver(msg.call, msg.ok, value)
