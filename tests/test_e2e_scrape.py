"""pantau scrapes targets like Prometheus: labels, report series, staleness, failures."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from tests.conftest import HubProcess, free_port, wait_until

pytestmark = pytest.mark.e2e


class Exporter:
    """A real HTTP target whose exposition the test changes between scrapes."""

    def __init__(self) -> None:
        self.body = b""
        self.status = 200
        self.content_type = "text/plain; version=0.0.4"
        exporter = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(exporter.status)
                self.send_header("Content-Type", exporter.content_type)
                self.send_header("Content-Length", str(len(exporter.body)))
                self.end_headers()
                self.wfile.write(exporter.body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    e = Exporter()
    yield e
    e.close()


def instant(hub: HubProcess, query: str) -> dict[str, str]:
    """{label set as text: value} of an instant query at the hub's now."""
    result = hub.get("/api/v1/query", query=query).json()["data"]["result"]
    return {",".join(f"{k}={v}" for k, v in sorted(r["metric"].items())): r["value"][1] for r in result}


def test_scrape_staleness_and_failures(hub_factory, exporter: Exporter) -> None:
    exporter.body = b'''# HELP jobs_total Jobs done.
# TYPE jobs_total counter
jobs_total{kind="a",job="exposed"} 3
jobs_total{kind="b"} 4
# TYPE temperature gauge
temperature -4.5
'''
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    hub = hub_factory(f"""
global:
  scrape_interval: 500ms
scrape_configs:
  - job_name: app
    static_configs:
      - targets: ["{exporter.address}"]
        labels: {{env: test}}
  - job_name: honoring
    honor_labels: true
    static_configs:
      - targets: ["{exporter.address}"]
  - job_name: dead
    static_configs:
      - targets: ["{dead}"]
""").start()
    inst = exporter.address
    assert wait_until(lambda: len(instant(hub, "jobs_total")) == 4, timeout=30)
    assert instant(hub, "jobs_total") == {
        f"__name__=jobs_total,env=test,exported_job=exposed,instance={inst},job=app,kind=a": "3",
        f"__name__=jobs_total,env=test,instance={inst},job=app,kind=b": "4",
        f"__name__=jobs_total,instance={inst},job=exposed,kind=a": "3",  # honor_labels keeps job="exposed"
        f"__name__=jobs_total,instance={inst},job=honoring,kind=b": "4",
    }
    assert wait_until(lambda: instant(hub, "up") == {
        f"__name__=up,env=test,instance={inst},job=app": "1",
        f"__name__=up,instance={inst},job=honoring": "1",
        f"__name__=up,instance={dead},job=dead": "0"}, timeout=30)
    scraped = instant(hub, 'scrape_samples_scraped{job="app"}')
    assert list(scraped.values()) == ["3"]
    for name in ("scrape_duration_seconds", "scrape_samples_post_metric_relabeling", "scrape_series_added"):
        assert len(instant(hub, f'{name}{{job="app"}}')) == 1, name
    meta = hub.get("/api/v1/metadata").json()["data"]
    assert meta["jobs_total"] == [{"type": "counter", "help": "Jobs done.", "unit": ""}]
    assert meta["temperature"][0]["type"] == "gauge"

    # a series the target stops exposing goes stale at once (no 5-minute lookback tail)
    exporter.body = b"jobs_total{kind=\"a\"} 5\ntemperature -4.5\n"
    assert wait_until(lambda: not instant(hub, 'jobs_total{kind="b"}'), timeout=30)
    assert instant(hub, 'jobs_total{job="app"}') == {
        f"__name__=jobs_total,env=test,instance={inst},job=app,kind=a": "5"}
    # a failing target: up 0 and everything it exposed goes stale
    exporter.status = 500
    assert wait_until(lambda: instant(hub, 'up{job="app"}') == {
        f"__name__=up,env=test,instance={inst},job=app": "0"}, timeout=30)
    assert wait_until(lambda: not instant(hub, "temperature"), timeout=30)
    # it comes back
    exporter.status = 200
    assert wait_until(lambda: len(instant(hub, "temperature")) == 2, timeout=30)
    assert hub.get("/readyz").status_code == 200


def test_openmetrics_target(hub_factory, exporter: Exporter) -> None:
    exporter.content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"
    exporter.body = b'''# TYPE req counter
# HELP req Requests.
req_total{a="b"} 5 # {trace_id="abc"} 1.0
req_created{a="b"} 1.7e9
# EOF
'''
    hub = hub_factory(f"""
scrape_configs:
  - job_name: om
    scrape_interval: 500ms
    static_configs:
      - targets: ["{exporter.address}"]
""").start()
    assert wait_until(lambda: instant(hub, '{job="om",__name__=~"req.*"}'), timeout=30)
    names = sorted(k.split(",")[0] for k in instant(hub, '{job="om",__name__=~"req.*"}'))
    assert names == ["__name__=req_created", "__name__=req_total"]
    assert hub.get("/api/v1/metadata", metric="req").json()["data"]["req"][0]["type"] == "counter"
