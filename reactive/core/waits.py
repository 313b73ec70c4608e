"""What a live orchestration waits for, in words: the answer to "why is it stuck?"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from reactive.core.partition import Partition


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat(timespec="seconds")


def describe_waits(part: Partition, instance_id: str) -> list[str] | None:
    """One line per call the instance's code awaits; None if it is not live here."""
    run = part.runs.get(instance_id)
    if run is None:
        return None
    timers = {(t.instance_id, t.call): t for t in part.timers}
    waits: list[str] = []
    for call, future in sorted(run.futures.items()):
        if future.done():
            continue
        description = run.calls[call].description if call < len(run.calls) else "call"
        verb, _, rest = description.partition(" ")
        name = rest.split("#", 1)[0]
        pending = part.activities.get((run.tag, call))
        timer = timers.get((run.tag, call))
        if pending is not None:
            state = ", waiting to retry" if pending.waiting_retry else ""
            due = f" at {_when(timer.due)}" if timer is not None else ""
            waits.append(f"activity {name} (attempt {pending.attempt}{state}{due})")
        elif timer is not None:
            waits.append(f"timer due at {_when(timer.due)}")
        elif verb == "wait":
            waits.append(f"event {rest!r}")
        elif verb == "lock":
            keys = ", ".join(f"{k[0]} {k[1]}" for k in run.lock_keys or ())
            waits.append(f"locks on {keys}")
        elif verb == "exists":
            waits.append(f"state_exists {rest}")
        elif verb in ("perform", "fork"):
            waits.append(f"{name} (a child orchestration or state operation)")
        else:
            waits.append(description)
    return waits
