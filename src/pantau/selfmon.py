"""pantau's own metrics, exposed in Prometheus format at `/metrics`.

Counters are updated on the ingest path; everything that is a property of the store (queue
depth, commit latency, bytes on disk) is read from `Store.stats()` at scrape time, so the hot
path pays nothing for it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector

from pantau.store.base import StoreStats

# `_created` series double the exposition for no use to pantau's readers.
disable_created_metrics()


class SelfMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self.registry)
        self._requests = Counter(
            "pantau_ingest_requests", "Export requests received, by outcome.",
            ["signal", "protocol", "outcome"], registry=self.registry)
        self._items = Counter(
            "pantau_ingest_items", "Telemetry items (spans, log records, samples) received, by outcome: "
            "accepted (stored), rejected (invalid, reported in partial_success), refused (overload).",
            ["signal", "protocol", "outcome"], registry=self.registry)
        self._stats_source: Callable[[], StoreStats] | None = None

    def requests(self, signal: str, protocol: str, outcome: str) -> None:
        self._requests.labels(signal, protocol, outcome).inc()

    def items(self, signal: str, protocol: str, outcome: str, count: int) -> None:
        self._items.labels(signal, protocol, outcome).inc(count)

    def watch_store(self, stats: Callable[[], StoreStats]) -> None:
        if self._stats_source is None:
            self.registry.register(_StoreCollector(stats))
        self._stats_source = stats

    def watch_redaction(self, counts: Callable[[], dict[str, int]]) -> None:
        """Expose redactions per rule (`pantau_redactions_total{rule}`), read at scrape time."""
        self.registry.register(_RedactionCollector(counts))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class _RedactionCollector:
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("pantau_redactions", "Values redacted at ingest, by rule.", labels=["rule"])
        for rule, n in sorted(self.counts().items()):
            family.add_metric([rule], n)
        yield family


class _StoreCollector:
    def __init__(self, stats: Callable[[], StoreStats]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        s = self.stats()
        yield GaugeMetricFamily("pantau_write_queue_items", "Items accepted but not yet committed.",
                                value=s.queue_items)
        yield GaugeMetricFamily("pantau_write_queue_capacity_items",
                                "Items the write queue holds before refusing writes.", value=s.queue_capacity)
        buckets = sorted(s.commit_seconds_buckets.items())
        yield HistogramMetricFamily(
            "pantau_store_commit_duration_seconds", "Time to commit one group of write batches.",
            buckets=[("+Inf" if b == float("inf") else str(b), c) for b, c in buckets],
            sum_value=s.commit_seconds_total)
        size = GaugeMetricFamily("pantau_store_size_bytes", "Bytes on disk, by signal.", labels=["signal"])
        for signal, value in sorted(s.bytes_by_signal.items()):
            size.add_metric([signal], value)
        yield size
        parts = GaugeMetricFamily("pantau_store_partitions", "Time partitions on disk, by signal.",
                                  labels=["signal"])
        for signal, value in sorted(s.partitions_by_signal.items()):
            parts.add_metric([signal], value)
        yield parts
        yield GaugeMetricFamily("pantau_log_index_lag_blocks",
                                "Committed log blocks not yet in the full-text index (searched by scan meanwhile).",
                                value=s.log_index_lag)
