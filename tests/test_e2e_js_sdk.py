"""The OpenTelemetry JS SDK (OTLP/HTTP, JSON encoding) against a real `pantau serve`.

`tests/js/emit.mjs` sends one trace, two log records and three metrics and prints a manifest
of exactly what its exporters sent; everything is read back and compared field by field.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import HubProcess, require, wait_until

pytestmark = pytest.mark.e2e
JS = Path(__file__).parent / "js"


def run_emitter(hub: HubProcess, compression: str | None) -> dict:
    node = require("node", "nodejs")
    require("npm", "npm")
    if not (JS / "node_modules" / "@opentelemetry" / "sdk-node").exists():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True)
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": hub.otlp_http, "PANTAU_JS_SERVICE": "node-signer"}
    if compression:
        env["OTEL_EXPORTER_OTLP_COMPRESSION"] = compression
    result = subprocess.run([node, str(JS / "emit.mjs")], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_js_sdk_roundtrip(hub: HubProcess, compression: str | None) -> None:
    manifest = run_emitter(hub, compression)
    service = manifest["service"]

    # --- spans ---
    trace_ids = {s["trace_id"] for s in manifest["spans"]}
    assert len(trace_ids) == 1
    stored = hub.get(f"/api/pantau/traces/{trace_ids.pop()}").json()["spans"]
    by_id = {s["span_id"]: s for s in stored}
    assert len(by_id) == len(manifest["spans"]) == 3
    for sent in manifest["spans"]:
        got = by_id[sent["span_id"]]
        assert got["trace_id"] == sent["trace_id"]
        assert got["parent_span_id"] == sent["parent_span_id"]
        assert got["service"] == service
        assert got["name"] == sent["name"]
        assert got["kind"] == sent["kind"]
        assert got["start_time_unix_nano"] == sent["start_ns"]
        assert got["end_time_unix_nano"] == sent["end_ns"]
        assert got["status"] == {"code": sent["status_code"], "message": sent["status_message"]}
        assert got["attributes"] == sent["attributes"]
        assert [(e["name"], e["time_unix_nano"], e["attributes"]) for e in got["events"]] == [
            (e["name"], e["time_ns"], e["attributes"]) for e in sent["events"]]
        assert got["resource"] == manifest["resource"]
        assert got["scope"] == manifest["scope"]
    jaeger = hub.get("/api/traces", service=service).json()["data"]
    assert len(jaeger) == 1 and len(jaeger[0]["spans"]) == 3

    # --- logs ---
    def stored_logs():
        data = hub.get("/api/pantau/logs", service=service).json()["data"]
        return data if len(data) == len(manifest["logs"]) else None

    logs = wait_until(stored_logs)
    assert logs
    by_body = {r["body"]: r for r in logs}
    for sent in manifest["logs"]:
        got = by_body[sent["body"]]
        assert got["severity_number"] == sent["severity_number"]
        assert got["severity_text"] == sent["severity_text"]
        assert got["attributes"] == sent["attributes"]
        assert got["trace_id"] == sent["trace_id"] and got["span_id"] == sent["span_id"]
        assert got["time_unix_nano"] == sent["time_ns"]
        assert got["observed_time_unix_nano"] == sent["observed_time_ns"]
        assert got["resource"] == manifest["resource"]

    # --- metrics ---
    def value(query: str) -> dict[tuple, float]:
        body = hub.get("/api/v1/query", query=query).json()
        assert body["status"] == "success", body
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k in ("status", "le"))): float(r["value"][1])
                for r in body["data"]["result"]}

    expected = manifest["metrics"]
    assert value(f'signing_operations_total{{job="{service}"}}') == {
        (("status", status),): float(n) for status, n in expected["signing.operations"].items()}
    hist = expected["signing.duration"]
    buckets = value(f'signing_duration_milliseconds_bucket{{job="{service}"}}')
    cumulative, want = 0, {}
    for bound, count in zip([*hist["bounds"], "+Inf"], hist["bucket_counts"], strict=True):
        cumulative += count
        want[(("le", str(bound)),)] = float(cumulative)
    assert buckets == want
    assert value(f'signing_duration_milliseconds_sum{{job="{service}"}}') == {(): float(hist["sum"])}
    assert value(f'signing_duration_milliseconds_count{{job="{service}"}}') == {(): float(hist["count"])}
    assert value(f'chain_integrity_ratio{{job="{service}"}}') == {(): expected["chain.integrity"]}
    info = hub.get("/api/v1/series", **{"match[]": f'target_info{{job="{service}"}}'}).json()["data"]
    assert info and info[0]["telemetry_sdk_language"] == "nodejs"
