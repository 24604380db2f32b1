"""Per-severity retention in a running hub: the tiers are invisible to every query API."""

from __future__ import annotations

import time

import httpx

from tests.conftest import wait_until
from tests.otlp_factory import log_request

CONFIG = """
storage:
  retention:
    logs: 30d
    logs_by_severity:
      debug: 3d
      error: 180d
"""


def test_tiers_are_one_log_store_to_search_logql_and_export(hub_factory) -> None:
    hub = hub_factory(CONFIG).start()
    t0 = time.time_ns() - 120 * 10**9
    for sev, text in ((5, "DEBUG"), (9, "INFO"), (17, "ERROR")):
        req = log_request(200, service="signer", time_ns=t0 + sev, body=f"{text.lower()} line {{i}}")
        for r in req.resource_logs[0].scope_logs[0].log_records:
            r.severity_number, r.severity_text = sev, text
        resp = httpx.post(f"{hub.otlp_http}/v1/logs", content=req.SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"})
        assert resp.status_code == 200, resp.text
    assert sorted(p.name for p in hub.data_dir.iterdir() if p.name.startswith("logs")) == [
        "logs", "logs_r15552000", "logs_r259200"]
    assert wait_until(lambda: len(hub.get("/api/pantau/logs", q="line", limit=1000).json()["data"]) == 600)
    got, cursor = [], None
    while True:
        page = hub.get("/api/pantau/logs", q="line", limit=45, **({"cursor": cursor} if cursor else {})).json()
        got.extend(page["data"])
        if not (cursor := page["next_cursor"]):
            break
    stamps = [int(r["time_unix_nano"]) for r in got]
    assert len(got) == 600 and stamps == sorted(stamps, reverse=True)
    assert len(hub.get("/api/pantau/logs", q="level:error").json()["data"]) == 100
    now = time.time_ns()
    query = 'sum by (severity_text) (count_over_time({service_name="signer"}[10m]))'
    counts = hub.get("/loki/api/v1/query", query=query, time=str(now)).json()
    by_level = {r["metric"]["severity_text"]: r["value"][1] for r in counts["data"]["result"]}
    assert by_level == {"DEBUG": "200", "INFO": "200", "ERROR": "200"}
    streams = hub.get("/loki/api/v1/series", **{"match[]": '{service_name="signer"}'}).json()["data"]
    assert sorted(s["severity_text"] for s in streams) == ["DEBUG", "ERROR", "INFO"]
    lines = httpx.get(f"{hub.api}/api/pantau/logs/export", params={"q": "line", "format": "jsonl"}).content
    assert len(lines.splitlines()) == 600


def test_unknown_severity_in_retention_is_a_config_error(hub_factory) -> None:
    hub = hub_factory("storage:\n  retention:\n    logs_by_severity:\n      verbose: 1d\n")
    try:
        hub.start(timeout=15)
        raise AssertionError("the hub started with a bad config")
    except RuntimeError as exc:
        assert "logs_by_severity" in str(exc) and "verbose" in str(exc) and "trace, debug" in str(exc)
