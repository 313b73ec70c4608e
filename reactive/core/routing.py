"""Where messages go: the partition that owns an instance or a key, for each message the
runner and the partition send. Pure functions of the schema and the partition count."""

from __future__ import annotations

from typing import Any

from reactive.core import messages as m
from reactive.model import Event, Operation, Orchestration
from reactive.schema import Kind, PKey, Schema


def start(
    schema: Schema,
    count: int,
    instance_id: str,
    op: Orchestration[Any],
    reply: m.Reply | None,
    lock_keys: tuple[PKey, ...] | None,
    holder: str | None = None,
) -> m.Start:
    dest = schema.instance_owner(instance_id, count)
    return m.Start(dest, instance_id, op, reply, lock_keys, holder)


def acquire(
    schema: Schema,
    count: int,
    lock_id: str,
    keys: tuple[PKey, ...],
    reply: m.Reply | None,
    event: Event | None,
) -> m.Acquire:
    return m.Acquire(schema.owner(keys[0], count), lock_id, keys, 0, reply, event)


def by_owner(schema: Schema, count: int, keys: tuple[PKey, ...]) -> dict[int, tuple[PKey, ...]]:
    groups: dict[int, list[PKey]] = {}
    for key in keys:
        groups.setdefault(schema.owner(key, count), []).append(key)
    return {dest: tuple(group) for dest, group in sorted(groups.items())}


def releases(schema: Schema, count: int, lock_id: str, keys: tuple[PKey, ...]) -> list[m.Release]:
    groups = by_owner(schema, count, keys)
    return [m.Release(dest, lock_id, group) for dest, group in groups.items()]


def locked_commit(
    schema: Schema,
    count: int,
    lock_id: str,
    event: Event,
    keys: tuple[PKey, ...],
    holder: str | None,
    reply: m.Reply,
) -> m.Commit:
    """An event performed inside a critical section: it visits the owners of its keys
    in turn and the last one answers ``reply``, so the performer (and whoever holds
    the locks) cannot go on, or release them, before every owner has the event."""
    return m.Commit(schema.owner(keys[0], count), lock_id, event, keys, True, holder, reply)


def operation(
    schema: Schema,
    count: int,
    op_id: str,
    op: Operation,
    reply: m.Reply,
    held: tuple[PKey, ...] | None = None,
    holder: str | None = None,
) -> m.Message | None:
    """The message that carries ``op`` (an orchestration, event, read or update) to where
    it runs, for perform and fork alike; None for an event no state subscribes to (it is
    done at once). ``held``: the keys of the caller's critical section (``holder`` its
    lock id), None outside one. Activities run where they are called: not routed."""
    kind = schema.info(op).kind
    if kind is Kind.ORCHESTRATION:
        lock_keys = None if held is None else schema.lock_keys(op)
        return start(schema, count, op_id, op, reply, lock_keys, holder)  # type: ignore[arg-type]
    if kind is Kind.EVENT:
        keys = tuple(schema.event_effects(op))  # type: ignore[arg-type]
        if not keys:
            return None
        if held is not None:
            return locked_commit(schema, count, op_id, op, keys, holder, reply)  # type: ignore[arg-type]
        return acquire(schema, count, op_id, keys, reply, op)  # type: ignore[arg-type]
    if kind is Kind.ACTIVITY:
        raise ValueError(f"activity {type(op).__name__} is not routed: it runs where called")
    key = schema.state_key(op)  # type: ignore[arg-type]
    return m.LocalOp(schema.owner(key, count), op_id, op, key, reply, held is not None, holder)
