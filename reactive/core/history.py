"""The history format of an orchestration run: how a call is described in it (so that a
replay can tell a call that differs from the recorded one), and the error for one that does.

A run persists as its history: the calls its code made (in order, each a :class:`Call`) and
the responses it received (in arrival order, each an :class:`Answer` to a call or an
:class:`EventArrival`); see :mod:`reactive.core.runner`. The rows are tuples, so a snapshot
holds them as JSON arrays: ``[description, value]``, ``[call, ok, value]`` and
``["e", name, value]`` (a call row written before version 3 may lack its value).
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from reactive import errors
from reactive.model import Operation

ACKED = "acked"  # the value of an event call made inside locks: its owners answer it
EVENT_TAG = "e"  # the first field of an event arrival, which tells it from an answer


class Call(NamedTuple):
    """A call the code made, as a replay must see it again."""

    description: str  # kind, operation and a digest of its inputs (see describe_call)
    # what the first run saw, for calls that are not sent anywhere (now(): the clock), or
    # ACKED for an event sent inside locks; None when nothing was recorded
    value: Any = None


class Answer(NamedTuple):
    """The response to call number ``call``: its result when ``ok``, else its error."""

    call: int
    ok: bool
    value: Any


class EventArrival(NamedTuple):
    """An external event raised to the instance."""

    tag: str  # always EVENT_TAG
    name: str
    value: Any


Response = Answer | EventArrival


def event_arrival(name: str, value: Any) -> EventArrival:
    return EventArrival(EVENT_TAG, name, value)


def decode_calls(rows: list[list[Any]]) -> list[Call]:
    return [Call(row[0], row[1] if len(row) > 1 else None) for row in rows]


def decode_responses(rows: list[list[Any]]) -> list[Response]:
    return [EventArrival(*row) if row[0] == EVENT_TAG else Answer(*row) for row in rows]


def describe_call(verb: str, op: Operation, name: str) -> str:
    """How a call appears in the history: its kind, operation and a digest of its inputs
    (enough to tell a replayed call that differs from the recorded one)."""
    digest = hashlib.blake2b(op.__pydantic_serializer__.to_json(op), digest_size=4).hexdigest()
    return f"{verb} {name}#{digest}"


def divergence(
    run_name: str, index: int, made: str, recorded: str, op: Operation | None
) -> errors.NonDeterminismError:
    """The error for a replayed call that differs from the history (calls count from
    1; the history keeps a digest of an operation's inputs, the replay has them)."""
    verb, _, name = made.partition(" ")
    was_verb, _, was_name = recorded.partition(" ")
    shown = f"{verb} {op!r}" if op is not None else made
    if op is not None and (verb, name.split("#")[0]) == (was_verb, was_name.split("#")[0]):
        was = f"{recorded.split('#')[0]} with other inputs"
    else:
        was = recorded.split("#")[0]
    return errors.NonDeterminismError(
        f"orchestration {run_name} made call #{index + 1} {shown}, but its history "
        f"records {was} there: orchestration code must be deterministic"
    )
