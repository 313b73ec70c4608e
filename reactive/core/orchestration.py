"""Running one orchestration instance: the coroutine driver and its record/replay history.

An instance persists as its history: the calls its code made (in order) and the responses
it received (in arrival order). A warm partition keeps the live coroutine; a restored one
re-runs the code against the history, sending nothing for recorded calls.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from reactive import errors
from reactive.app import Kind, PKey, StateInfo
from reactive.core import messages as m
from reactive.core.context import InitContext, OrchestrationContext
from reactive.core.futures import AllFuture, Future
from reactive.core.placement import stable_digest
from reactive.model import (
    Activity,
    Affinity,
    Event,
    Operation,
    Orchestration,
    RetryPolicy,
    State,
)

if TYPE_CHECKING:
    from reactive.core.partition import Partition


class ContinueAsNew(BaseException):
    """Raised by ``ctx.continue_as_new``; a BaseException so that ``except Exception``
    in user code does not swallow it."""

    def __init__(self, op: Orchestration[Any]) -> None:
        super().__init__()
        self.op = op


def _describe(verb: str, op: Operation, name: str) -> str:
    """How a call appears in the history: its kind, operation and a digest of its inputs
    (enough to tell a replayed call that differs from the recorded one)."""
    digest = hashlib.blake2b(op.__pydantic_serializer__.to_json(op), digest_size=4).hexdigest()
    return f"{verb} {name}#{digest}"


class Run:
    """One live orchestration (or state initializer) instance on its partition."""

    def __init__(
        self,
        partition: Partition,
        instance_id: str,
        op: Orchestration[Any] | None,
        reply: m.Reply | None = None,
        lock_keys: tuple[PKey, ...] | None = None,
        lock_mode: str | None = None,
        init: tuple[StateInfo, PKey] | None = None,
        holder: str | None = None,
    ) -> None:
        self.partition = partition
        self.instance_id = instance_id
        self.op = op
        self.reply = reply
        self.lock_keys = lock_keys  # keys held (for the discipline checks)
        self.lock_mode = lock_mode  # "acquire" (we take the locks) or "caller" (caller holds)
        self.caller_holder = holder  # in "caller" mode: the id of the caller's lock
        self.init = init
        self.init_state: State[Any] | None = None
        # persisted history
        self.generation = 0  # bumped by continue-as-new
        self.calls: list[list[Any]] = []  # [description] or [description, value]
        self.responses: list[list[Any]] = []  # [call, ok, value] or ["e", name, value]
        self.logged = 0  # application log lines emitted so far
        # in-memory execution state
        self.next_call = 0
        self.next_log = 0
        self.replaying_responses = False
        self.futures: dict[int, Future[Any]] = {}
        self.decoders: dict[int, Any] = {}
        self.forks: list[Future[Any]] = []
        self.performs: list[int] = []  # calls whose results the code must await
        self.locked_children: dict[int, str] = {}  # call -> child running inside our locks
        self.event_waiters: list[tuple[str, int]] = []
        self.event_buffer: list[tuple[str, Any]] = []
        self.lock_granted = False
        self.blocked: Future[Any] | None = None
        self.coro: Coroutine[Any, Any, Any] | None = None
        self.fatal: BaseException | None = None
        self.done = False

    # -- persistence -----------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        schema = self.partition.schema
        data: dict[str, Any] = {
            "id": self.instance_id,
            "calls": self.calls,
            "responses": self.responses,
            "logged": self.logged,
        }
        if self.generation:
            data["generation"] = self.generation
        if self.op is not None:
            data["op"] = schema.encode_op(self.op)
        if self.reply is not None:
            data["reply"] = self.reply
        if self.lock_keys is not None:
            data["lock_keys"] = self.lock_keys
            data["lock_mode"] = self.lock_mode
            if self.caller_holder is not None:
                data["holder"] = self.caller_holder
        if self.init is not None:
            data["init"] = [self.init[0].name, self.init[1]]
        return data

    @classmethod
    def from_snapshot(cls, partition: Partition, data: dict[str, Any]) -> Run:
        schema = partition.schema
        init = None
        if "init" in data:
            state_name, key = data["init"]
            init = (schema.states_by_name[state_name], (key[0], key[1]))
        op = schema.decode_op(data["op"]) if "op" in data else None
        reply = data.get("reply")
        lock_keys = data.get("lock_keys")
        run = cls(
            partition,
            data["id"],
            op,  # type: ignore[arg-type]
            reply=tuple(reply) if reply else None,
            lock_keys=tuple((k[0], k[1]) for k in lock_keys) if lock_keys is not None else None,
            lock_mode=data.get("lock_mode"),
            init=init,
            holder=data.get("holder"),
        )
        run.calls = data["calls"]
        run.responses = data["responses"]
        run.logged = data["logged"]
        run.generation = data.get("generation", 0)
        return run

    # -- driving the coroutine -------------------------------------------------------------

    def start(self) -> None:
        self.coro = self._main()
        self._step()

    def replay(self) -> None:
        """Rebuild the coroutine by re-running the code against the recorded history."""
        self.replaying_responses = True
        self.coro = self._main()
        self._step()
        for record in self.responses:
            if self.done:
                break
            if record[0] == "e":
                self._arrive_event(record[1], record[2])
            else:
                self._resolve(record[0], record[1], record[2])
        self.replaying_responses = False

    def is_replaying(self) -> bool:
        return self.replaying_responses or self.next_call < len(self.calls)

    async def _main(self) -> Any:
        if self.lock_mode == "acquire":
            await self._acquire()
        if self.init is not None:
            state_info, key = self.init
            self.init_state = state_info.cls()
            ctx = InitContext(self, state_info.affinity.key_value(key))
            await self.init_state.initialize(ctx, ctx.key)
            return None
        assert self.op is not None
        return await self.op.execute(OrchestrationContext(self))

    def _step(self) -> None:
        assert self.coro is not None
        while not self.done:
            try:
                yielded = self.coro.send(None)
            except StopIteration as stop:
                self._complete(True, stop.value)
                return
            except ContinueAsNew as again:
                self._restart(again.op)
                continue
            except RuntimeError as exc:
                if "event loop" in str(exc):  # e.g. asyncio.sleep(1) outside any loop
                    exc = errors.OrchestrationMisuseError(  # type: ignore[assignment]
                        f"orchestration {self.name} used asyncio ({exc}); orchestration code "
                        "may only await its context's operations, e.g. ctx.sleep"
                    )
                self._complete(False, exc)
                return
            except Exception as exc:  # the orchestration failed: deliver to the caller
                self._complete(False, exc)
                return
            if self.fatal is not None:
                self._complete(False, self.fatal)
                return
            if not isinstance(yielded, Future) or yielded._owner is not self:
                self.coro.close()
                self._complete(
                    False,
                    errors.OrchestrationMisuseError(
                        f"orchestration {self.name} awaited {yielded!r}, which is not an "
                        "operation of its context; use ctx.sleep, ctx.all or ctx.any, not asyncio"
                    ),
                )
                return
            if not yielded.done():
                self.blocked = yielded
                yielded._on_done(self._wake)
                return

    def _wake(self, _: Future[Any]) -> None:
        if self.blocked is not None and self.blocked.done() and not self.done:
            self.blocked = None
            self._step()

    @property
    def tag(self) -> str:
        """The instance id plus its continue-as-new generation: what replies, timers and
        child ids are keyed by, so that answers meant for an earlier generation are ignored."""
        return self.instance_id if not self.generation else f"{self.instance_id}~{self.generation}"

    @property
    def holder(self) -> str | None:
        """The id of the lock this run's critical section holds (None outside one)."""
        if self.lock_mode == "acquire":
            return f"{self.tag}#0"
        return self.caller_holder

    @property
    def name(self) -> str:
        if self.init is not None:
            return f"initializer of {self.init[0].name}"
        return f"{type(self.op).__name__}({self.instance_id})"

    # -- history ---------------------------------------------------------------------------

    def _call(self, description: str) -> tuple[int, bool]:
        """Record a call, or check it against the history; returns (index, replayed)."""
        index = self.next_call
        self.next_call += 1
        if index < len(self.calls):
            recorded = self.calls[index][0]
            if recorded != description and self.fatal is None:
                self.fatal = errors.NonDeterminismError(
                    f"orchestration {self.name} made call #{index} {description!r}, but its "
                    f"history records {recorded!r}: orchestration code must be deterministic"
                )
            return index, True
        self.calls.append([description])
        self.partition.touch_run(self.instance_id)
        return index, False

    def _future(self, index: int, decode: Any) -> Future[Any]:
        future: Future[Any] = Future(self)
        self.futures[index] = future
        self.decoders[index] = decode
        return future

    def deliver(self, call: int, ok: bool, value: Any) -> None:
        """A response arrived for ``call``: record it, then resume the code if it waits."""
        if self.done or call not in self.futures or self.futures[call].done():
            return  # a duplicate, or the answer to a call the code no longer waits for
        self.responses.append([call, ok, value])
        self.partition.touch_run(self.instance_id)
        self._resolve(call, ok, value)

    def _resolve(self, call: int, ok: bool, value: Any) -> None:
        future = self.futures.get(call)
        if future is None or future.done():
            return
        decode = self.decoders.pop(call, None)
        if ok:
            try:
                result = decode(value) if decode is not None else value
            except Exception as exc:
                future._resolve(False, exc)
                return
            future._resolve(True, result)
        else:
            future._resolve(False, self.partition.decode_error(value))

    def deliver_event(self, name: str, value: Any) -> None:
        if self.done:
            return
        self.responses.append(["e", name, value])
        self.partition.touch_run(self.instance_id)
        self._arrive_event(name, value)

    def _arrive_event(self, name: str, value: Any) -> None:
        for i, (waiting, call) in enumerate(self.event_waiters):
            if waiting == name:
                del self.event_waiters[i]
                self._resolve(call, True, value)
                return
        self.event_buffer.append((name, value))

    def log_line(self, level: int, text: str) -> None:
        index = self.next_log
        self.next_log += 1
        if index < self.logged:
            return  # logged before this replay
        self.logged = index + 1
        self.partition.touch_run(self.instance_id)
        self.partition.app_log(level, text)

    # -- discipline ------------------------------------------------------------------------

    def _check(self, op: Operation, forked: bool = False) -> None:
        info = self.partition.schema.info(op)
        what = f"{info.kind.value} {info.name}"
        if self.op is not None and self.op.__reactive_read_only__:
            allowed = info.kind is Kind.READ or (
                info.kind is Kind.ORCHESTRATION and info.read_only
            )
            if forked or not allowed:
                raise errors.SynchronizationDisciplineError(
                    f"read-only orchestration {self.name} may not {'fork' if forked else 'perform'}"
                    f" {what}"
                )
        if forked:
            return
        if self.init is not None and info.kind is not Kind.ACTIVITY:
            raise errors.SynchronizationDisciplineError(
                f"the {self.name} may not perform {what}: an initializer may only use "
                "activities, timers, forks and determinized values"
            )
        held = self.lock_keys
        if info.kind is Kind.ACTIVITY and info.lock:
            needed = self.partition.schema.lock_keys(op)
            if held is None or not set(needed) <= set(held):
                raise errors.SynchronizationDisciplineError(
                    f"{what} is lock=True: only an orchestration holding its keys may call it"
                )
        if held is None:
            return
        schema = self.partition.schema
        if info.kind in (Kind.UPDATE, Kind.READ):
            key = schema.state_key(op)  # type: ignore[arg-type]
            if key not in held:
                raise errors.SynchronizationDisciplineError(
                    f"{self.name} holds locks but {what} touches {key[0]} {key[1]}, "
                    "which is not in its lock set"
                )
        elif info.kind is Kind.EVENT:
            outside = [k for k in schema.event_effects(op) if k not in held]  # type: ignore[arg-type]
            if outside:
                raise errors.SynchronizationDisciplineError(
                    f"{self.name} holds locks but event {info.name} touches {outside}, "
                    "outside its lock set"
                )
        elif info.kind is Kind.ORCHESTRATION:
            needed = schema.lock_keys(op)
            if not info.lock or not set(needed) <= set(held):
                raise errors.SynchronizationDisciplineError(
                    f"{self.name} holds locks and may only perform lock=True orchestrations "
                    f"whose keys it holds, not {what}"
                )

    # -- context operations -----------------------------------------------------------------

    def perform(self, op: Operation, retry: RetryPolicy | None) -> Future[Any]:
        self._check(op)
        schema = self.partition.schema
        info = schema.info(op)
        index, replayed = self._call(_describe("perform", op, info.name))
        future = self._future(index, info.result.validate_python)
        self.performs.append(index)
        reply = (self.partition.index, self.tag, index, False)
        if info.kind is Kind.ORCHESTRATION and self.lock_keys is not None:
            self.locked_children[index] = f"{self.tag}:{index}"
        if info.kind is Kind.EVENT:
            self._perform_event(op, index, reply, replayed)  # type: ignore[arg-type]
        elif replayed:
            pass
        elif info.kind is Kind.ORCHESTRATION:
            child = f"{self.tag}:{index}"
            lock_keys = schema.lock_keys(op) if self.lock_keys is not None else None
            self.partition.send_start(
                child, op, reply, lock_keys, self.holder  # type: ignore[arg-type]
            )
        elif info.kind is Kind.ACTIVITY:
            assert isinstance(op, Activity)
            policy = retry or type(op).retry
            self.partition.start_activity(self.tag, index, op, policy, fork=False)
        else:
            key = schema.state_key(op)  # type: ignore[arg-type]
            locked = self.lock_keys is not None
            self.partition.send(
                m.LocalOp(
                    schema.owner(key, self.partition.count),
                    f"{self.tag}#{index}",
                    op,
                    key,
                    reply,
                    locked,
                    self.holder,
                )
            )
        return future

    def _perform_event(self, event: Event, index: int, reply: m.Reply, replayed: bool) -> None:
        effects = self.partition.schema.event_effects(event)
        if not effects:
            self._resolve(index, True, None)
        elif self.lock_keys is not None:
            # inside our critical section: apply directly, no lock chain; messages from us to
            # each owner are FIFO, so our later calls observe the event
            if not replayed:
                self.partition.send_commits(
                    f"{self.tag}#{index}", event, effects, True, self.holder
                )
            self._resolve(index, True, None)
        elif not replayed:
            self.partition.send_acquire(f"{self.tag}#{index}", tuple(effects), reply, event)

    def fork(self, op: Operation) -> None:
        self._check(op, forked=True)
        schema = self.partition.schema
        info = schema.info(op)
        index, replayed = self._call(_describe("fork", op, info.name))
        future = self._future(index, None)
        self.forks.append(future)
        reply = (self.partition.index, self.tag, index, True)
        if info.kind is Kind.EVENT and not schema.event_effects(op):  # type: ignore[arg-type]
            self._resolve(index, True, None)
        elif not replayed:
            self.partition.fork(f"{self.tag}:{index}", op, reply)

    def schedule(self, delay: float, op: Operation) -> None:
        from reactive.core.builtin_ops import ScheduledFork

        if delay < 0:
            raise ValueError(f"schedule() needs a delay >= 0, got {delay}")
        self.fork(ScheduledFork(delay=delay, op=list(self.partition.schema.encode_op(op))))

    def finish(self) -> Future[None]:
        if self.lock_keys is not None:
            raise errors.SynchronizationDisciplineError(
                f"{self.name} holds locks and may not call finish()"
            )
        self._call("finish")
        return AllFuture(self, self.forks, settle=True)  # type: ignore[return-value]

    def state_exists(self, state: type[State[Any]], key: Affinity) -> Future[bool]:
        schema = self.partition.schema
        info = schema.states.get(state)
        if info is None:
            raise errors.UnknownOperationError(f"state {state.__name__} is not registered")
        pkey = info.affinity.pkey(key)
        if self.lock_keys is None or pkey not in self.lock_keys:
            raise errors.SynchronizationDisciplineError(
                f"{self.name} may only check whether {info.name} {pkey[1]} exists while "
                "holding its lock"
            )
        index, replayed = self._call(f"exists {info.name} {pkey[1]}")
        future = self._future(index, bool)
        if not replayed:
            self.partition.send(
                m.Exists(
                    schema.owner(pkey, self.partition.count),
                    info.name,
                    pkey,
                    (self.partition.index, self.tag, index, False),
                    self.holder,
                )
            )
        return future

    def now(self) -> datetime:
        index, replayed = self._call("now")
        if replayed and len(self.calls[index]) > 1:
            value = self.calls[index][1]
        else:
            value = self.partition.clock
            self.calls[index].append(value)
        return datetime.fromtimestamp(value, UTC)

    def _seed(self, index: int) -> bytes:
        return hashlib.blake2b(f"{self.tag}/{index}".encode(), digest_size=16).digest()

    def new_guid(self) -> uuid.UUID:
        index, _ = self._call("guid")
        return uuid.UUID(bytes=self._seed(index), version=4)

    def new_random(self) -> random.Random:
        index, _ = self._call("random")
        return random.Random(stable_digest(self._seed(index).hex()))

    def sleep(self, seconds: float) -> Future[None]:
        if seconds < 0:
            raise ValueError(f"sleep() needs seconds >= 0, got {seconds}")
        index, replayed = self._call(f"sleep {seconds!r}")
        future = self._future(index, None)
        if not replayed:
            self.partition.add_timer(self.partition.clock + seconds, self.tag, index)
        return future

    def sleep_until(self, when: datetime) -> Future[None]:
        if when.tzinfo is None:
            raise ValueError("sleep_until() needs a timezone-aware datetime")
        index, replayed = self._call(f"sleep_until {when.isoformat()}")
        future = self._future(index, None)
        if not replayed:
            self.partition.add_timer(when.timestamp(), self.tag, index)
        return future

    def wait_for_event(self, name: str) -> Future[Any]:
        index, _ = self._call(f"wait {name}")
        future = self._future(index, None)
        for i, (arrived, value) in enumerate(self.event_buffer):
            if arrived == name:
                del self.event_buffer[i]
                self._resolve(index, True, value)
                return future
        self.event_waiters.append((name, index))
        return future

    def continue_as_new(self, op: Orchestration[Any]) -> NoReturn:
        if not isinstance(op, Orchestration):
            raise TypeError("continue_as_new() takes an orchestration object")
        raise ContinueAsNew(op)

    def _restart(self, op: Orchestration[Any]) -> None:
        """Continue as new: same instance, fresh history; unconsumed events carry over."""
        self.partition.schema.info(op)
        self.release_locks()
        self.op = op
        carried = [["e", name, value] for name, value in self.event_buffer]
        self.calls, self.responses = [], carried
        self.logged = self.next_log = self.next_call = 0
        self.futures, self.decoders, self.forks, self.performs = {}, {}, [], []
        self.event_waiters, self.event_buffer = [], []
        self.partition.drop_timers(self.tag)
        self.generation += 1
        self.partition.touch_run(self.instance_id)
        self.coro = self._main()
        for _, name, value in carried:
            self.event_buffer.append((name, value))

    # -- locks -----------------------------------------------------------------------------

    async def _acquire(self) -> None:
        assert self.lock_keys is not None
        index, replayed = self._call("lock")
        future = self._future(index, None)
        if not self.lock_keys:
            self._resolve(index, True, None)
        elif not replayed:
            self.partition.send_acquire(
                f"{self.tag}#{index}",
                self.lock_keys,
                (self.partition.index, self.tag, index, False),
                None,
            )
        await future
        self.lock_granted = True

    def release_locks(self) -> None:
        if self.lock_mode == "acquire" and self.lock_granted and self.lock_keys:
            self.lock_granted = False
            self.partition.send_release(f"{self.tag}#0", self.lock_keys)
            # (the same id as ``holder``: locked operations still in flight are refused)

    # -- completion -------------------------------------------------------------------------

    def _complete(self, ok: bool, value: Any) -> None:
        pending = [
            i for i in self.performs if not self.futures[i].done() and not self.futures[i]._raced
        ]
        if ok and pending:
            ok, value = False, errors.OrchestrationMisuseError(
                f"orchestration {self.name} returned while {len(pending)} performed "
                f"operation(s) were still pending ({', '.join(self.calls[i][0] for i in pending)}"
                "); await them, or use ctx.fork for detached work"
            )
        self.done = True
        self.blocked = None
        self.release_locks()
        self._stop_locked_children()
        self.partition.run_completed(self, ok, value)

    def terminate(self) -> None:
        self.done = True
        if self.coro is not None:
            self.coro.close()
        self.release_locks()
        self._stop_locked_children()

    def _stop_locked_children(self) -> None:
        """Children running inside our locks must not outlive them: mutual exclusion."""
        for index, child in self.locked_children.items():
            if not self.futures[index].done():
                dest = self.partition.schema.instance_owner(child, self.partition.count)
                self.partition.send(
                    m.Terminate(dest, child, f"{self.name}, which held its locks, ended")
                )
