"""Build OTLP export requests by hand (for bad-input, crash and benchmark tests)."""

from __future__ import annotations

import os
import time

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


def kv(key: str, value) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def trace_request(n: int, service: str = "signer", trace_id: bytes | None = None, start_ns: int | None = None,
                  attrs: dict | None = None, span_ids: list[bytes] | None = None) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    rs.resource.attributes.extend([kv("service.name", service), kv("host.name", "bench-1")])
    ss = rs.scope_spans.add()
    ss.scope.name = "pantau.tests"
    t0 = start_ns or time.time_ns()
    base_attrs = attrs if attrs is not None else {
        "http.request.method": "POST", "http.route": "/documents/sign", "http.response.status_code": 200,
        "document.id": "doc-1", "signature.algorithm": "ed25519", "retry": False}
    for i in range(n):
        s = ss.spans.add()
        s.trace_id = trace_id or os.urandom(16)
        s.span_id = span_ids[i] if span_ids else os.urandom(8)
        if i:
            s.parent_span_id = ss.spans[0].span_id
        s.name = "POST /documents/sign"
        s.kind = 2
        s.start_time_unix_nano = t0 + i * 1000
        s.end_time_unix_nano = t0 + i * 1000 + 1_500_000
        s.attributes.extend(kv(k, v) for k, v in base_attrs.items())
        s.status.code = 1
    return req


def log_request(n: int, service: str = "signer", trace_id: bytes = b"", body: str | None = None,
                time_ns: int | None = None, attrs: dict | None = None) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.extend([kv("service.name", service)])
    sl = rl.scope_logs.add()
    t0 = time_ns or time.time_ns()
    for i in range(n):
        r = sl.log_records.add()
        r.time_unix_nano = t0 + i
        r.observed_time_unix_nano = t0 + i
        r.severity_number = 9
        r.severity_text = "INFO"
        r.body.string_value = body.format(i=i) if body else f"signed document doc-{i} in {i % 97} ms"
        r.attributes.extend(kv(k, v) for k, v in (attrs or {"logger": "signer.core", "request.id": f"r{i}"}).items())
        if trace_id:
            r.trace_id = trace_id
            r.span_id = os.urandom(8)
    return req


def gauge_request(name: str, points: list[tuple[int, float]], labels: dict | None = None,
                  service: str = "signer") -> ExportMetricsServiceRequest:
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend([kv("service.name", service)])
    m = rm.scope_metrics.add().metrics.add()
    m.name = name
    for t_ns, value in points:
        dp = m.gauge.data_points.add()
        dp.time_unix_nano = t_ns
        dp.as_double = value
        dp.attributes.extend(kv(k, v) for k, v in (labels or {}).items())
    return req


def samples_request(series: int, points: int, t0_ns: int | None = None, step_ns: int = 15_000_000_000,
                    name: str = "bench.requests") -> ExportMetricsServiceRequest:
    """`series` cumulative counter series with `points` points each."""
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend([kv("service.name", "bench"), kv("service.instance.id", "bench-1")])
    m = rm.scope_metrics.add().metrics.add()
    m.name = name
    m.sum.is_monotonic = True
    m.sum.aggregation_temporality = 2
    t0 = t0_ns or time.time_ns() - points * step_ns
    for s in range(series):
        for p in range(points):
            dp = m.sum.data_points.add()
            dp.time_unix_nano = t0 + p * step_ns
            dp.as_int = p * 10 + s
            dp.attributes.extend([kv("route", f"/r{s % 50}"), kv("pod", f"pod-{s}")])
    return req
