"""Keeping states loadable: after user code changes a state, the state must read back
from its snapshot form exactly as it is held in memory."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from reactive import errors

if TYPE_CHECKING:
    from reactive.model import State
    from reactive.schema import PKey, StateInfo


def settle(info: StateInfo, key: PKey, state: State[Any], what: str) -> State[Any]:
    """The state as a snapshot would restore it (held from now on, so that a live
    partition and a restored one see the same values); raises
    :class:`~reactive.errors.InvalidStateError` if it cannot be written and read back."""
    where = f"{what} left state {info.name} at key {key[1]} invalid"
    try:
        data = state.model_dump(mode="json", warnings=False)
    except Exception as exc:  # e.g. an object JSON cannot hold
        raise errors.InvalidStateError(f"{where}: {exc}") from None
    try:
        return info.cls.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"]) or "(the whole state)"
        got = problem.get("input")
        raise errors.InvalidStateError(
            f"{where}: field {field}: {problem['msg']} (got {type(got).__name__} {got!r:.60})"
        ) from None
