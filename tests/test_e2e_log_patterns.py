"""Log patterns and detectors in a real `pantau serve`, fed by the OpenTelemetry Python SDK.

Logs go out through the SDK's OTLP/HTTP exporter; templates come back from
`/api/pantau/log-patterns`, brute-force and injection findings from its `/events`; after a
restart (SIGTERM, same data directory) the templates, their ids and counts are still there.
"""

from __future__ import annotations

import logging

import pytest
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource

from tests.conftest import HubProcess, wait_until

pytestmark = pytest.mark.e2e


def emit(hub: HubProcess, service: str, lines: list[tuple[int, str, dict]]) -> None:
    provider = LoggerProvider(resource=Resource.create({"service.name": service}))
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(f"{hub.otlp_http}/v1/logs")))
    logger = logging.getLogger(f"pantau.tests.{service}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = LoggingHandler(logger_provider=provider)
    logger.addHandler(handler)
    try:
        for level, message, extra in lines:
            logger.log(level, message, extra=extra)
        assert provider.force_flush(10_000)
    finally:
        logger.removeHandler(handler)
        provider.shutdown()


def patterns(hub: HubProcess, **params) -> list[dict]:
    response = hub.get("/api/pantau/log-patterns", **params)
    assert response.status_code == 200, response.text
    return response.json()["patterns"]


def test_patterns_and_detections_over_otlp(hub_factory) -> None:
    hub = hub_factory().start()
    shop = [(logging.INFO, f"order {1000 + i} placed by user u{i % 7} total {i * 3}.50 EUR", {}) for i in range(60)]
    shop += [(logging.WARNING, f"payment provider slow: {200 + i}ms for order {1000 + i}", {}) for i in range(15)]
    shop += [(logging.INFO, f'203.0.113.9 - - [01/Dec/2026:10:00:{i:02d} +0000] "GET /products?id={i}%27%20UNION'
                            f'%20SELECT%20null,password%20FROM%20users-- HTTP/1.1" 200 512', {}) for i in range(3)]
    emit(hub, "shop", shop)
    sshd = [(logging.WARNING, f"Failed password for root from 198.51.100.77 port {40000 + i} ssh2", {})
            for i in range(12)]
    emit(hub, "sshd", sshd)

    def shop_patterns():
        found = patterns(hub, service="shop")
        return found if sum(p["count"] for p in found) == len(shop) else None

    found = wait_until(shop_patterns, timeout=20)
    assert found, patterns(hub)
    by_template = {p["template"]: p for p in found}
    orders = by_template["order <*> placed by user <*> total <*> EUR"]
    assert orders["count"] == 60 and orders["service"] == "shop"
    assert orders["examples"][0] == "order 1000 placed by user u0 total 0.50 EUR"
    assert orders["first_seen_ns"] <= orders["last_seen_ns"]
    assert by_template["payment provider slow: <*> for order <*>"]["count"] == 15
    one = hub.get(f"/api/pantau/log-patterns/{orders['id']}").json()
    assert one["count"] == 60 and sum(b["count"] for b in one["buckets"]) == 60
    assert hub.get("/api/pantau/log-patterns/nope").status_code == 404
    # every stored record carries its template id, and the records of a pattern are one search away
    def of_template():
        got = hub.get("/api/pantau/logs", q=f"template:{orders['id']}", limit=100).json()["data"]
        return got if len(got) == 60 else None

    records = wait_until(of_template, timeout=20)
    assert records and all(r["template_id"] == orders["id"] and r["body"].startswith("order ") for r in records)
    assert [p["service"] for p in patterns(hub, service="sshd")] == ["sshd"]
    assert {p["template"] for p in patterns(hub, q="ORDER")} == {
        "order <*> placed by user <*> total <*> EUR", "payment provider slow: <*> for order <*>"}

    def detections():
        events = hub.get("/api/pantau/log-patterns/events").json()["events"]
        detectors = {e["labels"].get("detector") for e in events}
        return events if {"brute_force", "sql_injection"} <= detectors else None

    events = wait_until(detections, timeout=20)
    assert events, hub.get("/api/pantau/log-patterns/events").json()
    brute = [e for e in events if e["labels"].get("detector") == "brute_force"]
    assert {e["labels"].get("source_ip") or e["labels"].get("actor") for e in brute} == {"198.51.100.77", "root"}
    assert all(e["kind"] == "security" and e["data"]["failed_logins"] >= 10 for e in brute)
    [sqli] = [e for e in events if e["labels"].get("detector") == "sql_injection"]
    assert sqli["labels"]["source_ip"] == "203.0.113.9" and sqli["severity"] == "critical"  # answered 200
    assert "union select null,password from users" in sqli["data"]["samples"][0]["normalised"]

    metrics = hub.get("/metrics").text
    assert 'pantau_log_events_total{kind="security",source="brute_force"}' in metrics
    assert "pantau_log_patterns_records_total 90.0" in metrics  # 78 shop + 12 sshd lines
    assert "pantau_log_patterns_skipped_batches_total 0.0" in metrics

    assert hub.stop() == 0
    again = HubProcess(hub.data_dir)
    again.start()
    try:
        restored = {p["id"]: p for p in patterns(again, service="shop")}
        assert restored[orders["id"]]["count"] == 60
        assert restored[orders["id"]]["template"] == orders["template"]
    finally:
        again.stop()
