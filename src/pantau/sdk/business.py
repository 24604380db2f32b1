"""Business metrics with fixed names, units and labels: signing, chain, equity, governance.

Recording goes into plain Python dictionaries under one lock (about 1 µs) instead of
OpenTelemetry instruments (`Counter.add` costs about 8 µs and `Histogram.record` about 9 µs
here, even with exemplars off). At each collection the aggregates are turned into ordinary
OpenTelemetry metric points (cumulative sums, explicit-bucket histograms, gauges) and added to
what the SDK exports, over OTLP and on the Prometheus endpoint alike.

Names follow OpenTelemetry's semantic-convention style; the Prometheus names they translate
to (by Prometheus's own OTLP rules, which the hub and the Prometheus exporter both follow):

| OpenTelemetry                        | unit          | Prometheus                                      |
|--------------------------------------|---------------|-------------------------------------------------|
| pantau.signing.operations            | {operation}   | pantau_signing_operations_total                 |
| pantau.signing.duration              | ms            | pantau_signing_duration_milliseconds_bucket/... |
| pantau.chain.operations              | {operation}   | pantau_chain_operations_total                   |
| pantau.chain.integrity               | %             | pantau_chain_integrity_percent                  |
| pantau.equity.score                  | {score}       | pantau_equity_score                             |
| pantau.equity.assessments            | {assessment}  | pantau_equity_assessments_total                 |
| pantau.governance.compliance.events  | {event}       | pantau_governance_compliance_events_total       |

The integrity gauge uses unit `%` (values 0-100): with unit `1` Prometheus's OTLP translation
appends `_ratio` but OpenTelemetry's Prometheus exporter does not, and the two names would differ.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

SCOPE = InstrumentationScope("pantau.business", "0.1.0")
DURATION_BOUNDS_MS = (1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0)


@dataclass
class Family:
    """One metric: its identity and its values per label tuple."""

    name: str
    unit: str
    description: str
    kind: str  # "counter" | "gauge" | "histogram"
    labels: tuple[str, ...]
    bounds: tuple[float, ...] = ()
    values: dict[tuple, Any] = field(default_factory=dict)


_lock = threading.Lock()
_start_ns = time.time_ns()

SIGNING_OPS = Family("pantau.signing.operations", "{operation}", "Document signing operations.", "counter",
                     ("signing.operation", "signing.status", "signing.algorithm"))
SIGNING_DURATION = Family("pantau.signing.duration", "ms", "Time to complete one signing operation.", "histogram",
                          ("signing.operation", "signing.status", "signing.algorithm"), DURATION_BOUNDS_MS)
CHAIN_OPS = Family("pantau.chain.operations", "{operation}", "Operations on the audit chain.", "counter",
                   ("chain.operation", "chain.status"))
CHAIN_INTEGRITY = Family("pantau.chain.integrity", "%", "Chain integrity score, 0-100.", "gauge", ("chain.name",))
EQUITY_SCORE = Family("pantau.equity.score", "{score}", "Latest equity score per category and tier.", "gauge",
                      ("equity.category", "equity.tier"))
EQUITY_ASSESSMENTS = Family("pantau.equity.assessments", "{assessment}", "Equity score assessments.", "counter",
                            ("equity.category", "equity.tier"))
GOVERNANCE_EVENTS = Family("pantau.governance.compliance.events", "{event}", "Governance compliance events.",
                           "counter", ("governance.policy", "governance.outcome", "governance.severity"))

FAMILIES = (SIGNING_OPS, SIGNING_DURATION, CHAIN_OPS, CHAIN_INTEGRITY, EQUITY_SCORE, EQUITY_ASSESSMENTS,
            GOVERNANCE_EVENTS)


MAX_SERIES = 2000  # label sets per metric, as OpenTelemetry's default cardinality limit
OVERFLOW = ("\x00overflow",)  # beyond it, one series with otel.metric.overflow=true (as OpenTelemetry does)


def _key(family: Family, key: tuple) -> tuple:
    if key in family.values or len(family.values) < MAX_SERIES:
        return key
    return OVERFLOW


def _add(family: Family, key: tuple, n: float = 1) -> None:
    values = family.values
    key = _key(family, key)
    values[key] = values.get(key, 0) + n


def _set(family: Family, key: tuple, value: float) -> None:
    family.values[_key(family, key)] = value


def _observe(family: Family, key: tuple, value: float) -> None:
    key = _key(family, key)
    h = family.values.get(key)
    if h is None:
        h = family.values[key] = [[0] * (len(family.bounds) + 1), 0.0, 0, value, value]
    h[0][bisect.bisect_left(family.bounds, value)] += 1
    h[1] += value
    h[2] += 1
    if value < h[3]:
        h[3] = value
    if value > h[4]:
        h[4] = value


def record_signing_operation(operation: str = "sign", status: str = "success", algorithm: str = "unknown",
                             duration_ms: float | None = None) -> None:
    """Count one signing operation (`status` e.g. success / failure) and its duration in ms."""
    key = (operation, status, algorithm)
    with _lock:
        _add(SIGNING_OPS, key)
        if duration_ms is not None:
            _observe(SIGNING_DURATION, key, float(duration_ms))


def record_chain_operation(operation: str, status: str = "success", integrity: float | None = None,
                           chain: str = "main") -> None:
    """Count one chain operation (append, verify, ...); `integrity` is a percentage, 0-100."""
    with _lock:
        _add(CHAIN_OPS, (operation, status))
        if integrity is not None:
            _set(CHAIN_INTEGRITY, (chain,), float(integrity))


def record_equity_score(score: float, category: str, tier: str) -> None:
    """Record one equity assessment: the latest score per (category, tier) and a count."""
    key = (category, tier)
    with _lock:
        _set(EQUITY_SCORE, key, float(score))
        _add(EQUITY_ASSESSMENTS, key)


def record_governance_event(policy: str, outcome: str = "compliant", severity: str = "info") -> None:
    """Count one governance compliance event (`outcome` e.g. compliant / violation)."""
    with _lock:
        _add(GOVERNANCE_EVENTS, (policy, outcome, severity))


def reset() -> None:
    global _start_ns
    with _lock:
        for f in FAMILIES:
            f.values.clear()
        _start_ns = time.time_ns()


def _points(family: Family, now: int) -> list:
    names = family.labels
    points = []
    for key, v in family.values.items():
        attrs = {"otel.metric.overflow": True} if key is OVERFLOW else dict(zip(names, key, strict=True))
        if family.kind == "histogram":
            buckets, total, count, lo, hi = v
            points.append(HistogramDataPoint(attrs, _start_ns, now, count, total, list(buckets),
                                             list(family.bounds), lo, hi))
        else:
            points.append(NumberDataPoint(attrs, _start_ns, now, v))
    return points


def snapshot() -> list[Metric]:
    """The current aggregates as OpenTelemetry metric points (cumulative since `init`)."""
    now = time.time_ns()
    metrics = []
    with _lock:
        for f in FAMILIES:
            if not f.values:
                continue
            points = _points(f, now)
            if f.kind == "counter":
                data: Any = Sum(points, AggregationTemporality.CUMULATIVE, True)
            elif f.kind == "histogram":
                data = Histogram(points, AggregationTemporality.CUMULATIVE)
            else:
                data = Gauge(points)
            metrics.append(Metric(f.name, f.description, f.unit, data))
    return metrics


def extend(data: MetricsData | None, resource: Resource) -> MetricsData:
    """`data` plus the business metrics, in their own instrumentation scope."""
    metrics = snapshot()
    resource_metrics: Sequence[ResourceMetrics] = list(data.resource_metrics) if data is not None else []
    if not metrics:
        return data if data is not None else MetricsData([])
    scope = ScopeMetrics(SCOPE, metrics, "")
    if resource_metrics:
        first = resource_metrics[0]
        resource_metrics[0] = ResourceMetrics(first.resource, [*first.scope_metrics, scope], first.schema_url)
    else:
        resource_metrics = [ResourceMetrics(resource, [scope], "")]
    return MetricsData(resource_metrics)
