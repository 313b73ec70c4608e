"""The synchronization rules: which operations an orchestration (or a state initializer)
may perform or fork, given whether it is read-only and which keys it holds."""

from __future__ import annotations

from typing import Any, Protocol

from reactive import errors
from reactive.model import Operation, Orchestration
from reactive.schema import Kind, OperationInfo, PKey, Schema, StateInfo


class Caller(Protocol):
    """What the rules look at in the orchestration making a call."""

    @property
    def op(self) -> Orchestration[Any] | None: ...
    @property
    def init(self) -> tuple[StateInfo, PKey] | None: ...
    @property
    def lock_keys(self) -> tuple[PKey, ...] | None: ...
    @property
    def name(self) -> str: ...


def _what(info: OperationInfo) -> str:
    return f"{info.kind.value} {info.name}"


def check_call(
    schema: Schema, caller: Caller, op: Operation, forked: bool = False,
    info: OperationInfo | None = None,
) -> None:
    """Raise if ``caller`` may not perform (or fork) ``op``: read-only orchestrations
    only read, initializers only use activities, a lock holder stays inside its lock set.
    ``info``: ``op``'s, when the caller has it already (this runs on every call)."""
    if info is None:
        info = schema.info(op)
    if caller.op is not None and caller.op.__reactive_read_only__:
        what = _what(info)
        allowed = info.kind is Kind.READ or (
            info.kind is Kind.ORCHESTRATION and info.read_only
        )
        if forked or not allowed:
            raise errors.SynchronizationDisciplineError(
                f"read-only orchestration {caller.name} may not {'fork' if forked else 'perform'}"
                f" {what}"
            )
    if forked:
        return
    if caller.init is not None and info.kind is not Kind.ACTIVITY:
        raise errors.SynchronizationDisciplineError(
            f"the {caller.name} may not perform {_what(info)}: an initializer may only use "
            "activities, timers, forks and determinized values"
        )
    held = caller.lock_keys
    if info.kind is Kind.ACTIVITY and info.lock:
        needed = schema.lock_keys(op)
        if held is None or not set(needed) <= set(held):
            raise errors.SynchronizationDisciplineError(
                f"{_what(info)} is lock=True: only an orchestration holding its keys may call it"
            )
    if held is None:
        return
    if info.kind in (Kind.UPDATE, Kind.READ):
        key = schema.state_key(op)  # type: ignore[arg-type]
        if key not in held:
            raise errors.SynchronizationDisciplineError(
                f"{caller.name} holds locks but {_what(info)} touches {key[0]} {key[1]}, "
                "which is not in its lock set"
            )
    elif info.kind is Kind.EVENT:
        outside = [k for k in schema.event_effects(op) if k not in held]  # type: ignore[arg-type]
        if outside:
            raise errors.SynchronizationDisciplineError(
                f"{caller.name} holds locks but event {info.name} touches {outside}, "
                "outside its lock set"
            )
    elif info.kind is Kind.ORCHESTRATION:
        needed = schema.lock_keys(op)
        if not info.lock or not set(needed) <= set(held):
            raise errors.SynchronizationDisciplineError(
                f"{caller.name} holds locks and may only perform lock=True orchestrations "
                f"whose keys it holds, not {_what(info)}"
            )
