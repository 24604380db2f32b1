"""Long-range queries read 1-minute / 1-hour rollups, and agree with the raw data."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from pantau.model import SampleBatch
from pantau.query.promql import Engine
from pantau.store.base import Matcher
from pantau.store.sqlite import SQLiteOptions, SQLiteStore

HOUR = 3_600_000


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "d"))
    s.start()
    yield s
    s.close()


def load(store: SQLiteStore, hours: int, end: int) -> None:
    rng = np.random.default_rng(3)
    start = end - hours * HOUR
    stamps = np.arange(start, end + 1, 15_000)
    counter = np.cumsum(rng.uniform(1, 3, len(stamps)))
    counter[len(stamps) // 2:] -= counter[len(stamps) // 2]  # a reset half way
    gauge = 100 + 10 * np.sin(np.arange(len(stamps)) / 200)
    for lo in range(0, len(stamps), 5000):  # several cuts, so buckets span cuts
        batch = SampleBatch()
        for i in range(lo, min(lo + 5000, len(stamps))):
            batch.append((("__name__", "req_total"), ("job", "a")), int(stamps[i]), float(counter[i]))
            batch.append((("__name__", "temp"), ("job", "a")), int(stamps[i]), float(gauge[i]))
        store.write(batch)
        store.maintain_now(final=True)


def test_rollups_agree_with_raw(store) -> None:
    end = (time.time_ns() // 1_000_000) // HOUR * HOUR - HOUR
    load(store, 72, end)
    engine = Engine(store)
    start = end - 70 * HOUR
    for query, tolerance in [("rate(req_total[1h])", 0.02), ("sum_over_time(temp[1h])", 0.01),
                             ("avg_over_time(temp[1h])", 0.005), ("max_over_time(temp[1h])", 0.005),
                             ("count_over_time(temp[1h])", 0.01), ("temp", 0.0)]:
        raw = engine.range(query, start, end, 30 * 60_000, max_resolution_ms=0)
        rolled = engine.range(query, start, end, 30 * 60_000)  # auto: 1-minute rollups for a 70 h range
        assert raw.labels == rolled.labels, query
        assert (raw.present == rolled.present).all(), query
        a, b = raw.values[raw.present], rolled.values[rolled.present]
        assert np.allclose(a, b, rtol=tolerance, atol=1e-9), (query, np.max(np.abs(a - b) / np.abs(a)))
    hourly = engine.range("rate(req_total[6h])", start, end, 6 * HOUR)  # step >= 1 h: 1-hour rollups
    raw = engine.range("rate(req_total[6h])", start, end, 6 * HOUR, max_resolution_ms=0)
    assert np.allclose(hourly.values[hourly.present], raw.values[raw.present], rtol=0.05)


def test_rollups_are_written_when_the_head_is_sealed(store, tmp_path: Path) -> None:
    end = (time.time_ns() // 1_000_000) // HOUR * HOUR - HOUR
    load(store, 3, end)
    assert list((tmp_path / "d" / "metrics_1m").glob("*Z.db"))
    assert list((tmp_path / "d" / "metrics_1h").glob("*Z.db"))
    [series] = store.select_rollups([Matcher("__name__", "=", "temp")], end - 3 * HOUR, end, 60_000)
    assert int(series.count.sum()) == 3 * 240 + 1 and len(series.bucket_ms) == 3 * 60 + 1
