"""/metrics in the Prometheus text format (prometheus-client): requests, latencies, watchers,
store size and revision. One registry per server, so servers in one process stay apart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class ApiMetrics:
    """The api server's metrics and their registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "apiserver_request_total",
            "Requests by verb, resource and HTTP code.",
            ["verb", "resource", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "apiserver_request_duration_seconds",
            "Request latency by verb and resource (watches excluded).",
            ["verb", "resource"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.watchers = Gauge(
            "apiserver_registered_watchers", "Open watches by resource.", ["resource"],
            registry=self.registry,
        )
        self.store_stats: dict[str, int] = {}
        self.registry.register(_StoreCollector(self))
        # labels() takes a lock and builds a key on every call; a request's few label
        # combinations repeat, so their children are kept.
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    def record(self, verb: str, resource: str, code: int, seconds: float | None) -> None:
        """Count one request; observe its latency unless `seconds` is None (watches)."""
        key = (verb, resource, str(code))
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(*key)
        counter.inc()
        if seconds is not None:
            histogram = self._histograms.get(key[:2])
            if histogram is None:
                histogram = self._histograms[key[:2]] = self.latency.labels(verb, resource)
            histogram.observe(seconds)

    def render(self) -> bytes:
        """Return the metrics in the Prometheus text format."""
        return generate_latest(self.registry)

    async def refresh_store(self, stats: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        """Read the store's figures before a scrape (the collector itself cannot await)."""
        self.store_stats = {k: int(v) for k, v in (await stats()).items()}


class _StoreCollector(Collector):
    def __init__(self, metrics: ApiMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, value in self.metrics.store_stats.items():
            yield GaugeMetricFamily(f"dockyard_store_{name}", f"Store figure {name}.", value=value)
