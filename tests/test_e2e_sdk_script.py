"""`examples/plain_script.py` run as a script against a real `pantau serve`: the trace crosses
into worker threads (`pantau.submit`), the correlation id is on spans and logs, and the equity
and governance metrics arrive with their documented names."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, HubProcess, wait_until

pytestmark = pytest.mark.e2e


def test_plain_script(hub: HubProcess) -> None:
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": hub.otlp_http}
    run = subprocess.run([sys.executable, str(ROOT / "examples" / "plain_script.py")], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    cid = re.search(r"correlation_id=(\w+)", run.stdout).group(1)
    assert "'dropped': 0" in run.stdout and "'export_failures': 0" in run.stdout, run.stdout

    traces = hub.get("/api/traces", service="nightly-equity", limit=10).json()["data"]
    assert len(traces) == 1
    spans = traces[0]["spans"]
    root = next(s for s in spans if s["operationName"] == "nightly_run")
    children = [s for s in spans if s["operationName"] == "score_region"]
    assert len(children) == 3
    assert all(s["references"][0]["spanID"] == root["spanID"] for s in children), "context crossed into threads"
    tags = [{t["key"]: t["value"] for t in s["tags"]} for s in spans]
    assert all(t["correlation.id"] == cid for t in tags)
    assert all(float(t["pantau.result"]) > 0 for t, s in zip(tags, spans, strict=True)
               if s["operationName"] == "score_region"), "record_result=True"

    logs = wait_until(lambda: hub.get("/api/pantau/logs", q="service:nightly-equity", limit=50).json()["data"],
                      timeout=30)
    assert len(logs) == 6  # 3 region lines, performance, audit, done
    assert {r["attributes"]["correlation.id"] for r in logs} == {cid}
    assert {r["attributes"].get("log.type") for r in logs} == {None, "performance", "audit"}

    def values(q: str) -> dict:
        result = hub.get("/api/v1/query", query=q).json()["data"]["result"]
        return {tuple(sorted((k, v) for k, v in r["metric"].items() if k not in ("job", "instance", "__name__"))):
                float(r["value"][1]) for r in result}

    assert set(values("pantau_equity_score")) == {
        (("equity_category", "access"), ("equity_tier", t)) for t in ("jawa", "sumatra", "bali")}
    assert set(values("pantau_equity_assessments_total").values()) == {1.0}
    assert values("pantau_governance_compliance_events_total") == {
        (("governance_outcome", "compliant"), ("governance_policy", "data-retention"),
         ("governance_severity", "info")): 1.0}
