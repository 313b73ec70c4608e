"""Progress of a running benchmark workload on stderr: how many of its items are done out
of the total, and the rate. On a terminal a rich progress bar (cleared when the workload
ends); otherwise a plain line every few seconds, which logs keep readable."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

LINE_INTERVAL = 2.0  # seconds between plain lines when stderr is not a terminal


class Meter:
    """``update(done)`` as a workload advances; a context manager that ends the display."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.last_line = self.started
        self.done = 0
        self.bar: Progress | None = None
        if self.stream.isatty():
            self.bar = Progress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TaskProgressColumn(), TextColumn("{task.fields[rate]}/s"), TimeElapsedColumn(),
                console=Console(file=self.stream), transient=True,
            )
            self.task = self.bar.add_task(label, total=total, rate="0")
            self.bar.start()

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-6)

    def update(self, done: int) -> None:
        self.done = max(0, min(done, self.total))
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done, rate=f"{self.rate():,.0f}")
            return
        now = time.monotonic()
        if now - self.last_line >= LINE_INTERVAL:
            self.last_line = now
            self.stream.write(f"  {self.label}: {self.done:,}/{self.total:,} done, "
                              f"{self.rate():,.0f}/s\n")
            self.stream.flush()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
