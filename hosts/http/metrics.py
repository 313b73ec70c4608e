"""Prometheus metrics: HTTP requests by route and status, and, read from the status store
at scrape time, instances by status and each partition's health."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import get_args

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from reactive.hosting.seams import Status, StatusQuery, StatusStore

PAGE = 1000
COUNT_CAP = 1_000_000  # instances counted per status at most when the store cannot count


class StoreCollector(Collector):
    """Reads the status store on every scrape."""

    def __init__(
        self, status: StatusStore, backlog: Callable[[int], int] | None = None
    ) -> None:
        self.status = status
        self.backlog = backlog

    def count(self, status: Status) -> int:
        counter = getattr(self.status, "count", None)
        if callable(counter):
            return int(counter(StatusQuery(status=status)))
        total, after = 0, None
        while total < COUNT_CAP:
            page = self.status.query(StatusQuery(status=status, after=after, limit=PAGE))
            total += len(page)
            if len(page) < PAGE:
                break
            after = page[-1].instance_id
        return total

    def collect(self) -> Iterator[Metric]:
        instances = GaugeMetricFamily(
            "reactive_instances", "Orchestration instances by status", labels=["status"]
        )
        for status in get_args(Status):
            instances.add_metric([status], self.count(status))
        yield instances
        fields = {
            "committed_at": ("reactive_partition_last_commit_timestamp_seconds",
                             "When the partition last committed"),
            "snapshot_bytes": ("reactive_partition_snapshot_bytes",
                               "Size of the partition's snapshot"),
            "dead_letters": ("reactive_partition_dead_letters",
                             "Inputs the partition could not process"),
            "live_runs": ("reactive_partition_live_runs",
                          "Orchestrations and state initializers in the partition's memory"),
            "held": ("reactive_partition_held_messages",
                     "Messages held until an earlier one from the same sender arrives"),
            "held_since": ("reactive_partition_held_since_timestamp_seconds",
                           "When the oldest held message arrived"),
            "backlog": ("reactive_partition_backlog", "Inputs waiting to be processed"),
        }
        families = {
            key: GaugeMetricFamily(name, text, labels=["partition"])
            for key, (name, text) in fields.items()
        }
        for health in self.status.health():
            for key, family in families.items():
                value = getattr(health, key, None)
                if key == "backlog" and self.backlog is not None:
                    value = self.backlog(health.partition)
                if value is not None:
                    family.add_metric([str(health.partition)], float(value))
        yield from families.values()


class Metrics:
    """A registry of its own per application, so that several apps can share a process."""

    def __init__(
        self, status: StatusStore, backlog: Callable[[int], int] | None = None
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "reactive_http_requests",
            "HTTP requests by method, route and status code",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "reactive_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route"],
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30),
            registry=self.registry,
        )
        self.registry.register(StoreCollector(status, backlog))
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        # the labelled children, looked up once per label set (``labels()`` validates
        # and locks on every call)
        key = (method, route, status)
        pair = self._children.get(key)
        if pair is None:
            pair = (self.requests.labels(method, route, str(status)), self.latency.labels(route))
            self._children[key] = pair
        pair[0].inc()
        pair[1].observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
