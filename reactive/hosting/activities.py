"""Running activities for any host: one attempt, its time limit, its result as a message."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
from collections.abc import Callable
from typing import Any

from reactive import errors
from reactive.app import Schema
from reactive.core import messages
from reactive.core.context import ActivityContext, Logger
from reactive.core.partition import ActivityTask
from reactive.core.results import encode_error, encode_result

_workers: concurrent.futures.ThreadPoolExecutor | None = None


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _workers
    if _workers is None:
        _workers = concurrent.futures.ThreadPoolExecutor(
            max_workers=8, thread_name_prefix="reactive-activity"
        )
    return _workers


def execute_activity(
    schema: Schema, task: ActivityTask, log: Callable[[int, str], None]
) -> messages.ActivityResult:
    """Run one activity attempt, enforcing its time limit; the result goes back to the
    partition that asked for it."""
    op = task.op
    info = schema.info(op)
    ctx = ActivityContext(schema, Logger(log), task.instance_id, task.attempt)

    def call() -> Any:
        result = op.execute(ctx)
        if inspect.iscoroutine(result):
            result = asyncio.run(result)
        return result

    limit = type(op).time_limit
    try:
        if limit is None:
            value = call()
        else:
            try:
                value = _pool().submit(call).result(timeout=limit)
            except concurrent.futures.TimeoutError:
                raise errors.ActivityTimeoutError(
                    f"activity {info.name} exceeded its time limit of {limit} s"
                ) from None
        ok, payload = encode_result(info, value)
    except Exception as exc:
        ok, payload = False, encode_error(exc)
    return messages.ActivityResult(
        task.partition, task.instance_id, task.call, task.attempt, ok, payload
    )
