"""Metrics from a real Prometheus: its remote write into pantau, and pantau scraping like it.

One instrumented app (`tests/prom_app.py`) is scraped three ways:

* a real Prometheus scrapes it (job `app`) and remote-writes everything it stores to pantau
  hub A;
* pantau hub B scrapes it itself with the same job and the same target address, so `job` and
  `instance` are the same as Prometheus's (a different job name would make different series,
  which is not what comparing routes means);
* Prometheus's own API is the reference.

Two hubs, because both routes produce the same label sets: in one hub they would merge into
the same series and the comparison could not fail. The series under `{job="app"}` must be
identical in all three: the app's metrics as exposed, plus the five series Prometheus writes
for every scrape (`up`, `scrape_duration_seconds`, `scrape_samples_scraped`,
`scrape_samples_post_metric_relabeling`, `scrape_series_added`), which pantau writes too. When
the app stops, Prometheus marks its series stale (and remote-writes the markers); pantau's
own scrape does the same, so all three answer the same instant query: only the report series
remain, with `up` 0.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import cramjam
import httpx
import pytest

from pantau.ingest.remote_write_pb import WriteRequest, encode_write_request
from pantau.model import is_stale_marker, stale_marker
from tests.conftest import ROOT, HubProcess, free_port, require, wait_until
from tests.prometheus_harness import RW_HEADERS, PrometheusProcess

pytestmark = pytest.mark.e2e
REPORT = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
          "scrape_series_added"}


@pytest.fixture
def app() -> Iterator[subprocess.Popen]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "prom_app.py"), str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    proc.address = f"127.0.0.1:{port}"  # type: ignore[attr-defined]
    yield proc
    proc.kill()
    proc.wait()


def series_of(base: str, match: str) -> set[tuple]:
    now = time.time()
    resp = httpx.get(f"{base}/api/v1/series", params={"match[]": match, "start": now - 600, "end": now + 60},
                     timeout=30)
    return {tuple(sorted(s.items())) for s in resp.json()["data"]}


def instant_of(base: str, query: str) -> dict[tuple, str]:
    result = httpx.get(f"{base}/api/v1/query", params={"query": query}, timeout=30).json()["data"]["result"]
    return {tuple(sorted(r["metric"].items())): r["value"][1] for r in result}


def names(series: set[tuple]) -> set[str]:
    return {dict(s)["__name__"] for s in series}


def test_prometheus_remote_write_and_pantau_scrape_give_the_same_series(tmp_path, hub_factory, app) -> None:
    binary = require("prometheus", "prometheus")
    receiver = hub_factory().start()
    scraper = hub_factory(f"""
scrape_configs:
  - job_name: app
    scrape_interval: 1s
    static_configs:
      - targets: ["{app.address}"]
""").start()
    prometheus = PrometheusProcess(tmp_path / "prometheus", binary=binary, config={
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "app", "static_configs": [{"targets": [app.address]}]}],
        "remote_write": [{
            "url": f"{receiver.api}/api/v1/write",
            "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "100ms", "max_backoff": "1s"},
            "metadata_config": {"send_interval": "1s"},
        }],
    }).start()
    try:
        job = '{job="app"}'

        def routes() -> tuple[set, set, set]:
            return series_of(prometheus.url, job), series_of(receiver.api, job), series_of(scraper.api, job)

        def agree() -> bool:
            ref, via_rw, via_scrape = routes()
            return bool(ref) and ref == via_rw == via_scrape and {"documents_signed_total", "target_info"} <= names(ref)

        if not wait_until(agree, timeout=60, interval=0.5):
            ref, via_rw, via_scrape = routes()
            pytest.fail(f"series differ:\nonly in Prometheus vs remote write: {sorted(ref ^ via_rw)[:10]}\n"
                        f"only in Prometheus vs pantau scrape: {sorted(ref ^ via_scrape)[:10]}\n"
                        f"prometheus log:\n{prometheus.log()[-2000:]}")
        ref = series_of(prometheus.url, job)
        assert names(ref) >= REPORT
        assert {"signing_duration_seconds_bucket", "signing_duration_seconds_sum", "signing_duration_seconds_count",
                "signing_queue_size", "python_info"} <= names(ref)
        assert all(dict(s)["instance"] == app.address for s in ref)

        # metadata: what Prometheus knows from the scrape, both hubs know (A by remote write)
        prom_meta = httpx.get(f"{prometheus.url}/api/v1/metadata", params={"metric": "signing_duration_seconds"},
                              timeout=30).json()["data"]
        assert prom_meta["signing_duration_seconds"][0]["type"] == "histogram"
        for hub in (receiver, scraper):
            assert wait_until(lambda hub=hub: hub.get("/api/v1/metadata", metric="signing_duration_seconds").json()
                              ["data"].get("signing_duration_seconds"), timeout=30)
            got = hub.get("/api/v1/metadata", metric="signing_duration_seconds").json()["data"]
            assert got["signing_duration_seconds"][0]["type"] == "histogram"

        # the app goes away: everything it exposed goes stale at once on all three
        app.kill()
        app.wait()

        def only_report_left(base: str) -> bool:
            now = instant_of(base, job)
            return bool(now) and names(set(now)) == REPORT and instant_of(base, 'up{job="app"}') and \
                list(instant_of(base, 'up{job="app"}').values()) == ["0"]

        for base in (prometheus.url, receiver.api, scraper.api):
            assert wait_until(lambda base=base: only_report_left(base), timeout=60, interval=0.5), base
        assert set(instant_of(prometheus.url, job)) == set(instant_of(receiver.api, job)) == \
            set(instant_of(scraper.api, job))
    finally:
        prometheus.stop()


# --- bad remote-write input ----------------------------------------------------------------------


def post(hub: HubProcess, body: bytes, headers: dict | None = None) -> httpx.Response:
    return httpx.post(f"{hub.api}/api/v1/write", content=body, headers=headers or RW_HEADERS, timeout=30)


def snappy(raw: bytes) -> bytes:
    return bytes(cramjam.snappy.compress_raw(raw))


def stored(hub: HubProcess, name: str) -> dict[tuple, str]:
    return instant_of(hub.api, name)


def test_bad_remote_write_input_gets_prometheus_statuses_and_stores_nothing_half(hub_factory) -> None:
    limit = 64 * 1024
    hub = hub_factory(f"limits:\n  max_request_bytes: {limit}\n").start()
    now = int(time.time() * 1000)
    good = ([("__name__", "rw_good"), ("job", "a")], [now], [1.0])

    # a valid request: 204, empty body, stored; a staleness marker stays bit-exact
    resp = post(hub, snappy(encode_write_request([good, ([("__name__", "rw_marked")], [now - 1000, now],
                                                                [2.0, stale_marker()])])))
    assert resp.status_code == 204 and resp.content == b""
    assert stored(hub, "rw_good") == {(("__name__", "rw_good"), ("job", "a")): "1"}
    assert stored(hub, "rw_marked") == {}  # the marker ends the series at once
    raw = hub.get("/api/v1/query", query="rw_marked[1m]").json()["data"]["result"]
    assert [v for _, v in raw[0]["values"]] == ["2"]  # the sample before it is there

    cases = {
        "malformed protobuf": (snappy(b"\x0a\xff\xff\xff\xff\x0f garbage"), 400, "malformed protobuf"),
        "uncompressed body": (encode_write_request([good]), 400, "snappy: corrupt input"),
        "snappy framed stream": (bytes(cramjam.snappy.compress(encode_write_request([good]))), 400,
                                 "snappy: corrupt input"),
        "no metric name": (snappy(encode_write_request([good, ([("job", "x")], [now], [1.0])])), 400,
                           'series {job="x"} has no metric name'),
        "invalid label name": (snappy(encode_write_request([good, ([("__name__", "rw_bad"), ("a-b", "1")],
                                                                   [now], [1.0])])), 400, 'invalid label name "a-b"'),
        "duplicate label": (snappy(encode_write_request([good, ([("__name__", "rw_bad"), ("a", "1"), ("a", "2")],
                                                                [now], [1.0])])), 400, 'label name "a" is not unique'),
        "oversized body": (os.urandom(limit + 1), 413, "over the limit"),
        "oversized after decompression": (snappy(encode_write_request(
            [([("__name__", "rw_big"), ("i", str(i)), ("pad", "x" * 100)], [now], [1.0]) for i in range(1000)])),
            413, "after snappy decompression"),
    }
    for what, (body, status, message) in cases.items():
        resp = post(hub, body)
        assert resp.status_code == status, (what, resp.text)
        assert resp.headers["content-type"].startswith("text/plain") and message in resp.text, (what, resp.text)
    # nothing of a refused request was stored: rw_good still has its single first sample
    raw = hub.get("/api/v1/query", query="rw_good[1m]").json()["data"]["result"]
    assert len(raw) == 1 and len(raw[0]["values"]) == 1
    assert stored(hub, "rw_bad") == {} and stored(hub, "rw_big") == {}
    assert hub.get("/readyz").status_code == 200
    metrics = hub.get("/metrics").text
    assert f'pantau_ingest_requests_total{{outcome="invalid",protocol="remote_write",signal="metrics"}} ' \
           f'{float(len(cases))}' in metrics


def test_full_write_queue_answers_503_with_retry_after(hub_factory) -> None:
    """Prometheus's sender retries 5xx: with storage stalled, a full queue must answer 503."""
    hub = hub_factory("limits:\n  write_queue_items: 1000\n").start()
    now = int(time.time() * 1000)

    def request(n: int, name: str) -> bytes:
        return snappy(encode_write_request([([("__name__", name), ("i", str(i))], [now], [1.0]) for i in range(n)]))

    assert post(hub, request(900, "rw_held")).status_code == 204  # series known, partition created
    [partition] = [p for p in (hub.data_dir / "metrics").glob("*.db") if not p.name.startswith("index")]
    blocker = sqlite3.connect(partition, timeout=1)
    blocker.execute("BEGIN IMMEDIATE")  # takes the write lock; pantau's writer now waits
    results: dict[str, int] = {}
    sender = threading.Thread(target=lambda: results.setdefault("held", post(hub, request(900, "rw_held")).status_code))
    sender.start()

    def queued() -> float:
        lines = [line for line in hub.get("/metrics").text.splitlines() if line.startswith("pantau_write_queue_items ")]
        return float(lines[0].split()[1])

    assert wait_until(lambda: queued() >= 900, timeout=30)  # the held request waits in the queue
    resp = post(hub, request(500, "rw_refused"))
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["retry-after"]) >= 1 and "queue" in resp.text
    blocker.rollback()
    blocker.close()
    sender.join(30)
    assert results["held"] == 204
    raw = hub.get("/api/v1/query", query='rw_held{i="7"}[1m]').json()["data"]["result"]
    assert len(raw[0]["values"]) == 1  # both requests wrote the same timestamp: last write wins


def test_stale_marker_round_trip_is_bit_exact() -> None:
    """The marker is one NaN payload among many: it must survive encoding as it is."""
    body = encode_write_request([([("__name__", "x")], [1], [stale_marker()])])
    request = WriteRequest()
    request.ParseFromString(body)
    assert is_stale_marker(request.timeseries[0].samples[0].value)
