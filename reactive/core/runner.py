"""Running one orchestration instance: the coroutine driver, its record/replay history,
its locks and its completion.

An instance persists as its history (:mod:`reactive.core.history`): the calls its code
made (in order) and the responses it received (in arrival order). A warm partition keeps
the live coroutine; a restored one re-runs the code against the history, sending nothing
for recorded calls.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import random
import uuid
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any, NoReturn, Protocol

from reactive import errors
from reactive.core import history, results, routing, sync_rules
from reactive.core import messages as m
from reactive.core.builtin_ops import Builtin, ScheduledFork
from reactive.core.futures import AllFuture
from reactive.core.orchestration_context import InitContext, OrchestrationContext
from reactive.futures import Future
from reactive.model import (
    Activity,
    Affinity,
    Event,
    Operation,
    Orchestration,
    RetryPolicy,
    State,
)
from reactive.placement import stable_digest
from reactive.schema import Kind, PKey, Schema, StateInfo


class RunSite(Protocol):
    """What a run needs from the partition it lives on: the schema and where it is, a way
    to send messages, activities and timers, the log, and word of its progress."""

    schema: Schema
    index: int
    count: int
    clock: float

    def send(self, msg: m.Message) -> None: ...
    def fork(self, op_id: str, op: Operation, reply: m.Reply) -> None: ...
    def start_activity(
        self, instance_id: str, call: int, op: Activity[Any], policy: RetryPolicy | None,
        fork: bool,
    ) -> None: ...
    def add_timer(self, due: float, instance_id: str, call: int) -> None: ...
    def drop_timers(self, instance_id: str) -> None: ...
    def touch_run(self, instance_id: str) -> None:
        """The run's persisted history changed: the next delta must carry it."""
    def app_log(self, level: int, text: str) -> None: ...
    def report(self, source: str, error: Any) -> None: ...
    def status_changed(self, run: Run) -> None: ...
    def run_completed(self, run: Run, ok: bool, value: Any) -> None: ...
    def hold_until_answered(
        self, tag: str, calls: list[int], release: tuple[str, tuple[PKey, ...]] | None
    ) -> None:
        """An ended run's lock release waits until these calls have answered."""


class ContinueAsNew(BaseException):
    """Raised by ``ctx.continue_as_new``; a BaseException so that ``except Exception``
    in user code does not swallow it."""

    def __init__(self, op: Orchestration[Any]) -> None:
        super().__init__()
        self.op = op


def _awaitable(result: Any, cls: type, method: str) -> Any:
    """The coroutine ``cls.method`` returned, or a clear error if it is not one (a plain
    ``def`` where ``async def`` is required)."""
    if not inspect.isawaitable(result):
        raise errors.DefinitionError(
            f"{cls.__name__}.{method} must be declared 'async def' (it returned "
            f"{type(result).__name__} {result!r:.60} instead of a coroutine)"
        )
    return result


def _raised_by_asyncio(exc: BaseException) -> bool:
    """Whether asyncio itself raised ``exc`` in this coroutine (not, say, an activity whose
    error arrived over the wire and was raised again by ``await``)."""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_globals.get("__name__", "").startswith("asyncio."):
            return True
        tb = tb.tb_next
    return False


_ATOMS = frozenset({int, str, float, bool, type(None)})


def _working_copy(op: Orchestration[Any]) -> Orchestration[Any]:
    """A copy of ``op`` its code may change freely: shallow when every field holds an
    immutable atom (most inputs; a deep copy costs several times more per start)."""
    if op.__pydantic_extra__ or op.__pydantic_private__:
        return op.model_copy(deep=True)
    for value in op.__dict__.values():
        if type(value) not in _ATOMS:
            return op.model_copy(deep=True)
    return op.model_copy()


class Run:
    """One live orchestration (or state initializer) instance on its partition."""

    def __init__(
        self,
        site: RunSite,
        instance_id: str,
        op: Orchestration[Any] | None,
        reply: m.Reply | None = None,
        lock_keys: tuple[PKey, ...] | None = None,
        lock_mode: str | None = None,
        init: tuple[StateInfo, PKey] | None = None,
        holder: str | None = None,
    ) -> None:
        self.site = site
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
        self.calls: list[history.Call] = []
        self.responses: list[history.Response] = []
        self.logged = 0  # application log lines emitted so far
        self.custom_status: Any = None  # set by ctx.set_custom_status
        # how many calls and responses the store holds (None: it holds none, or holds rows
        # since rewritten): a delta then carries only the rows added after them
        self.stored_rows: tuple[int, int] | None = None
        # in-memory execution state
        self.next_call = 0
        self.next_log = 0
        self.replaying_responses = False
        self.futures: dict[int, Future[Any]] = {}
        self.decoders: dict[int, Any] = {}
        self.forks: list[Future[Any]] = []
        self.performs: list[int] = []  # calls whose results the code must await
        self.locked_children: dict[int, str] = {}  # call -> child running inside our locks
        self.locked_events: list[int] = []  # calls: events sent inside locks, answered
        self.event_waiters: list[tuple[str, int]] = []
        self.event_buffer: list[tuple[str, Any]] = []
        self.lock_granted = False
        self.blocked: Future[Any] | None = None
        self.coro: Coroutine[Any, Any, Any] | None = None
        self.fatal: BaseException | None = None
        self.done = False

    # -- persistence -----------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """The run as a snapshot entry, whole; the store holds all its rows after this."""
        data = self._fields(self.calls, self.responses)
        if self.op is not None:
            data["op"] = self.site.schema.encode_op(self.op)
        self.stored_rows = (len(self.calls), len(self.responses))
        return data

    def to_delta(self) -> dict[str, Any]:
        """The run as a delta entry: whole, or (once the store holds its rows and none of
        them changed since) an edit carrying only the new history rows and not the input,
        which changes only with a new history (a history grows by a row or two per commit,
        and writing it whole made a commit cost the length of the run)."""
        stored = self.stored_rows
        if stored is None:
            return self.to_snapshot()
        calls_from, responses_from = stored
        data = self._fields(self.calls[calls_from:], self.responses[responses_from:])
        data["calls_from"], data["responses_from"] = calls_from, responses_from
        self.stored_rows = (len(self.calls), len(self.responses))
        return data

    def _rewrite_call(self, index: int, call: history.Call) -> None:
        """Change a recorded call; one the store already holds makes the next delta whole."""
        self.calls[index] = call
        if self.stored_rows is not None and index < self.stored_rows[0]:
            self.stored_rows = None

    def _fields(
        self, calls: list[history.Call], responses: list[history.Response]
    ) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.instance_id,
            "calls": calls,
            "responses": responses,
            "logged": self.logged,
        }
        if self.generation:
            data["generation"] = self.generation
        if self.custom_status is not None:
            data["custom_status"] = self.custom_status
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
    def from_snapshot(cls, site: RunSite, data: dict[str, Any]) -> Run:
        schema = site.schema
        init = None
        if "init" in data:
            state_name, key = data["init"]
            init = (schema.states_by_name[state_name], (key[0], key[1]))
        op = schema.decode_op(data["op"]) if "op" in data else None
        reply = data.get("reply")
        lock_keys = data.get("lock_keys")
        run = cls(
            site,
            data["id"],
            op,  # type: ignore[arg-type]
            reply=m.Reply(*reply) if reply else None,
            lock_keys=tuple((k[0], k[1]) for k in lock_keys) if lock_keys is not None else None,
            lock_mode=data.get("lock_mode"),
            init=init,
            holder=data.get("holder"),
        )
        run.calls = history.decode_calls(data["calls"])
        run.responses = history.decode_responses(data["responses"])
        run.logged = data["logged"]
        run.generation = data.get("generation", 0)
        run.custom_status = data.get("custom_status")
        run.stored_rows = (len(run.calls), len(run.responses))
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
            if isinstance(record, history.EventArrival):
                self._arrive_event(record.name, record.value)
            else:
                self._resolve(record.call, record.ok, record.value)
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
            await _awaitable(
                self.init_state.initialize(ctx, ctx.key), state_info.cls, "initialize"
            )
            return None
        assert self.op is not None
        # the code runs on a copy: it may change its own fields, yet a replay (and the
        # snapshot) must start from the input as it was received
        working = _working_copy(self.op)
        context = OrchestrationContext(self)
        if isinstance(working, Builtin):
            return await working.run(context, self.site.schema)
        return await _awaitable(working.execute(context), type(working), "execute")

    def _step(self) -> None:
        assert self.coro is not None
        while not self.done:
            try:
                yielded = self.coro.send(None)
            except StopIteration as stop:
                self._complete(True, stop.value)
                return
            except ContinueAsNew as again:
                if self.fatal is not None:
                    self._complete(False, self.fatal)
                    return
                self._restart(again.op)
                continue
            except Exception as exc:  # the orchestration failed: deliver to the caller
                if isinstance(exc, RuntimeError) and _raised_by_asyncio(exc):
                    exc = errors.OrchestrationMisuseError(  # e.g. asyncio.sleep(1), no loop
                        f"orchestration {self.name} used asyncio ({exc}); orchestration code "
                        "may only await its context's operations, e.g. ctx.sleep"
                    )
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
    def schema(self) -> Schema:
        return self.site.schema

    @property
    def name(self) -> str:
        if self.init is not None:
            return f"initializer of {self.init[0].name}"
        return f"{type(self.op).__name__}({self.instance_id})"

    # -- history ---------------------------------------------------------------------------

    def _call(self, description: str, op: Operation | None = None) -> tuple[int, bool]:
        """Record a call, or check it against the history; returns (index, replayed)."""
        index = self.next_call
        self.next_call += 1
        if index < len(self.calls):
            recorded = self.calls[index].description
            if recorded != description and self.fatal is None:
                self.fatal = history.divergence(self.name, index, description, recorded, op)
            return index, True
        self.calls.append(history.Call(description))
        self.site.touch_run(self.instance_id)
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
        self.responses.append(history.Answer(call, ok, value))
        self.site.touch_run(self.instance_id)
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
            future._resolve(False, results.decode_error(self.site.schema, value))

    def deliver_event(self, name: str, value: Any) -> None:
        if self.done:
            return
        self.responses.append(history.event_arrival(name, value))
        self.site.touch_run(self.instance_id)
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
        self.site.touch_run(self.instance_id)
        self.site.app_log(level, text)

    # -- context operations -----------------------------------------------------------------

    def perform(self, op: Operation, retry: RetryPolicy | None) -> Future[Any]:
        schema = self.site.schema
        info = schema.info(op)
        sync_rules.check_call(schema, self, op, info=info)
        index, replayed = self._call(history.describe_call("perform", op, info.name), op)
        future = self._future(index, results.result_decoder(info))
        self.performs.append(index)
        reply = m.Reply(self.site.index, self.tag, index, False)
        if info.kind is Kind.ORCHESTRATION and self.lock_keys is not None:
            self.locked_children[index] = f"{self.tag}:{index}"
        if info.kind is Kind.EVENT:
            self._perform_event(op, index, reply, replayed)  # type: ignore[arg-type]
        elif replayed:
            pass
        elif info.kind is Kind.ACTIVITY:
            assert isinstance(op, Activity)
            policy = retry or type(op).retry
            self.site.start_activity(self.tag, index, op, policy, fork=False)
        else:
            # a child orchestration's id is the parent's tag and call; a state operation's
            # id names the call (``#``), like the lock and event ids
            sep = ":" if info.kind is Kind.ORCHESTRATION else "#"
            self._route(f"{self.tag}{sep}{index}", op, reply)
        return future

    def _route(self, op_id: str, op: Operation, reply: m.Reply) -> None:
        """Send ``op`` where it runs, inside our critical section if we hold one."""
        msg = routing.operation(
            self.site.schema, self.site.count, op_id, op, reply, self.lock_keys, self.holder
        )
        if msg is not None:
            self.site.send(msg)

    def _perform_event(self, event: Event, index: int, reply: m.Reply, replayed: bool) -> None:
        effects = self.site.schema.event_effects(event)
        if not effects:
            self._resolve(index, True, None)
        elif self.lock_keys is not None:
            # inside a critical section (ours or our caller's): no lock chain; the owners
            # answer once all have the event, so the locks, wherever they are released
            # from, cannot be released before it arrived (nor our later calls overtake it)
            self.locked_events.append(index)
            if not replayed:
                self._rewrite_call(index, self.calls[index]._replace(value=history.ACKED))
                self._route(f"{self.tag}#{index}", event, reply)
            elif self.calls[index].value is None:  # recorded when such events were not answered
                self.locked_events.pop()
                self._resolve(index, True, None)
        elif not replayed:
            self._route(f"{self.tag}#{index}", event, reply)

    def fork(self, op: Operation) -> None:
        schema = self.site.schema
        info = schema.info(op)
        sync_rules.check_call(schema, self, op, forked=True, info=info)
        index, replayed = self._call(history.describe_call("fork", op, info.name), op)
        future = self._future(index, None)
        self.forks.append(future)
        reply = m.Reply(self.site.index, self.tag, index, True)
        if info.kind is Kind.EVENT and not schema.event_effects(op):  # type: ignore[arg-type]
            self._resolve(index, True, None)
        elif not replayed:
            self.site.fork(f"{self.tag}:{index}", op, reply)

    def schedule(self, delay: float, op: Operation) -> None:
        if delay < 0:
            raise ValueError(f"schedule() needs a delay >= 0, got {delay}")
        self.fork(ScheduledFork(delay=delay, op=list(self.site.schema.encode_op(op))))

    def finish(self) -> Future[None]:
        if self.lock_keys is not None:
            raise errors.SynchronizationDisciplineError(
                f"{self.name} holds locks and may not call finish()"
            )
        self._call("finish")
        return AllFuture(self, self.forks, settle=True)  # type: ignore[return-value]

    def state_exists(self, state: type[State[Any]], key: Affinity) -> Future[bool]:
        schema = self.site.schema
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
            self.site.send(
                m.Exists(
                    schema.owner(pkey, self.site.count),
                    info.name,
                    pkey,
                    m.Reply(self.site.index, self.tag, index, False),
                    self.holder,
                )
            )
        return future

    def now(self) -> datetime:
        index, replayed = self._call("now")
        if replayed and self.calls[index].value is not None:
            value = self.calls[index].value
        else:
            value = self.site.clock
            self._rewrite_call(index, self.calls[index]._replace(value=value))
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
            self.site.add_timer(self.site.clock + seconds, self.tag, index)
        return future

    def sleep_until(self, when: datetime) -> Future[None]:
        if when.tzinfo is None:
            raise ValueError("sleep_until() needs a timezone-aware datetime")
        index, replayed = self._call(f"sleep_until {when.isoformat()}")
        future = self._future(index, None)
        if not replayed:
            self.site.add_timer(when.timestamp(), self.tag, index)
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

    def set_custom_status(self, value: Any) -> None:
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"a custom status must be JSON data: {exc}") from None
        if value == self.custom_status:
            return
        self.custom_status = value
        self.site.touch_run(self.instance_id)
        if self.reply is None and self.init is None and not self.is_replaying():
            self.site.status_changed(self)

    def continue_as_new(self, op: Orchestration[Any]) -> NoReturn:
        if not isinstance(op, Orchestration):
            raise TypeError("continue_as_new() takes an orchestration object")
        raise ContinueAsNew(op)

    def _restart(self, op: Orchestration[Any]) -> None:
        """Continue as new: same instance, fresh history; unconsumed events carry over."""
        self.site.schema.info(op)
        self.release_locks()
        self.op = op
        buffered = list(self.event_buffer)
        self.calls = []
        self.responses = [history.event_arrival(name, value) for name, value in buffered]
        self.stored_rows = None  # a new history and input: the next delta writes them whole
        self.logged = self.next_log = self.next_call = 0
        self.futures, self.decoders, self.forks, self.performs = {}, {}, [], []
        self.locked_events = []
        self.event_waiters, self.event_buffer = [], []
        self.site.drop_timers(self.tag)
        self.generation += 1
        self.site.touch_run(self.instance_id)
        self.coro = self._main()
        self.event_buffer.extend(buffered)

    # -- locks -----------------------------------------------------------------------------

    async def _acquire(self) -> None:
        assert self.lock_keys is not None
        index, replayed = self._call("lock")
        future = self._future(index, None)
        if not self.lock_keys:
            self._resolve(index, True, None)
        elif not replayed:
            self.site.send(routing.acquire(
                self.site.schema,
                self.site.count,
                f"{self.tag}#{index}",
                self.lock_keys,
                m.Reply(self.site.index, self.tag, index, False),
                None,
            ))
        await future
        self.lock_granted = True

    def release_locks(self) -> None:
        release = None
        if self.lock_mode == "acquire" and self.lock_granted and self.lock_keys:
            self.lock_granted = False
            # (the same id as ``holder``: locked operations still in flight are refused)
            release = (f"{self.tag}#0", self.lock_keys)
        unanswered = self._unanswered_inside_locks() if self.done else []
        if unanswered:  # ended with events (or children) inside the locks still in flight
            self.site.hold_until_answered(self.tag, unanswered, release)
        elif release is not None:
            for msg in routing.releases(self.site.schema, self.site.count, *release):
                self.site.send(msg)

    def _unanswered_inside_locks(self) -> list[int]:
        """Calls made inside the locks that have not answered: events on their way to their
        owners, and locked children (stopped with us; they answer once they have settled)."""
        calls = [*self.locked_events, *self.locked_children]
        return [i for i in calls if i in self.futures and not self.futures[i].done()]

    # -- completion -------------------------------------------------------------------------

    def _complete(self, ok: bool, value: Any) -> None:
        if self.fatal is not None:  # a replay diverged: whatever the code did next, it failed
            ok, value = False, self.fatal
            if self.coro is not None:
                self.coro.close()
            # final: nothing revives it, and an operator must hear of it (no caller may)
            self.site.report(self.name, results.encode_error(value))
        pending = [
            i for i in self.performs if not self.futures[i].done() and not self.futures[i]._raced
        ]
        if ok and pending:
            ok, value = False, errors.OrchestrationMisuseError(
                f"orchestration {self.name} returned while {len(pending)} performed "
                "operation(s) were still pending ("
                f"{', '.join(self.calls[i].description for i in pending)}"
                "); await them, or use ctx.fork for detached work"
            )
        self.blocked = None
        inflight = [self.futures[i] for i in self.locked_events if not self.futures[i].done()]
        if inflight and self.fatal is None:
            # an event sent inside the locks has not reached every owner yet (abandoned in
            # any(), or not awaited): releasing now could let it arrive after the release,
            # half-applied; finish once every owner has answered
            AllFuture(self, inflight, settle=True)._on_done(lambda _: self._finish(ok, value))
            return
        self._finish(ok, value)

    def _finish(self, ok: bool, value: Any) -> None:
        if self.done:
            return
        self.done = True
        self.release_locks()
        self._stop_locked_children()
        self.site.run_completed(self, ok, value)
        self._let_go()

    def terminate(self) -> None:
        self.done = True
        if self.coro is not None:
            self.coro.close()
        self.release_locks()
        self._stop_locked_children()
        self._let_go()

    def _let_go(self) -> None:
        """An ended run is dropped by its partition: cut the references that tie it to its
        futures in cycles (each future names its run, and its listeners are the run's
        methods), so that it is freed at once, not by the cyclic garbage collector, whose
        passes otherwise take a good share of a busy partition's time."""
        self.coro = None
        self.blocked = None
        self.futures = {}
        self.decoders = {}
        self.forks = []
        self.event_waiters = []

    def _stop_locked_children(self) -> None:
        """Children running inside our locks must not outlive them: mutual exclusion."""
        for index, child in self.locked_children.items():
            if not self.futures[index].done():
                dest = self.site.schema.instance_owner(child, self.site.count)
                self.site.send(
                    m.Terminate(dest, child, f"{self.name}, which held its locks, ended")
                )
