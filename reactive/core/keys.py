"""Per-key queues and locks, and what runs under them: reads and updates of states,
state initializers, lock chains (critical sections and events walking their sorted keys)
and event commits to the subscribing states."""

from __future__ import annotations

from collections import deque
from typing import Any

from reactive import errors
from reactive.core import messages as m
from reactive.core import states
from reactive.core.context import ReadContext, SubscriptionContext, UpdateContext
from reactive.core.partition_base import PartitionBase
from reactive.model import Operation, State
from reactive.schema import Kind, PKey, StateInfo


class KeyedStates(PartitionBase):
    """The partition's states and the queues that serialize access to their keys."""

    # the partition provides these two (they start runs, which live with the lifecycle)
    def fork_detached(self, op_id: str, op: Operation) -> None:
        raise NotImplementedError

    def _start_initializer(self, state_info: StateInfo, key: PKey) -> bool:
        """Create a state by running its initializer; True while it is still running
        (the caller then parks behind it), False if it already installed the state."""
        raise NotImplementedError

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
            self.edit_queue(msg.key, appended=1)
            queue.append(msg)
        elif not self._execute_local(msg):
            self.edit_queue(msg.key, appended=1)
            self.queues[msg.key] = deque([msg])

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
        self.edit_queue(key)
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
        self.edit_queue(key, appended=1)
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
