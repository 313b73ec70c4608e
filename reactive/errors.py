"""The whole exception tree of the reactive runtime.

Every error the runtime raises derives from :class:`ReactiveError`. Errors raised by
application code travel to the awaiting caller with their type when the type is known to
the application (builtins, this module, or registered with ``App.register_exception``);
otherwise they arrive as :class:`ApplicationError` carrying the original type name.
"""

from __future__ import annotations


class ReactiveError(Exception):
    """Base class of every error raised by the runtime itself."""


class DefinitionError(ReactiveError):
    """An application definition is invalid (raised when classes are registered or compiled)."""


class SynchronizationDisciplineError(ReactiveError):
    """An operation broke the locking discipline, e.g. touched a key outside its lock set."""


class StateNotFoundError(ReactiveError, KeyError):
    """A read or update addressed a state instance that does not exist (and may not be created)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "state not found"


class InvalidStateError(ReactiveError):
    """User code left a state with a value its type does not allow; the change was undone."""


class NonDeterminismError(ReactiveError):
    """Replaying an orchestration made a call that differs from its recorded history."""


class OrchestrationMisuseError(ReactiveError):
    """Orchestration code did something the runtime cannot replay (e.g. awaited a foreign task)."""


class ActivityTimeoutError(ReactiveError, TimeoutError):
    """An activity ran longer than its time limit."""


class TerminatedError(ReactiveError):
    """The orchestration instance was terminated before it completed."""


class UnknownOperationError(ReactiveError):
    """A message or request named an operation this application does not define."""


class ApplicationError(ReactiveError):
    """An application exception whose type is not registered with the application.

    ``remote_type`` holds the original exception's type name.
    """

    def __init__(self, remote_type: str, message: str) -> None:
        super().__init__(remote_type, message)
        self.remote_type = remote_type
        self.remote_message = message

    def __str__(self) -> str:
        return f"{self.remote_type}: {self.remote_message}"


class CorruptSnapshotError(ReactiveError):
    """A snapshot could not be decoded or failed its checksum."""


__all__ = [
    "ActivityTimeoutError",
    "ApplicationError",
    "CorruptSnapshotError",
    "DefinitionError",
    "InvalidStateError",
    "NonDeterminismError",
    "OrchestrationMisuseError",
    "ReactiveError",
    "StateNotFoundError",
    "SynchronizationDisciplineError",
    "TerminatedError",
    "UnknownOperationError",
]
