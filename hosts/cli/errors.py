"""How the command line ends: exit statuses and the one-line error a user can cause."""

from __future__ import annotations

USAGE_ERROR = 2
FAILED = 1
INTERRUPTED = 130


class CliError(Exception):
    """A problem to report as one line on stderr, with an exit status."""

    def __init__(self, message: str, status: int = USAGE_ERROR) -> None:
        super().__init__(message)
        self.status = status
