"""The same dataset in a real Prometheus and in pantau gives the same series and raw samples.

This is the ground the PromQL compliance test stands on: if loading differed, every query
comparison after it would be meaningless.
"""

from __future__ import annotations

import pytest

from tests.conftest import require
from tests.prometheus_harness import (  # noqa: F401 (prom_and_pantau is a fixture)
    PrometheusProcess,
    difference,
    load_blocks,
    normalise,
    prom_and_pantau,
)

pytestmark = pytest.mark.e2e


def instants(ds) -> list[float]:
    """Seconds between samples (never on one: range ends then cannot matter), around the
    dataset's events: a counter reset at 1/3, a 10-minute gap and a new series at 1/2, a series
    stopping at 2/3, and the end."""
    span = ds.end_ms - ds.start_ms
    points = [ds.start_ms + 20 * 60_000, ds.start_ms + span // 3, ds.start_ms + span // 2 + 240_000,
              ds.start_ms + span // 2 + 500_000, ds.start_ms + span * 2 // 3 + 100_000, ds.end_ms - 1_000]
    return [(p + 3_337) / 1000 for p in points]


def test_same_series(prom_and_pantau) -> None:  # noqa: F811
    both = prom_and_pantau
    prom, ours = both.series_both('{__name__=~".+"}')
    assert len(prom) == len(both.dataset.series) == 54
    assert prom == ours
    prom, ours = both.series_both('http_requests_total{instance="api-1:8080"}')
    assert len(prom) == 4 and prom == ours


def test_same_raw_samples(prom_and_pantau) -> None:  # noqa: F811
    both = prom_and_pantau
    compared = 0
    for t in instants(both.dataset):
        for name in both.dataset.metric_names():
            for window in ("1m", "7m"):
                prom, ours = both.query_both(f"{name}[{window}]", t)
                assert prom["status"] == ours["status"] == "success", (prom, ours)
                assert normalise(ours["data"]) == normalise(prom["data"]), f"{name}[{window}] at {t}"
                compared += sum(len(r["values"]) for r in prom["data"]["result"])
    assert compared > 8_000  # 6 instants x 54 series x (4 + 28) samples, less the gaps


def test_same_instant_vectors_with_staleness(prom_and_pantau) -> None:  # noqa: F811
    """Plain selectors: the 5 m lookback and the staleness markers the remote-write data carries."""
    both = prom_and_pantau
    ds = both.dataset
    stop = ds.start_ms + (ds.end_ms - ds.start_ms) * 2 // 3
    for t in [*instants(ds), (stop + 60_000) / 1000]:
        for name in ds.metric_names():
            assert both.difference(name, t) is None, f"{name} at {t}"
    # the same over a range query spanning all the events
    for name in ds.metric_names():
        assert both.difference(name, start=ds.start_ms / 1000, end=ds.end_ms / 1000, step=97) is None, name
    # one minute after worker-1's jobs_in_flight stopped: gone at once (marker), not after 5 m
    prom, _ = both.query_both("jobs_in_flight", (stop + 60_000) / 1000)
    assert [r["metric"]["instance"] for r in prom["data"]["result"]] == ["worker-0:9000"]


def test_backfilled_blocks_hold_the_same_samples(prom_and_pantau, tmp_path) -> None:  # noqa: F811
    """The promtool route: blocks written before start-up, no staleness markers."""
    promtool = require("promtool", "prometheus")
    both = prom_and_pantau
    backfilled = PrometheusProcess(tmp_path / "backfilled", binary=both.prometheus.args[0])
    load_blocks(both.dataset, backfilled.tsdb_path, promtool)
    backfilled.start()
    try:
        series = backfilled.get("/api/v1/series", **{"match[]": '{__name__=~".+"}'}).json()["data"]
        assert sorted(map(sorted, (s.items() for s in series))) == sorted(
            map(sorted, (s.items() for s in both.series_both('{__name__=~".+"}')[1])))
        for t in instants(both.dataset):
            for name in both.dataset.metric_names():
                ours = both.query_both(f"{name}[7m]", t)[1]
                theirs = backfilled.get("/api/v1/query", query=f"{name}[7m]", time=t).json()
                assert normalise(theirs["data"]) == normalise(ours["data"]), f"{name}[7m] at {t}"
    finally:
        backfilled.stop()


def test_difference_names_what_differs() -> None:
    def vector(value: str, **labels: str) -> dict:
        return {"status": "success", "data": {"resultType": "vector",
                                              "result": [{"metric": labels, "value": [1.5, value]}]}}

    assert difference(vector("0.1", a="1"), vector("0.1", a="1")) is None
    assert difference(vector("0.1", a="1"), vector("0.10000000000000002", a="1")) is None  # last bits
    assert "prometheus" in difference(vector("0.1", a="1"), vector("0.2", a="1"))
    assert "only in" in difference(vector("1", a="1"), vector("1", a="2"))
    assert difference(vector("NaN"), vector("NaN")) is None
    bad = {"status": "error", "errorType": "bad_data", "error": "parse error"}
    assert "status" in difference(bad, vector("1"))
    assert difference(bad, {**bad, "error": "worded differently"}) is None
