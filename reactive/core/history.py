"""The history format of an orchestration run: how a call is described in it (so that a
replay can tell a call that differs from the recorded one), and the error for one that does.

A run persists as its history: the calls its code made (in order, each ``[description]`` or
``[description, value]``) and the responses it received (in arrival order, ``[call, ok,
value]`` or ``["e", name, value]`` for an external event); see :mod:`reactive.core.runner`.
"""

from __future__ import annotations

import hashlib

from reactive import errors
from reactive.model import Operation


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
