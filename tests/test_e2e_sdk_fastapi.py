"""The SDK end to end: two unmodified example services, each in its own uvicorn process, one
exporting over OTLP/HTTP and one over OTLP/gRPC to a real `pantau serve`.

The test reads back what a user would look at: one trace spanning both services (the
ledger's server span a child of the document service's client span), the correlation id on
every span and log record (given by the caller, or the trace id when not), redacted log
bodies, audit records, and the business and HTTP metrics as Prometheus series.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, HubProcess, free_port, wait_until

pytestmark = pytest.mark.e2e

SIGNER_EMAIL = "budi.santoso@merajutasa.id"


class App:
    def __init__(self, script: str, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        full = {**os.environ, **env, "PORT": str(self.port), "PYTHONUNBUFFERED": "1",
                "OTEL_METRIC_EXPORT_INTERVAL": "500", "OTEL_BSP_SCHEDULE_DELAY": "200",
                "OTEL_BLRP_SCHEDULE_DELAY": "200"}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / script)], env=full,
                                     stdout=log_path.open("wb"), stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{script} exited:\n{self.log_path.read_text()}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(ready, timeout=60, interval=0.1), self.log_path.read_text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@pytest.fixture
def services(hub: HubProcess, tmp_path: Path) -> Iterator[tuple[App, App]]:
    ledger = App("ledger_service.py", {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                                       "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{hub.otlp_grpc}"},
                 tmp_path / "ledger.log")
    docs = None
    try:
        docs = App("fastapi_service.py", {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                                          "OTEL_EXPORTER_OTLP_ENDPOINT": hub.otlp_http, "LEDGER_URL": ledger.url},
                   tmp_path / "docs.log")
        yield docs, ledger
    finally:
        for app in (docs, ledger):
            if app is not None:
                app.stop()


def trace_spans(hub: HubProcess, trace_id: str, names: set[str]) -> list[dict] | None:
    """The trace's spans once every named span has arrived (not a count: a race bit that)."""
    resp = hub.get(f"/api/pantau/traces/{trace_id}")
    if resp.status_code != 200:
        return None
    spans = resp.json()["spans"]
    return spans if names <= {s["name"] for s in spans} else None


def instant(hub: HubProcess, query: str) -> list[dict]:
    body = hub.get("/api/v1/query", query=query).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_two_services_one_trace(hub: HubProcess, services: tuple[App, App]) -> None:
    docs, ledger = services
    given = httpx.post(f"{docs.url}/documents/doc-1/sign", json={"signer": SIGNER_EMAIL},
                       headers={"X-Correlation-ID": "order-42"}, timeout=30)
    assert given.status_code == 200, given.text
    generated = httpx.post(f"{docs.url}/documents/doc-2/sign", json={"signer": SIGNER_EMAIL}, timeout=30)
    assert generated.status_code == 200, generated.text
    assert given.json()["correlation_id"] == "order-42"
    assert generated.json()["correlation_id"] == generated.json()["trace_id"]

    names = {"POST /documents/{doc_id}/sign", "document_signing", "POST /append", "chain_append"}
    for resp, expected_cid in ((given, "order-42"), (generated, generated.json()["trace_id"])):
        trace_id = resp.json()["trace_id"]
        spans = wait_until(lambda tid=trace_id: trace_spans(hub, tid, names), timeout=30)
        assert spans, f"trace {trace_id} incomplete: {hub.get(f'/api/pantau/traces/{trace_id}').text[:2000]}"
        by_id = {s["span_id"]: s for s in spans}
        assert {s["service"] for s in spans} == {"document-service", "ledger-service"}
        # the ledger's server span is the child of the document service's HTTP client span
        server = next(s for s in spans if s["name"] == "POST /append" and s["kind"] == "SERVER")
        client = by_id[server["parent_span_id"]]
        assert client["service"] == "document-service" and client["kind"] == "CLIENT"
        signing = next(s for s in spans if s["name"] == "document_signing")
        assert signing["attributes"]["document.id"] in ("doc-1", "doc-2")
        db = [s for s in spans if s["service"] == "ledger-service" and "sqlite" in str(
            s["attributes"].get("db.system", s["attributes"].get("db.system.name", "")))]
        assert db, ("sqlite3 is traced through the DB-API instrumentation",
                    [(s["name"], s["attributes"]) for s in spans])
        # correlation id on every span of both services
        assert {s["attributes"].get("correlation.id") for s in spans} == {expected_cid}

        # the same trace through the Jaeger API
        jaeger = hub.get(f"/api/traces/{trace_id}").json()["data"][0]
        assert {p["serviceName"] for p in jaeger["processes"].values()} == {"document-service", "ledger-service"}
        j_server = next(s for s in jaeger["spans"] if s["spanID"] == server["span_id"])
        assert j_server["references"] == [{"refType": "CHILD_OF", "traceID": trace_id, "spanID": client["span_id"]}]
        assert jaeger["processes"][j_server["processID"]]["serviceName"] == "ledger-service"

        # logs of both services, correlated, redacted
        def logs(tid: str = trace_id) -> list[dict] | None:
            data = hub.get("/api/pantau/logs", trace_id=tid, limit=100).json()["data"]
            services_seen = {r["service"] for r in data}
            has_audit = any(r["attributes"].get("log.type") == "audit" for r in data)
            return data if services_seen == {"document-service", "ledger-service"} and has_audit else None

        records = wait_until(logs, timeout=30)
        assert records, hub.get("/api/pantau/logs", trace_id=trace_id).text[:2000]
        assert {r["attributes"].get("correlation.id") for r in records} == {expected_cid}
        assert all(SIGNER_EMAIL not in r["body"] and SIGNER_EMAIL not in str(r["attributes"]) for r in records)
        signing_log = next(r for r in records if r["body"].startswith("signing doc-"))
        assert "[REDACTED:email]" in signing_log["body"]
        audit = next(r for r in records if r["attributes"].get("log.type") == "audit")
        attrs = audit["attributes"]
        assert attrs["otel.event.name"] == "pantau.audit"
        assert (attrs["audit.action"], attrs["audit.actor"], attrs["audit.outcome"]) == (
            "document.sign", "[REDACTED:email]", "success")
        assert attrs["audit.resource"] in ("doc-1", "doc-2") and attrs["audit.algorithm"] == "ed25519"
        assert audit["span_id"] and audit["trace_id"] == trace_id

    # business metrics: exact names and labels
    def series(match: str) -> list[dict]:
        return hub.get("/api/v1/series", **{"match[]": match}).json()["data"]

    assert wait_until(lambda: series("pantau_signing_operations_total") and series("pantau_chain_integrity_percent"),
                      timeout=30)
    [ops] = series("pantau_signing_operations_total")
    assert ops.pop("instance")  # the SDK's service.instance.id
    assert ops == {"__name__": "pantau_signing_operations_total", "job": "document-service",
                   "signing_operation": "sign", "signing_status": "success", "signing_algorithm": "ed25519"}
    assert wait_until(lambda: [float(r["value"][1]) for r in instant(hub, "pantau_signing_operations_total")] == [2.0],
                      timeout=30)
    counts = instant(hub, "pantau_signing_duration_milliseconds_count")
    assert [(r["metric"]["signing_algorithm"], float(r["value"][1])) for r in counts] == [("ed25519", 2.0)]
    buckets = {r["metric"]["le"] for r in instant(hub, "pantau_signing_duration_milliseconds_bucket")}
    assert {"1", "10", "100", "+Inf"} <= buckets
    [chain] = instant(hub, "pantau_chain_operations_total")
    assert (chain["metric"]["job"], chain["metric"]["chain_operation"], chain["metric"]["chain_status"]) == (
        "ledger-service", "append", "success")
    [integrity] = instant(hub, "pantau_chain_integrity_percent")
    assert float(integrity["value"][1]) == 100.0 and integrity["metric"]["chain_name"] == "main"
    # HTTP RED metrics from the FastAPI instrumentation, in both services
    def http_jobs() -> set[str]:
        return {r["metric"]["job"] for r in instant(hub, '{__name__=~"http_server_(request_)?duration_.*_count"}')}

    assert wait_until(lambda: http_jobs() == {"document-service", "ledger-service"}, timeout=30), http_jobs()
    # nothing was dropped on the way
    assert not [r for r in instant(hub, "pantau_sdk_items_dropped_total") if float(r["value"][1]) != 0]
    # uvicorn re-raises SIGTERM after its shutdown (where the examples flush): -15 is a clean stop
    for app in (docs, ledger):
        assert app.stop() in (0, -signal.SIGTERM)
        assert "Traceback" not in app.log_path.read_text(), app.log_path.read_text()
