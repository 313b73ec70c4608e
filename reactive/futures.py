"""The future orchestration code awaits: an awaitable that only the runtime resolves.

Orchestration coroutines are stepped by the runtime with ``send(None)``; awaiting an
unresolved :class:`Future` yields it to the runtime, which resumes the coroutine once the
future (or the combination it is part of) is resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, Generic, TypeVar

from reactive.errors import OrchestrationMisuseError

T = TypeVar("T")


class Future(Generic[T]):
    """The pending result of a context operation. Await it to get the result or error."""

    __slots__ = ("_done", "_listeners", "_ok", "_owner", "_raced", "_value")

    def __init__(self, owner: object) -> None:
        self._owner = owner
        self._done = False
        self._raced = False  # passed to any(): the code may abandon it
        self._ok = True
        self._value: Any = None
        self._listeners: list[Callable[[Future[Any]], None]] | None = None

    def done(self) -> bool:
        return self._done

    def result(self) -> T:
        """The result (raises the error) of a resolved future."""
        if not self._done:
            raise OrchestrationMisuseError("the operation has not completed yet")
        if self._ok:
            return self._value  # type: ignore[no-any-return]
        raise self._value

    def failed(self) -> bool:
        return self._done and not self._ok

    def _resolve(self, ok: bool, value: Any) -> None:
        if self._done:
            return
        self._done, self._ok, self._value = True, ok, value
        listeners, self._listeners = self._listeners, None
        if listeners is not None:
            for listener in listeners:
                listener(self)

    def _on_done(self, listener: Callable[[Future[Any]], None]) -> None:
        if self._done:
            listener(self)
        elif self._listeners is None:
            self._listeners = [listener]
        else:
            self._listeners.append(listener)

    def __await__(self) -> Generator[Future[T], None, T]:
        if not self._done:
            yield self
        return self.result()


__all__ = ["Future"]
