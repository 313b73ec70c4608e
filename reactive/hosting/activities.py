"""Running activities for any host: one attempt, its time limit, its result as a message.

User code must not be able to take the host down or wedge it: any exception, including
``SystemExit`` and ``KeyboardInterrupt`` raised by the activity, fails the attempt; an
attempt that overruns its time limit is abandoned on its own thread (Python cannot kill
a thread), so it never holds up later activities; an ``async`` activity gets an event
loop of its own even when the host itself runs inside one.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from reactive import errors
from reactive.core import messages
from reactive.core.context import ActivityContext, Logger
from reactive.core.partition import ActivityTask
from reactive.core.results import encode_error, encode_result
from reactive.model import Activity
from reactive.schema import Schema


class _Escaped(Exception):
    """Carries a BaseException raised by user code (e.g. SystemExit) out as a failure."""


def execute_activity(
    schema: Schema, task: ActivityTask, log: Callable[[int, str], None]
) -> messages.ActivityResult:
    """Run one activity attempt, enforcing its time limit; the result goes back to the
    partition that asked for it."""
    op = task.op
    info = schema.info(op)
    ctx = ActivityContext(schema, Logger(log), task.instance_id, task.attempt)
    limit = type(op).time_limit
    try:
        if limit is None:
            value = _attempt(op, ctx, None, info.name)
        else:
            value = _on_own_thread(
                lambda: _attempt(op, ctx, limit, info.name), limit, info.name
            )
        ok, payload = encode_result(info, value)
    except _Escaped as escaped:
        exc = escaped.__cause__
        assert exc is not None
        ok, payload = False, encode_error(
            errors.ReactiveError(
                f"activity {info.name} raised {type(exc).__name__}"
                f"{'(' + repr(exc.args[0]) + ')' if exc.args else ''}; an activity may not "
                "exit or interrupt the process it runs in, so the attempt failed"
            )
        )
    except Exception as exc:
        ok, payload = False, encode_error(exc)
    return messages.ActivityResult(
        task.partition, task.instance_id, task.call, task.attempt, ok, payload
    )


def _attempt(op: Activity[Any], ctx: ActivityContext, limit: float | None, name: str) -> Any:
    """Run the user code; its non-Exception BaseExceptions become ``_Escaped``."""
    try:
        result = op.execute(ctx)
        if inspect.iscoroutine(result):
            result = _run_coroutine(result, limit, name)
        return result
    except Exception:
        raise
    except BaseException as exc:
        raise _Escaped() from exc


def _run_coroutine(coro: Coroutine[Any, Any, Any], limit: float | None, name: str) -> Any:
    async def bounded() -> Any:
        task = asyncio.ensure_future(coro)
        done, _ = await asyncio.wait({task}, timeout=limit)
        if not done:  # cancel it cooperatively; the caller's own timer is the backstop
            task.cancel()
            await asyncio.wait({task})
            raise _timeout(name, limit)
        return task.result()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(bounded())
    # called from inside a running event loop (e.g. an async serverless function):
    # asyncio.run() is not allowed here, so the coroutine gets a loop on a thread of its own
    return _on_own_thread(lambda: asyncio.run(bounded()), None, name)


def _on_own_thread(call: Callable[[], Any], limit: float | None, name: str) -> Any:
    """Run ``call`` on a fresh daemon thread and wait at most ``limit`` seconds. An
    overrunning call is left behind on its thread: nothing else waits for it."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append((True, call()))
        except BaseException as exc:  # handed to the waiting thread, never lost
            outcome.append((False, exc))

    thread = threading.Thread(target=run, name=f"reactive-activity-{name}", daemon=True)
    thread.start()
    thread.join(limit)
    if not outcome:
        raise _timeout(name, limit)
    ok, value = outcome[0]
    if ok:
        return value
    raise value


def _timeout(name: str, limit: float | None) -> errors.ActivityTimeoutError:
    return errors.ActivityTimeoutError(f"activity {name} exceeded its time limit of {limit} s")
