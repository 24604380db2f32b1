"""The OpenTelemetry Python SDK's own OTLP exporters (HTTP and gRPC) against a real `pantau serve`.

Everything sent is read back through the query APIs and compared field by field with what
the SDK recorded (an in-memory exporter next to the OTLP one holds the ground truth).
"""

from __future__ import annotations

import logging
import time

import pytest
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from tests.conftest import HubProcess, wait_until

pytestmark = pytest.mark.e2e


def exporters(protocol: str, hub: HubProcess):
    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        base = hub.otlp_http
        return (OTLPSpanExporter(f"{base}/v1/traces"), OTLPMetricExporter(f"{base}/v1/metrics"),
                OTLPLogExporter(f"{base}/v1/logs"))
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return (OTLPSpanExporter(hub.otlp_grpc, insecure=True), OTLPMetricExporter(hub.otlp_grpc, insecure=True),
            OTLPLogExporter(hub.otlp_grpc, insecure=True))


class Service:
    """One instrumented 'service': its own resource, providers and exporters."""

    def __init__(self, name: str, protocol: str, hub: HubProcess) -> None:
        self.resource = Resource.create({"service.name": name, "service.version": "1.4.2",
                                         "service.instance.id": f"{name}-1", "deployment.environment": "test"})
        span_exporter, metric_exporter, log_exporter = exporters(protocol, hub)
        self.memory = InMemorySpanExporter()
        self.tracer_provider = TracerProvider(resource=self.resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.tracer_provider.get_tracer("pantau.tests", "0.9")
        self.reader = PeriodicExportingMetricReader(metric_exporter, export_interval_millis=3_600_000)
        self.meter_provider = MeterProvider(
            resource=self.resource, metric_readers=[self.reader],
            views=[View(instrument_name="signing.duration",
                        aggregation=ExplicitBucketHistogramAggregation([5, 10, 50, 100]))])
        self.log_memory = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider(resource=self.resource)
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_memory))
        self.logger = logging.getLogger(f"pantau.tests.{name}.{protocol}")
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)
        self.logger.addHandler(LoggingHandler(logger_provider=self.logger_provider))

    def flush(self) -> None:
        assert self.tracer_provider.force_flush(10_000)
        assert self.meter_provider.force_flush(10_000)
        assert self.logger_provider.force_flush(10_000)

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()
        self.logger_provider.shutdown()


def run_workload(gateway: Service, signer: Service, chain: Service, calls: int) -> None:
    """gateway -> signer -> chain, `calls` times, with logs inside the spans."""
    for i in range(calls):
        with gateway.tracer.start_as_current_span("GET /documents/sign", kind=SpanKind.SERVER,
                                                   attributes={"http.route": "/documents/sign"}):
            with gateway.tracer.start_as_current_span("POST signer", kind=SpanKind.CLIENT) as client:
                ctx = trace.set_span_in_context(client)
                with signer.tracer.start_as_current_span(
                        "POST /sign", context=ctx, kind=SpanKind.SERVER,
                        attributes={"doc.id": f"doc-{i}", "doc.pages": 3 + i, "doc.size_kb": 12.5,
                                    "doc.signed": True, "doc.tags": ["legal", "urgent"]}) as server:
                    server.add_event("key loaded", {"key.id": "k-7", "key.bits": 4096})
                    signer.logger.info("signed document doc-%d", i, extra={"document.id": f"doc-{i}"})
                    with signer.tracer.start_as_current_span("POST chain/append", kind=SpanKind.CLIENT) as c2:
                        ctx2 = trace.set_span_in_context(c2)
                        with chain.tracer.start_as_current_span(
                                "POST /append", context=ctx2, kind=SpanKind.SERVER,
                                links=[Link(server.get_span_context(), {"link.reason": "audit"})]) as ap:
                            if i == calls - 1:
                                ap.set_status(Status(StatusCode.ERROR, "integrity check failed"))
                                chain.logger.error("chain integrity dropped to %.1f", 91.2,
                                                   extra={"chain.integrity": 91.2})
                            else:
                                ap.set_status(Status(StatusCode.OK))


def record_metrics(signer: Service) -> None:
    meter = signer.meter_provider.get_meter("pantau.tests")
    ops = meter.create_counter("signing.operations", unit="{operation}", description="Signing operations")
    ops.add(5, {"status": "ok"})
    ops.add(2, {"status": "failed"})
    inflight = meter.create_up_down_counter("signing.inflight", unit="{operation}")
    inflight.add(3)
    inflight.add(-1)
    duration = meter.create_histogram("signing.duration", unit="ms", description="Signing latency")
    for v in (3, 7, 7, 40, 250):
        duration.record(v, {"algorithm": "ed25519"})
    meter.create_observable_gauge(
        "chain.integrity", unit="1", callbacks=[lambda _o: [_observation(0.97)]])


def _observation(value: float):
    from opentelemetry.metrics import Observation

    return Observation(value)


def _attr_json(value):
    return list(value) if isinstance(value, tuple) else value


def compare_span(got: dict, sdk_span, service: str) -> None:
    ctx = sdk_span.get_span_context()
    assert got["trace_id"] == f"{ctx.trace_id:032x}"
    assert got["span_id"] == f"{ctx.span_id:016x}"
    assert got["parent_span_id"] == (f"{sdk_span.parent.span_id:016x}" if sdk_span.parent else "")
    assert got["service"] == service
    assert got["name"] == sdk_span.name
    assert got["kind"] == sdk_span.kind.name
    assert int(got["start_time_unix_nano"]) == sdk_span.start_time
    assert int(got["end_time_unix_nano"]) == sdk_span.end_time
    assert got["status"]["code"] == sdk_span.status.status_code.name
    assert got["status"]["message"] == (sdk_span.status.description or "")
    assert got["attributes"] == {k: _attr_json(v) for k, v in sdk_span.attributes.items()}
    assert [(e["name"], int(e["time_unix_nano"]), e["attributes"]) for e in got["events"]] == [
        (e.name, e.timestamp, dict(e.attributes)) for e in sdk_span.events]
    assert [(lk["trace_id"], lk["span_id"], lk["attributes"]) for lk in got["links"]] == [
        (f"{lk.context.trace_id:032x}", f"{lk.context.span_id:016x}", dict(lk.attributes))
        for lk in sdk_span.links]
    assert got["resource"] == dict(sdk_span.resource.attributes)
    assert got["scope"] == {"name": sdk_span.instrumentation_scope.name,
                            "version": sdk_span.instrumentation_scope.version}


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_sdk_exporters_roundtrip(hub: HubProcess, protocol: str) -> None:
    gateway = Service("gateway", protocol, hub)
    signer = Service("signer", protocol, hub)
    chain = Service("chain", protocol, hub)
    services = {"gateway": gateway, "signer": signer, "chain": chain}
    calls = 3
    run_workload(gateway, signer, chain, calls)
    record_metrics(signer)
    for s in services.values():
        s.flush()

    # --- traces: every span, field by field ---
    sent = {name: s.memory.get_finished_spans() for name, s in services.items()}
    trace_ids = {f"{sp.get_span_context().trace_id:032x}" for spans in sent.values() for sp in spans}
    assert len(trace_ids) == calls
    by_id = {}
    for tid in trace_ids:
        resp = hub.get(f"/api/pantau/traces/{tid}")
        assert resp.status_code == 200, resp.text
        for span in resp.json()["spans"]:
            by_id[span["span_id"]] = span
    total = 0
    for name, spans in sent.items():
        for sdk_span in spans:
            compare_span(by_id[f"{sdk_span.get_span_context().span_id:016x}"], sdk_span, name)
            total += 1
    assert total == len(by_id) == calls * 5

    # the same traces through the Jaeger API
    some = next(iter(trace_ids))
    jaeger = hub.get(f"/api/traces/{some}").json()["data"][0]
    assert len(jaeger["spans"]) == 5
    assert {p["serviceName"] for p in jaeger["processes"].values()} == {"gateway", "signer", "chain"}
    assert sorted(hub.get("/api/services").json()["data"]) == ["chain", "gateway", "signer"]
    assert hub.get("/api/services/signer/operations").json()["data"] == ["POST /sign", "POST chain/append"]
    found = hub.get("/api/traces", service="chain", tags='{"error":"true"}', limit=10).json()["data"]
    assert len(found) == 1
    found = hub.get("/api/traces", service="signer", tags='{"doc.id":"doc-1"}').json()["data"]
    assert len(found) == 1 and any(s["operationName"] == "POST /sign" for s in found[0]["spans"])

    # --- dependency map: calls between services ---
    deps = hub.get("/api/dependencies", endTs=str(time.time_ns() // 1_000_000 + 1000),
                   lookback="3600000").json()["data"]
    assert sorted((d["parent"], d["child"], d["callCount"]) for d in deps) == [
        ("gateway", "signer", calls), ("signer", "chain", calls)]

    # --- logs: every record, field by field ---
    sent_logs = [r for s in services.values() for r in s.log_memory.get_finished_logs()]
    assert len(sent_logs) == calls + 1

    def all_logs():
        data = hub.get("/api/pantau/logs", limit=100).json()["data"]
        return data if len(data) == len(sent_logs) else None

    stored = wait_until(all_logs)
    assert stored, "logs did not arrive"
    by_time = {int(r["time_unix_nano"]): r for r in stored}
    for record in sent_logs:
        lr = record.log_record
        got = by_time[lr.timestamp]
        assert got["body"] == lr.body
        assert got["severity_number"] == lr.severity_number.value
        assert got["severity_text"] == lr.severity_text
        assert got["attributes"] == dict(lr.attributes)
        assert got["trace_id"] == f"{lr.trace_id:032x}"
        assert got["span_id"] == f"{lr.span_id:016x}"
        assert int(got["observed_time_unix_nano"]) == lr.observed_timestamp
        assert got["resource"] == dict(record.resource.attributes)
        assert got["service"] == record.resource.attributes["service.name"]
    # search: a word, a severity, a trace
    hits = hub.get("/api/pantau/logs", q="integrity level:error").json()["data"]
    assert [h["body"] for h in hits] == ["chain integrity dropped to 91.2"]
    hits = hub.get("/api/pantau/logs", q="document.id:doc-1 signed").json()["data"]
    assert [h["body"] for h in hits] == ["signed document doc-1"]
    tid = stored[0]["trace_id"]
    assert all(h["trace_id"] == tid for h in hub.get("/api/pantau/logs", trace_id=tid).json()["data"])

    # --- metrics: every sample ---
    def instant(q: str) -> dict:
        body = hub.get("/api/v1/query", query=q).json()
        assert body["status"] == "success", body
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("job", "instance"))):
                float(r["value"][1]) for r in body["data"]["result"]}

    assert instant("signing_operations_total") == {
        (("__name__", "signing_operations_total"), ("status", "ok")): 5.0,
        (("__name__", "signing_operations_total"), ("status", "failed")): 2.0}
    assert instant("signing_inflight") == {(("__name__", "signing_inflight"),): 2.0}
    assert instant("chain_integrity_ratio") == {(("__name__", "chain_integrity_ratio"),): 0.97}
    buckets = instant("signing_duration_milliseconds_bucket")
    assert {dict(k)["le"]: v for k, v in buckets.items()} == {
        "5": 1.0, "10": 3.0, "50": 4.0, "100": 4.0, "+Inf": 5.0}
    assert instant("signing_duration_milliseconds_sum") == {
        (("__name__", "signing_duration_milliseconds_sum"), ("algorithm", "ed25519")): 307.0}
    assert instant("signing_duration_milliseconds_count") == {
        (("__name__", "signing_duration_milliseconds_count"), ("algorithm", "ed25519")): 5.0}
    series = hub.get("/api/v1/series", **{"match[]": "signing_operations_total"}).json()["data"]
    assert all(s["job"] == "signer" and s["instance"] == "signer-1" for s in series)
    info = hub.get("/api/v1/series", **{"match[]": 'target_info{job="signer"}'}).json()["data"]
    assert info and info[0]["service_version"] == "1.4.2" and info[0]["deployment_environment"] == "test"
    assert "signing_operations_total" in hub.get("/api/v1/label/__name__/values").json()["data"]
    assert {"status", "job", "instance", "le"} <= set(hub.get("/api/v1/labels").json()["data"])
    meta = hub.get("/api/v1/metadata").json()["data"]
    assert meta["signing_operations_total"] == [{"type": "counter", "help": "Signing operations", "unit": ""}]
    assert meta["signing_duration_milliseconds"][0]["type"] == "histogram"
    for s in services.values():
        s.shutdown()
