"""What one step of a partition hands its host: messages to send, activities to run, log
lines and errors nobody awaits."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reactive.core import messages as m
from reactive.model import Activity


@dataclass(slots=True)
class ActivityTask:
    """An activity the host must run; its result comes back as an ``ActivityResult``."""

    partition: int
    instance_id: str
    call: int
    attempt: int
    op: Activity[Any]


@dataclass(slots=True)
class Effects:
    sends: list[m.Message] = field(default_factory=list)
    activities: list[ActivityTask] = field(default_factory=list)
    logs: list[tuple[int, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
