"""Scraping without the network: exposition parsing, target labels, staleness bookkeeping."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.parser import text_string_to_metric_families

from pantau.config import PantauConfig
from pantau.ingest.exposition import OPENMETRICS, ExpositionError, parse, parse_series
from pantau.ingest.scrape import TargetScraper, attach_target_labels, targets_from_config
from pantau.model import is_stale_marker, make_labels

TEXT = '''# HELP http_requests_total Requests, with a \\\\ and a \\n in the help.
# TYPE http_requests_total counter
http_requests_total{method="GET",path="/a \\"q\\" {x}, y"} 1027 1395066363000
http_requests_total{method="POST"} 3
# TYPE plain counter
plain 7
# TYPE thing untyped
thing{a="1",} 1e3
weird NaN
minus{a="x"} -Inf
'''


def test_text_format_keeps_exposed_names_and_metadata() -> None:
    exp = parse(TEXT, "text/plain; version=0.0.4")
    samples = [(parse_series(s), v, ts) for s, v, ts in exp.samples]
    assert samples[0] == ([("__name__", "http_requests_total"), ("method", "GET"), ("path", '/a "q" {x}, y')],
                          1027.0, 1395066363000)
    assert samples[1][2] is None
    assert samples[2][0] == [("__name__", "plain")]  # not renamed to plain_total
    assert samples[3][0] == [("__name__", "thing"), ("a", "1")]
    assert math.isnan(samples[4][1]) and samples[5][1] == -math.inf
    meta = exp.metadata
    assert meta["http_requests_total"].type == "counter"
    assert meta["http_requests_total"].help == "Requests, with a \\ and a \n in the help."
    assert meta["thing"].type == "unknown" and "weird" not in meta


def test_openmetrics() -> None:
    body = '''# TYPE temp gauge
# UNIT temp celsius
# HELP temp Temperature.
temp_celsius 3 1700000000.1239
# TYPE req counter
req_total{a="b"} 5 # {trace_id="abc"} 1.0 1700000000
req_created{a="b"} 1.7e9
# EOF
'''
    exp = parse(body, f"{OPENMETRICS}; version=1.0.0; charset=utf-8")
    assert exp.samples == [("temp_celsius", 3.0, 1700000000123), ('req_total{a="b"}', 5.0, None),
                           ('req_created{a="b"}', 1.7e9, None)]
    assert exp.metadata["temp"].unit == "celsius" and exp.metadata["req"].type == "counter"
    with pytest.raises(ExpositionError, match="EOF"):
        parse(body.replace("# EOF\n", ""), OPENMETRICS)


@pytest.mark.parametrize("bad", ["no_value\n", 'x{a="1} 2\n', "x{1a=\"b\"} 1\n", "x 1 notatime\n",
                                 "# TYPE x sometype\n", "x{a=\"b\" c=\"d\"} 1\n"])
def test_invalid_bodies_fail(bad: str) -> None:
    with pytest.raises(ExpositionError):
        for text, _, _ in parse(bad).samples:
            parse_series(text)


def _registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    c = Counter("jobs", "Jobs done.", ["kind"], registry=reg)
    c.labels("a").inc(3)
    c.labels('we"ird\\').inc()
    Gauge("temperature", "Temperature.", registry=reg).set(-4.5)
    h = Histogram("latency_seconds", "Latency.", buckets=(0.1, 1.0), registry=reg)
    h.observe(0.05)
    h.observe(3)
    Summary("size_bytes", "Sizes.", registry=reg).observe(12)
    return reg


def test_agrees_with_prometheus_client_on_what_it_writes() -> None:
    """prometheus_client's own parser as the reference, on text where it renames nothing."""
    text = generate_latest(_registry()).decode()
    ours = sorted((tuple(parse_series(s)), v) for s, v, _ in parse(text).samples)
    theirs = sorted((tuple([("__name__", s.name), *s.labels.items()]), float(s.value))
                    for fam in text_string_to_metric_families(text) for s in fam.samples)
    assert ours == theirs
    names = {dict(labels)["__name__"] for labels, _ in ours}
    assert {"jobs_total", "jobs_created", "latency_seconds_bucket", "latency_seconds_sum",
            "latency_seconds_count", "size_bytes_count", "temperature"} <= names
    om = parse(generate_openmetrics(_registry()).decode(), OPENMETRICS)
    assert {s for s, _, _ in om.samples} >= {'jobs_total{kind="a"}', 'latency_seconds_bucket{le="+Inf"}'}


def test_target_labels() -> None:
    target = make_labels({"job": "app", "instance": "h:1", "env": "prod"})
    exposed = [("__name__", "m"), ("job", "other"), ("exported_job", "x"), ("a", "1")]
    assert dict(attach_target_labels(exposed, target, honor=True)) == {
        "__name__": "m", "job": "other", "exported_job": "x", "a": "1", "instance": "h:1", "env": "prod"}
    assert dict(attach_target_labels(exposed, target, honor=False)) == {
        "__name__": "m", "job": "app", "exported_job": "x", "exported_exported_job": "other", "a": "1",
        "instance": "h:1", "env": "prod"}
    # an empty exposed value is no conflict
    assert dict(attach_target_labels([("__name__", "m"), ("env", "")], target, honor=False))["env"] == "prod"


def test_targets_and_intervals_from_config() -> None:
    cfg = PantauConfig.model_validate({
        "global": {"scrape_interval": "15s"},
        "scrape_configs": [
            {"job_name": "app", "scrape_interval": "5s", "static_configs": [
                {"targets": ["127.0.0.1:8000", "127.0.0.1:8001"], "labels": {"env": "prod"}}]},
            {"job_name": "b", "metrics_path": "/m", "scheme": "https", "static_configs": [
                {"targets": ["h:1"], "labels": {"instance": "named"}}]},
        ]})
    targets = targets_from_config(cfg.scrape_configs)
    assert [t.url for t in targets] == ["http://127.0.0.1:8000/metrics", "http://127.0.0.1:8001/metrics", "https://h:1/m"]
    assert dict(targets[0].labels) == {"env": "prod", "instance": "127.0.0.1:8000", "job": "app"}
    assert (targets[0].interval_s, targets[0].timeout_s) == (5.0, 5.0)  # global 10s timeout capped at 5s
    assert (targets[2].interval_s, targets[2].timeout_s) == (15.0, 10.0)
    assert dict(targets[2].labels)["instance"] == "named"
    with pytest.raises(ValueError, match="greater than scrape_interval"):
        PantauConfig.model_validate({"scrape_configs": [{"job_name": "x", "scrape_interval": "1s",
                                                         "scrape_timeout": "2s"}]})
    with pytest.raises(ValueError, match="used twice"):
        PantauConfig.model_validate({"scrape_configs": [{"job_name": "x"}, {"job_name": "x"}]})


def _scraper() -> TargetScraper:
    target = targets_from_config(PantauConfig.model_validate({"scrape_configs": [
        {"job_name": "app", "static_configs": [{"targets": ["h:1"]}]}]}).scrape_configs)[0]
    return TargetScraper(target, store=None, client=None, max_body_bytes=1 << 20)  # type: ignore[arg-type]


def _rows(batch) -> dict[tuple, list[tuple[int, float]]]:
    out: dict[tuple, list] = {}
    for i in range(len(batch)):
        out.setdefault(batch.labels_at(i), []).append((batch.timestamp_ms[i], batch.value[i]))
    return out


def test_staleness_as_prometheus() -> None:
    s = _scraper()
    a = make_labels({"__name__": "a", "job": "app", "instance": "h:1"})
    b = make_labels({"__name__": "b", "job": "app", "instance": "h:1"})
    first = _rows(s.build(b"a 1\nb 2\nc 3 500\nancient 1 -90000000000\n", "text/plain", 1000))
    assert not [k for k in first if dict(k)["__name__"] == "ancient"]  # out of bounds: dropped
    assert first[a] == [(1000, 1.0)] and first[b] == [(1000, 2.0)]
    second = _rows(s.build(b"a 1\nc 3 600\n", "text/plain", 2000))
    assert second[a] == [(2000, 1.0)]
    assert len(second[b]) == 1 and second[b][0][0] == 2000 and is_stale_marker(second[b][0][1])
    third = _rows(s.build_failed(3000))  # a failed scrape: everything it had goes stale
    assert list(third) == [a] and is_stale_marker(third[a][0][1])  # c had its own timestamps: untracked
    assert _rows(s.build_failed(4000)) == {}


def test_report_series_and_duplicates() -> None:
    s = _scraper()
    batch = s.build(b"a 1\na 2\nb 3\n", "text/plain", 1000)
    s.report(batch, 1000, 0.25, up=True)
    rows = {dict(k)["__name__"]: v for k, v in _rows(batch).items()}
    assert rows["a"] == [(1000, 1.0)]  # the first of two samples of one series wins
    assert rows["up"] == [(1000, 1.0)] and rows["scrape_duration_seconds"] == [(1000, 0.25)]
    assert rows["scrape_samples_scraped"] == [(1000, 3.0)]
    assert rows["scrape_samples_post_metric_relabeling"] == [(1000, 2.0)]
    assert rows["scrape_series_added"] == [(1000, 2.0)]
    again = s.build(b"a 1\nb 3\n", "text/plain", 2000)
    s.report(again, 2000, 0.1, up=True)
    assert {dict(k)["__name__"]: v for k, v in _rows(again).items()}["scrape_series_added"] == [(2000, 0.0)]
