"""The writer that groups client requests into one batch, and the watcher that answers
waits by polling or as commits are reported."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

import pytest

from hosts.http.pump import GroupWriter, Watcher, observe_publish
from reactive.hosting.memory import MemoryStatusStore
from reactive.hosting.seams import PartitionHealth, StatusRecord


def record(iid: str, status: str, updated: float = 1.0) -> StatusRecord:
    return StatusRecord(iid, "Job", status, 0, 0.0, updated)  # type: ignore[arg-type]


def test_writer_groups_queued_calls_and_keeps_failures_apart() -> None:
    batches: list[list[str]] = []
    gate = threading.Event()
    current: list[str] = []

    @contextlib.contextmanager
    def batch() -> Iterator[None]:
        current.clear()
        yield
        batches.append(list(current))

    def job(name: str) -> str:
        gate.wait(10)
        if name == "bad":
            raise ValueError("bad job")
        current.append(name)
        return name.upper()

    async def main() -> list[object]:
        writer = GroupWriter(batch)
        calls = [writer.call(job, n) for n in ("a", "b", "bad", "c")]
        tasks = [asyncio.ensure_future(c) for c in calls]
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        return list(results)

    results = asyncio.run(main())
    assert results[:2] == ["A", "B"] and results[3] == "C"
    assert isinstance(results[2], ValueError)
    assert sum(len(b) for b in batches) == 3 and len(batches) <= 2


def test_writer_fails_every_call_of_a_batch_that_does_not_commit() -> None:
    @contextlib.contextmanager
    def batch() -> Iterator[None]:
        yield
        raise OSError("disk full")

    async def main() -> None:
        writer = GroupWriter(batch)
        with pytest.raises(OSError, match="disk full"):
            await writer.call(lambda: 1)
        writer.close()

    asyncio.run(main())


@pytest.mark.parametrize("told", [False, True])
def test_watcher_answers_by_polling_or_when_told(told: bool) -> None:
    store = MemoryStatusStore()
    store.put_pending(record("w", "pending", 0.0))

    async def main() -> tuple[StatusRecord | None, StatusRecord | None]:
        watcher = Watcher(store)
        if told:
            assert observe_publish(store, watcher.published)
            watcher.notified(poll=3600)  # only a report can answer in time
        waiting = asyncio.ensure_future(watcher.wait("w", 30))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        store.publish([record("w", "completed", 2.0)], PartitionHealth(0, "1", 2.0))
        done = await waiting
        late = await watcher.wait("w", 0)
        watcher.close()
        return done, late

    done, late = asyncio.run(main())
    assert done is not None and done.status == "completed"
    assert late is not None and late.status == "completed"


def test_watcher_times_out_with_the_latest_record() -> None:
    store = MemoryStatusStore()
    store.put_pending(record("slow", "pending", 0.0))

    async def main() -> StatusRecord | None:
        watcher = Watcher(store)
        found = await watcher.wait("slow", 0.05)
        watcher.close()
        return found

    found = asyncio.run(main())
    assert found is not None and found.status == "pending"
