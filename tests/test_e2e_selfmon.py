"""Self-monitoring and API description of a running hub."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import HubProcess
from tests.otlp_factory import log_request, trace_request

pytestmark = pytest.mark.e2e
PB = {"content-type": "application/x-protobuf"}


def metric_value(text: str, prefix: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_metrics_health_and_openapi(hub: HubProcess) -> None:
    for _ in range(3):
        assert httpx.post(f"{hub.otlp_http}/v1/traces", headers=PB,
                          content=trace_request(10).SerializeToString()).status_code == 200
    assert httpx.post(f"{hub.otlp_http}/v1/logs", headers=PB,
                      content=log_request(7).SerializeToString()).status_code == 200
    assert httpx.post(f"{hub.otlp_http}/v1/logs", headers=PB, content=b"\xff\xff").status_code == 400
    text = hub.get("/metrics").text
    assert metric_value(text, 'pantau_ingest_items_total{outcome="accepted",protocol="http",signal="traces"}') == 30
    assert metric_value(text, 'pantau_ingest_items_total{outcome="accepted",protocol="http",signal="logs"}') == 7
    assert metric_value(text, 'pantau_ingest_requests_total{outcome="invalid",protocol="http",signal="logs"}') == 1
    assert metric_value(text, "pantau_write_queue_items") == 0
    assert metric_value(text, "pantau_write_queue_capacity_items") == 1_000_000
    assert metric_value(text, "pantau_store_commit_duration_seconds_count") >= 1
    assert metric_value(text, 'pantau_store_size_bytes{signal="spans"}') > 0
    assert metric_value(text, "process_resident_memory_bytes") > 0
    assert hub.get("/healthz").status_code == 200 and hub.get("/readyz").text == "ready\n"
    spec = hub.get("/openapi.json").json()
    for path in ("/api/traces", "/api/dependencies", "/api/v1/series", "/api/v1/labels", "/api/pantau/logs",
                 "/metrics", "/healthz", "/readyz"):
        assert path in spec["paths"], path
