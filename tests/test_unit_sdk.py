"""The SDK in process: tracing helpers, correlation, context across threads and tasks, logs,
redaction at export, setup precedence and idempotence, and the Prometheus endpoint.

Telemetry goes through pantau's real batching and export path into OpenTelemetry's in-memory
exporters (the sinks, not the thing under test).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import pantau
from tests.conftest import free_port


class MemoryMetrics(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.data: list = []

    def export(self, metrics_data, timeout_millis: float = 10_000, **kwargs) -> MetricExportResult:
        self.data.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs) -> None:
        pass


class Sinks:
    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.metrics = MemoryMetrics()
        self.logs = InMemoryLogRecordExporter()

    def triple(self):
        return self.spans, self.metrics, self.logs

    def finished(self) -> dict:
        pantau.flush()
        return {s.name: s for s in self.spans.get_finished_spans()}

    def records(self) -> list:
        pantau.flush()
        return [r.log_record for r in self.logs.get_finished_logs()]


@pytest.fixture
def sinks() -> Iterator[Sinks]:
    s = Sinks()
    pantau.init("unit", exporters=s.triple(), metrics_interval_s=3600)
    yield s
    pantau.shutdown()


def test_trace_decorator_context_manager_sync_async(sinks: Sinks) -> None:
    @pantau.trace("double", attributes={"k": "v"}, record_result=True)
    def double(x: int) -> int:
        return 2 * x

    @pantau.trace
    async def fetch() -> str:
        await asyncio.sleep(0)
        return "ok"

    assert double(21) == 42
    assert asyncio.run(fetch()) == "ok"
    with pantau.trace("outer") as outer:
        with pantau.trace("inner"):
            pantau.add_event("step", {"n": 1})

    async def in_async() -> None:
        async with pantau.trace("async_block"):
            await asyncio.sleep(0)

    asyncio.run(in_async())
    spans = sinks.finished()
    assert spans["double"].attributes["k"] == "v" and spans["double"].attributes["pantau.result"] == "42"
    assert "test_trace_decorator_context_manager_sync_async.<locals>.fetch" in spans
    assert spans["inner"].parent.span_id == outer.get_span_context().span_id
    assert [e.name for e in spans["inner"].events] == ["step"]
    assert "async_block" in spans
    assert double.__name__ == "double"


def test_trace_records_exception_and_status(sinks: Sinks) -> None:
    @pantau.trace("fails")
    def fails() -> None:
        raise KeyError("doc-7")

    with pytest.raises(KeyError):
        fails()
    with pytest.raises(ValueError), pantau.trace("fails_too"):
        raise ValueError("mail me at x@y.co")
    spans = sinks.finished()
    for name, etype in (("fails", "KeyError"), ("fails_too", "ValueError")):
        span = spans[name]
        assert span.status.status_code.name == "ERROR"
        assert span.status.description.startswith(etype)
        [event] = span.events
        assert event.name == "exception" and event.attributes["exception.type"] == etype
    # the exception text is redacted at export like everything else
    assert "x@y.co" not in spans["fails_too"].status.description
    assert "x@y.co" not in spans["fails_too"].events[0].attributes["exception.message"]


def test_correlation_given_generated_and_propagated(sinks: Sinks) -> None:
    with pantau.continue_trace({"X-Correlation-ID": "order-42"}):
        assert pantau.correlation_id() == "order-42"
        with pantau.trace("handled"):
            headers = pantau.inject_headers()
            logging.getLogger("unit").warning("handling")
    assert headers["X-Correlation-ID"] == "order-42" and "correlation.id=order-42" in headers["baggage"]
    assert headers["traceparent"].startswith("00-")
    with pantau.trace("fresh") as span:
        tid = f"{span.get_span_context().trace_id:032x}"
        assert pantau.correlation_id() == tid
        logging.getLogger("unit").warning("fresh")
    spans = sinks.finished()
    assert spans["handled"].attributes["correlation.id"] == "order-42"
    assert spans["fresh"].attributes["correlation.id"] == tid
    by_body = {r.body: r for r in sinks.records()}
    assert by_body["handling"].attributes["correlation.id"] == "order-42"
    assert by_body["fresh"].attributes["correlation.id"] == tid
    assert f"{by_body['fresh'].trace_id:032x}" == tid and by_body["fresh"].span_id
    # a callee continuing from the headers joins the trace
    with pantau.continue_trace(headers), pantau.trace("callee") as callee:
        assert f"{callee.get_span_context().trace_id:032x}" == headers["traceparent"].split("-")[1]
        assert pantau.correlation_id() == "order-42"


def test_context_crosses_threads_and_tasks(sinks: Sinks) -> None:
    seen: dict[str, str | None] = {}

    def work(name: str) -> None:
        with pantau.trace(name):
            seen[name] = pantau.correlation_id()

    async def task() -> None:
        with pantau.trace("task"):
            seen["task"] = pantau.correlation_id()

    async def main() -> None:
        await asyncio.gather(asyncio.create_task(task()))

    with pantau.correlation("batch-1"), pantau.trace("parent") as parent:
        with ThreadPoolExecutor(2) as pool:
            pantau.submit(pool, work, "pooled").result()
        t = threading.Thread(target=pantau.wrap(work), args=("thread",))
        t.start()
        t.join()
        asyncio.run(main())
    spans = sinks.finished()
    pid = parent.get_span_context().span_id
    for name in ("pooled", "thread", "task"):
        assert spans[name].parent.span_id == pid, name
        assert seen[name] == "batch-1"


def test_logs_redacted_structured_and_robust(sinks: Sinks) -> None:
    log = logging.getLogger("unit.logs")

    class Opaque:
        def __str__(self) -> str:
            return "opaque-object"

    log.info("user %s paid with 4111 1111 1111 1111", "siti@example.id",
             extra={"password": "hunter2", "order.id": "ORD-2024-000123", "thing": Opaque(), "n": 3})
    try:
        raise RuntimeError("db down")
    except RuntimeError:
        log.exception("failed")
    pantau.audit("role.grant", actor="admin", resource="user/42", outcome="success", role="signer")
    pantau.security_event("login.failed", severity="high", actor="u-9", ip="10.0.0.7")
    pantau.access_log("GET", "/documents", 200, 12.5)
    pantau.performance_log("render", 250.0, threshold_ms=100)
    with pytest.raises(ValueError, match="unknown severity 'severe'"):
        pantau.security_event("x", severity="severe")
    records = sinks.records()
    first = records[0]
    assert first.body == "user [REDACTED:email] paid with [REDACTED:card]"
    assert first.attributes["password"] == "[REDACTED:secret]"
    assert first.attributes["order.id"] == "ORD-2024-000123" and first.attributes["n"] == 3
    assert first.attributes["thing"] == "opaque-object"
    assert first.attributes["code.function.name"] == "test_logs_redacted_structured_and_robust"
    failed = records[1]
    assert failed.severity_text == "ERROR" and failed.attributes["exception.type"] == "RuntimeError"
    audit = records[2].attributes
    assert (audit["log.type"], audit["otel.event.name"], audit["audit.action"], audit["audit.actor"],
            audit["audit.resource"], audit["audit.outcome"], audit["audit.role"]) == (
        "audit", "pantau.audit", "role.grant", "admin", "user/42", "success", "signer")
    assert records[2].event_name == "pantau.audit"
    assert records[3].severity_text == "ERROR" and records[3].attributes["security.event"] == "login.failed"
    assert records[4].attributes["http.response.status_code"] == 200
    assert records[5].severity_text == "WARN" and records[5].attributes["performance.slow"] is True
    assert pantau.sdk_stats()["redactions"] == {"email": 1, "card": 1, "secret_key": 1}


def test_init_idempotent_reinit_and_errors() -> None:
    first = Sinks()
    t1 = pantau.init("svc-a", exporters=first.triple())
    try:
        assert pantau.init("svc-b") is t1, "a second init keeps the running setup"
        with pantau.trace("one"):
            pass
        assert first.finished()["one"].resource.attributes["service.name"] == "svc-a"
    finally:
        pantau.shutdown()
    pantau.shutdown()  # twice is fine
    second = Sinks()
    pantau.init("svc-c", exporters=second.triple(), sample_ratio=0.0)
    try:
        with pantau.trace("unsampled"):
            pass
        assert second.finished() == {}
    finally:
        pantau.shutdown()
    from opentelemetry import trace

    assert not trace.get_tracer("after").start_span("x").is_recording(), "globals unset after shutdown"
    with pytest.raises(pantau.ConfigError, match="no OTLP/HTTP JSON exporter"):
        pantau.init("x", protocol="http/json")
    with pytest.raises(pantau.ConfigError, match="unknown OTLP protocol 'udp'"):
        pantau.init("x", protocol="udp")
    with pytest.raises(pantau.ConfigError, match="sample_ratio"):
        pantau.init("x", sample_ratio=2, exporters=Sinks().triple())
    assert pantau.telemetry() is None


def test_bad_protocol_in_environment_does_not_stop_the_app(monkeypatch, caplog) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    t = pantau.init("env-json", exporters=Sinks().triple())
    try:
        assert t.protocol == "http/protobuf"
        assert "no OTLP/HTTP JSON exporter; use http/protobuf" in caplog.text
    finally:
        pantau.shutdown()


def test_hub_unreachable_counts_backs_off_and_warns_once(caplog) -> None:
    pantau.init("down", endpoint=f"http://127.0.0.1:{free_port()}", timeout_s=1.0, metrics_interval_s=3600)
    try:
        for round_ in range(3):
            for _ in range(10):
                with pantau.trace("lost"):
                    pass
            pantau.flush()
            if round_ == 0:
                assert pantau.telemetry().batchers[0].guard.down, "backing off after the failure"
        stats = pantau.sdk_stats()["spans"]
        assert stats == {"exported": 0, "dropped": 30, "export_failures": 1, "queued": 0}
        warnings = [r for r in caplog.records if r.name == "pantau.sdk" and "exporting spans failed" in r.getMessage()]
        assert len(warnings) == 1, "at most one warning a minute"
    finally:
        pantau.shutdown()


def test_otel_sdk_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    sinks = Sinks()
    t = pantau.init("off", exporters=sinks.triple())
    try:
        assert t.tracer_provider is None

        @pantau.trace("noop")
        def f() -> int:
            return 1

        assert f() == 1
        logging.getLogger("unit").warning("not exported")
        pantau.record_signing_operation()
        assert pantau.flush() is False
    finally:
        pantau.shutdown()
    assert sinks.spans.get_finished_spans() == () and sinks.logs.get_finished_logs() == ()


def test_environment_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=signing")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    sinks = Sinks()
    t = pantau.init(exporters=sinks.triple())
    try:
        assert t.service_name == "from-env" and t.protocol == "grpc"
        with pantau.trace("x"):
            pass
        assert sinks.finished()["x"].resource.attributes["team"] == "signing"
    finally:
        pantau.shutdown()
    t = pantau.init("from-arg", protocol="http/protobuf", exporters=Sinks().triple())
    try:
        assert t.service_name == "from-arg" and t.protocol == "http/protobuf"
    finally:
        pantau.shutdown()


def test_prometheus_endpoint_serves_business_and_generic_metrics() -> None:
    port = free_port()
    pantau.init("prom-unit", exporters=Sinks().triple(), prometheus_port=port, prometheus_addr="127.0.0.1",
                metrics_interval_s=3600)
    try:
        pantau.record_signing_operation("sign", "success", "ed25519", 3.0)
        pantau.record_signing_operation("sign", "failure", "rsa", 70.0)
        pantau.record_chain_operation("verify", "success", integrity=99.5)
        pantau.record_equity_score(81.5, category="access", tier="gold")
        pantau.record_governance_event("kyc", "violation", "high")
        pantau.counter("orders.created", unit="{order}").add(2, {"channel": "web"})
        pantau.histogram("queue.wait", unit="s").record(0.2)
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    finally:
        pantau.shutdown()
    from prometheus_client.parser import text_string_to_metric_families

    samples = {(smp.name, tuple(sorted((k, v) for k, v in smp.labels.items() if not k.startswith("otel_scope")))):
               smp.value for fam in text_string_to_metric_families(text) for smp in fam.samples}

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    sign = {"signing_operation": "sign", "signing_status": "success", "signing_algorithm": "ed25519"}
    assert value("pantau_signing_operations_total", **sign) == 1
    assert value("pantau_signing_duration_milliseconds_bucket", le="5.0", **sign) == 1
    assert value("pantau_signing_duration_milliseconds_bucket", le="2.0", **sign) == 0
    assert value("pantau_signing_duration_milliseconds_sum", signing_operation="sign", signing_status="failure",
                 signing_algorithm="rsa") == 70
    assert value("pantau_chain_integrity_percent", chain_name="main") == 99.5
    assert value("pantau_chain_operations_total", chain_operation="verify", chain_status="success") == 1
    assert value("pantau_equity_score", equity_category="access", equity_tier="gold") == 81.5
    assert value("pantau_equity_assessments_total", equity_category="access", equity_tier="gold") == 1
    assert value("pantau_governance_compliance_events_total", governance_policy="kyc",
                 governance_outcome="violation", governance_severity="high") == 1
    assert value("orders_created_total", channel="web") == 2
    assert value("queue_wait_seconds_count") == 1


def test_business_metrics_exported_over_the_exporter(sinks: Sinks) -> None:
    for ms in (0.5, 4, 4, 300):
        pantau.record_signing_operation("sign", "success", "ed25519", ms)
    pantau.flush()
    metrics = {m.name: m for data in sinks.metrics.data for rm in data.resource_metrics
               for sm in rm.scope_metrics for m in sm.metrics}
    [point] = metrics["pantau.signing.duration"].data.data_points
    assert metrics["pantau.signing.duration"].unit == "ms"
    assert (point.count, point.sum, point.min, point.max) == (4, 308.5, 0.5, 300)
    assert point.bucket_counts[:3] == [1, 0, 2] and sum(point.bucket_counts) == 4
    assert metrics["pantau.signing.operations"].data.data_points[0].value == 4
    assert {"pantau.sdk.items.dropped"} <= set(metrics)


def test_structlog_goes_through_pantau(sinks: Sinks) -> None:
    structlog = pytest.importorskip("structlog")
    log = structlog.get_logger("unit.struct")
    with pantau.correlation("batch-9"), pantau.trace("structured") as span:
        log.info("order placed", order_id="o-1", email="rina@example.id")
    [record] = [r for r in sinks.records() if r.body == "order placed"]
    assert record.attributes["order_id"] == "o-1"
    assert record.attributes["email"] == "[REDACTED:email]"
    assert record.attributes["correlation.id"] == "batch-9" and record.attributes["correlation_id"] == "batch-9"
    assert record.trace_id == span.get_span_context().trace_id


def test_business_metrics_cardinality_is_bounded(sinks: Sinks) -> None:
    from pantau.sdk import business

    for i in range(business.MAX_SERIES + 500):
        pantau.record_signing_operation("sign", "success", f"alg-{i}")
    pantau.flush()
    [ops] = [m for data in sinks.metrics.data[-1:] for rm in data.resource_metrics for sm in rm.scope_metrics
             for m in sm.metrics if m.name == "pantau.signing.operations"]
    points = ops.data.data_points
    assert len(points) == business.MAX_SERIES + 1
    [overflow] = [p for p in points if p.attributes.get("otel.metric.overflow")]
    assert overflow.value == 500 and sum(p.value for p in points) == business.MAX_SERIES + 500


def test_auto_instrumented_clients_and_wsgi_server() -> None:
    """requests and httpx (auto-instrumented) send the context; a WSGI app wrapped by
    `pantau.wsgi_middleware` continues it: one trace, client spans parenting server spans."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import requests

    seen: list[dict] = []

    def app(environ, start_response):
        seen.append({k: v for k, v in environ.items() if k.startswith("HTTP_")})
        with pantau.trace("handler"):
            assert pantau.correlation_id() == "req-7"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    sinks = Sinks()
    pantau.init("clients", exporters=sinks.triple(), auto_instrument=["requests", "httpx"])
    server = make_server("127.0.0.1", 0, pantau.wsgi_middleware(app), handler_class=Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/sign"
    try:
        with pantau.correlation("req-7"), pantau.trace("caller"):
            assert requests.get(url, timeout=10).status_code == 200
            assert httpx.get(url, timeout=10).status_code == 200
        pantau.flush()
        spans = sinks.spans.get_finished_spans()
    finally:
        server.shutdown()
        server.server_close()
        pantau.shutdown()
    assert all(h["HTTP_X_CORRELATION_ID"] == "req-7" and h["HTTP_TRACEPARENT"] for h in seen) and len(seen) == 2
    by_id = {s.context.span_id: s for s in spans}
    servers = [s for s in spans if s.kind.name == "SERVER"]
    assert len(servers) == 2 and len({s.context.trace_id for s in spans}) == 1
    for s in servers:
        client = by_id[s.parent.span_id]
        assert client.kind.name == "CLIENT" and by_id[client.parent.span_id].name == "caller"
    assert all(s.attributes["correlation.id"] == "req-7" for s in spans)


def test_import_pantau_stays_light() -> None:
    import subprocess
    import sys

    code = ("import sys, pantau; heavy = sorted(m for m in sys.modules if m.startswith(('opentelemetry', "
            "'pantau.sdk', 'pantau.hub', 'fastapi'))); print(heavy); pantau.trace; "
            "print('opentelemetry.sdk.trace' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"], out.stdout


def test_attribute_limits_and_their_dropped_count_survive_stamping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    sinks = Sinks()
    pantau.init("limits", exporters=sinks.triple())
    try:
        with pantau.trace("many", attributes={"a": 1, "b": 2, "c": 3, "d": 4}):
            pass
        span = sinks.finished()["many"]
    finally:
        pantau.shutdown()
    assert span.dropped_attributes == 2
    assert dict(span.attributes) == {"c": 3, "d": 4, "correlation.id": f"{span.context.trace_id:032x}"}
