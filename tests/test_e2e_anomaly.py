"""The anomaly engine in a running hub: a service's latency goes up, one anomaly event opens
with the right series and a reason, and it ends when latency comes back; a restart keeps the
learned baselines.

Time is compressed: the engine evaluates every half second at a one-second step, the normal
history is written with past timestamps (Prometheus remote write), and the "ten minutes" of
high latency are ten seconds of live samples.
"""

from __future__ import annotations

import threading
import time

import cramjam
import httpx
import numpy as np
import pytest

from pantau.ingest.remote_write_pb import encode_write_request
from tests.conftest import HubProcess, wait_until

pytestmark = pytest.mark.e2e

CONFIG = """
anomaly:
  evaluation_interval: 0.5s
  step: 1s
  warmup: 20m
  max_catchup: 10m
  close_after: 3
  checkpoint_interval: 1s
  default_watches: false
  watches:
    - name: checkout_latency
      expr: http_server_latency_p99_seconds
      description: p99 latency
      unit: s
  rules:
    - name: signing_failures
      kind: threshold
      expr: signing_failures_per_minute
      above: 20
      severity: critical
      description: signing failures
"""
LABELS = (("__name__", "http_server_latency_p99_seconds"), ("job", "checkout"))
HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}
RNG = np.random.default_rng(11)


def write(hub: HubProcess, series: list[tuple[tuple, list[int], list[float]]]) -> None:
    body = bytes(cramjam.snappy.compress_raw(encode_write_request(series)))
    r = httpx.post(f"{hub.api}/api/v1/write", content=body, headers=HEADERS, timeout=30)
    assert r.status_code == 204, r.text


def normal(n: int) -> list[float]:
    return (0.120 + RNG.normal(0, 0.004, n)).tolist()


def write_history(hub: HubProcess, seconds: int = 900) -> None:
    now = int(time.time()) * 1000
    stamps = [now - (seconds - i) * 1000 for i in range(seconds)]
    write(hub, [(LABELS, stamps, normal(seconds))])


class Service(threading.Thread):
    """Writes the latency every 200 ms at the current time; `level` is what it reports."""

    def __init__(self, hub: HubProcess) -> None:
        super().__init__(daemon=True)
        self.hub = hub
        self.level: float | None = None  # None: normal
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            v = self.level if self.level is not None else normal(1)[0]
            write(self.hub, [(LABELS, [int(time.time() * 1000)], [v])])
            time.sleep(0.2)


def watched(hub: HubProcess) -> list[dict]:
    return hub.get("/api/pantau/anomalies/series").json()["series"]


def anomalies(hub: HubProcess, **params) -> list[dict]:
    r = hub.get("/api/pantau/anomalies", **params)
    assert r.status_code == 200, r.text
    return r.json()["anomalies"]


def warmed(hub: HubProcess, at_least: int = 800) -> dict | None:
    for s in watched(hub):
        if s["watch"] == "checkout_latency" and s["points_seen"] >= at_least:
            return s
    return None


ALERT_RULES = """
groups:
  - name: anomalies
    interval: 1s
    rules:
      - alert: CheckoutLatencyAnomalous
        anomaly: {selector: 'anomaly_watch="checkout_latency"', threshold: 0.8}
"""


def test_latency_up_then_back_gives_one_anomaly_with_reason(hub_factory, tmp_path):
    (tmp_path / "anomaly-rules.yml").write_text(ALERT_RULES)
    hub = hub_factory(CONFIG + f"rule_files: ['{tmp_path}/anomaly-rules.yml']\n").start()
    write_history(hub)
    learned = wait_until(lambda: warmed(hub), timeout=20)
    assert learned, watched(hub)
    assert learned["baseline_from"] == "history"  # learned from stored data, not waiting
    service = Service(hub)
    service.start()
    try:
        time.sleep(3)
        assert anomalies(hub, watch="checkout_latency") == []
        service.level = 0.850
        opened = wait_until(lambda: anomalies(hub, watch="checkout_latency"), timeout=20)
        assert opened, hub.log()
        # an alerting rule on the anomaly score fires (pantau's alerting reads what the engine writes)
        alert = wait_until(lambda: [a for a in hub.get("/api/v2/alerts").json()
                                    if a["labels"].get("alertname") == "CheckoutLatencyAnomalous"], timeout=8)
        assert alert and alert[0]["labels"]["job"] == "checkout", hub.get("/api/v2/alerts").json()
        time.sleep(10 - 1)
        service.level = None
        ended = wait_until(lambda: [a for a in anomalies(hub, watch="checkout_latency") if not a["open"]],
                           timeout=60)
        assert ended, anomalies(hub)
    finally:
        service.stopped.set()
        service.join()
    events = anomalies(hub, watch="checkout_latency")
    assert len(events) == 1, events
    a = events[0]
    assert a["type"] == "statistical"
    assert a["labels"]["job"] == "checkout"
    assert a["data"]["series"] == dict(LABELS)
    assert a["reason"].startswith("p99 latency 850 ms is "), a["reason"]
    assert " above " in a["reason"]
    assert a["end_ns"] > a["start_ns"]
    assert a["severity"] in ("warning", "critical")
    # the scores are series PromQL can read
    r = hub.get("/api/v1/query", query='max_over_time(pantau_anomaly_score{anomaly_watch="checkout_latency"}[5m])')
    result = r.json()["data"]["result"]
    assert result and float(result[0]["value"][1]) >= 0.5
    assert result[0]["metric"]["job"] == "checkout"
    # one anomaly with what is needed to draw it
    one = hub.get(f"/api/pantau/anomalies/{a['id']}").json()
    assert one["id"] == a["id"]
    assert max(v for v in one["series"]["values"] if v is not None) >= 0.8
    assert {"score", "expected", "lower", "upper"} <= set(one["band"])
    lower = [v for v in one["band"]["upper"]["values"] if v is not None]
    assert lower and min(lower) < 0.85
    assert hub.get("/api/pantau/anomalies/nope").status_code == 404


def test_business_rule_event_opens_and_ends(hub_factory):
    hub = hub_factory(CONFIG).start()
    labels = (("__name__", "signing_failures_per_minute"), ("job", "signer"))
    now = int(time.time() * 1000)
    write(hub, [(labels, [now - 2000, now - 1000], [25.0, 25.0])])
    found = wait_until(lambda: anomalies(hub, type="business"), timeout=20)
    assert found, hub.log()
    a = found[0]
    assert a["labels"]["anomaly_rule"] == "signing_failures"
    assert a["severity"] == "critical"
    assert a["reason"] == "signing failures 25 is above the limit of 20"
    assert [x["id"] for x in anomalies(hub, open="true", label="job:signer", rule="signing_failures")] == [a["id"]]
    assert anomalies(hub, label="job:other") == []
    assert anomalies(hub, severity="warning") == []
    assert hub.get("/api/pantau/anomalies", label="nocolon").status_code == 400
    assert hub.get(f"/api/pantau/anomalies/{a['id']}").json()["data"]["rule"] == "signing_failures"
    write(hub, [(labels, [int(time.time() * 1000)], [1.0])])
    assert wait_until(lambda: not anomalies(hub, type="business")[0]["open"], timeout=20)
    assert anomalies(hub, type="statistical") == []
    assert anomalies(hub, open="true") == []


def test_restart_keeps_baselines_no_relearning(hub_factory, tmp_path):
    data = tmp_path / "restart-data"
    hub = hub_factory(CONFIG, data_dir=data).start()
    write_history(hub)
    before = wait_until(lambda: warmed(hub), timeout=20)
    assert before
    hub.stop()
    assert hub.proc.returncode == 0, hub.log()
    again = hub_factory(CONFIG, data_dir=data).start()
    # the baseline is there at once, loaded, not relearned from history
    after = wait_until(lambda: next((s for s in watched(again) if s["watch"] == "checkout_latency"), None),
                       timeout=10)
    assert after, again.log()
    assert after["baseline_from"] == "state"
    assert after["points_seen"] >= before["points_seen"]
    # and it judges the very next points: a spike right after the restart is an anomaly
    write(again, [(LABELS, [int(time.time() * 1000)], [0.850])])
    opened = wait_until(lambda: anomalies(again, watch="checkout_latency"), timeout=20)
    assert opened, again.log()
    assert opened[0]["reason"].startswith("p99 latency 850 ms is ")


SDK_CONFIG = """
anomaly:
  evaluation_interval: 0.5s
  step: 1s
  warmup: 10m
  close_after: 3
  default_watches: false
  watches:
    - name: checkout_p99
      expr: histogram_quantile(0.99, sum by (job, le) (rate(http_server_duration_milliseconds_bucket[5s])))
      description: p99 latency
      unit: ms
  detectors:
    min_points: 10
"""


class SdkService(threading.Thread):
    """A service instrumented with the OpenTelemetry SDK: an `http.server.duration` histogram
    (ms) exported over OTLP/HTTP every half second; ~100 requests a second."""

    def __init__(self, hub: HubProcess) -> None:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource

        super().__init__(daemon=True)
        reader = PeriodicExportingMetricReader(OTLPMetricExporter(f"{hub.otlp_http}/v1/metrics"),
                                               export_interval_millis=500)
        self.provider = MeterProvider(resource=Resource.create({"service.name": "checkout"}), metric_readers=[reader])
        self.histogram = self.provider.get_meter("checkout").create_histogram("http.server.duration", unit="ms")
        self.slow = False
        self.stopped = threading.Event()
        self.rng = np.random.default_rng(21)

    def run(self) -> None:
        while not self.stopped.is_set():
            for _ in range(10):
                latency = 850.0 if self.slow else float(self.rng.uniform(20, 60))
                self.histogram.record(latency, {"http.route": "/checkout", "http.method": "POST"})
            time.sleep(0.1)

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.provider.shutdown()


def test_sdk_instrumented_service_latency_anomaly(hub_factory):
    hub = hub_factory(SDK_CONFIG).start()
    service = SdkService(hub)
    service.start()
    try:
        assert wait_until(lambda: [s for s in watched(hub) if s["watch"] == "checkout_p99" and s["points_seen"] >= 20],
                          timeout=40), watched(hub)
        assert anomalies(hub, watch="checkout_p99") == []
        service.slow = True
        opened = wait_until(lambda: anomalies(hub, watch="checkout_p99"), timeout=20)
        assert opened, hub.log()
        time.sleep(6)
        service.slow = False
        ended = wait_until(lambda: [a for a in anomalies(hub, watch="checkout_p99") if not a["open"]], timeout=40)
        assert ended, anomalies(hub)
    finally:
        service.stop()
    (a,) = anomalies(hub, watch="checkout_p99")
    assert a["labels"]["job"] == "checkout"
    assert a["reason"].startswith("p99 latency "), a["reason"]
    assert " above " in a["reason"]
    assert a["end_ns"] > a["start_ns"]
