"""What a long ``run`` or ``start`` shows while it runs: a progress line, and the
application's log lines routed to the terminal."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from reactive.hosting import Host

PROGRESS_LINE_INTERVAL = 2.0  # seconds between progress lines when stderr is not a TTY
PROGRESS_TTY_INTERVAL = 0.1  # seconds between redraws of the TTY progress line


def live_orchestrations(emulator: Host) -> int:
    return sum(1 for part in emulator.parts for run in part.runs.values() if run.init is None)


def finished_orchestrations(emulator: Host) -> int:
    """Finished instances the partitions still hold (``App.keep_completed`` bounds them)."""
    return sum(len(part.completed) for part in emulator.parts)


class Progress:
    """Reports progress on long runs: one updating line on a TTY, otherwise a line every
    couple of seconds at most: instances finished out of those known, deliveries and
    their rate. The emulator calls it every 1000 deliveries, a state folder's host
    (``--state``) after every round of invocations."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.shown = False
        self._last_time = time.monotonic()
        self._last_count = 0
        self._last_drawn = 0.0 if self.tty else self._last_time

    def __call__(self, emulator: Host) -> None:
        now = time.monotonic()
        interval = PROGRESS_TTY_INTERVAL if self.tty else PROGRESS_LINE_INTERVAL
        if now - self._last_drawn < interval:
            return
        rate = (emulator.deliveries - self._last_count) / max(now - self._last_time, 1e-6)
        self._last_time, self._last_count, self._last_drawn = now, emulator.deliveries, now
        live = live_orchestrations(emulator)
        finished = finished_orchestrations(emulator)
        text = (
            f"{finished:,}/{finished + live:,} instances finished, "
            f"{emulator.deliveries:,} deliveries, {rate:,.0f} messages/s, "
            f"{live:,} live orchestrations"
        )
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
            self.shown = True
        else:
            self.stream.write(f"{text}\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


class _LineHandler(logging.Handler):
    """Prints application log lines as they are emitted."""

    def __init__(self, stream: TextIO, progress: Progress) -> None:
        super().__init__(logging.DEBUG)
        self.stream = stream
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.clear()
        level = "" if record.levelno == logging.INFO else f"{record.levelname}: "
        self.stream.write(f"{level}{record.getMessage()}\n")
        self.stream.flush()


@contextmanager
def app_logging(emulator: Host, stream: TextIO | None, progress: Progress) -> Iterator[None]:
    """Route the application's log lines to ``stream`` (None: drop them), and keep the
    emulator's own report of unhandled errors out of the way (the CLI prints those)."""
    handler: logging.Handler = (
        logging.NullHandler() if stream is None else _LineHandler(stream, progress)
    )
    # a logger without handlers would fall back to logging.lastResort: give each one
    quiet = logging.NullHandler()
    routes = [(emulator.app_log, handler), (logging.getLogger("reactive.emulator"), quiet)]
    saved = [(lg.level, lg.propagate) for lg, _ in routes]
    emulator.app_log.setLevel(logging.INFO)
    for lg, route in routes:
        lg.propagate = False
        lg.addHandler(route)
    try:
        yield
    finally:
        for (lg, route), (level, propagate) in zip(routes, saved, strict=True):
            lg.removeHandler(route)
            lg.setLevel(level)
            lg.propagate = propagate

