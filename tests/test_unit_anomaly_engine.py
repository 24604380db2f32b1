"""The engine over a real store, driven step by step with explicit evaluation times."""

from __future__ import annotations

import numpy as np
import pytest

from pantau.anomaly.config import AnomalyConfig
from pantau.anomaly.engine import NAMESPACE, AnomalyEngine
from pantau.bus import Bus
from pantau.model import SampleBatch, make_labels
from pantau.store.base import EventQuery, Matcher
from pantau.store.sqlite import SQLiteOptions, SQLiteStore

STEP = 60_000
LAT = make_labels({"__name__": "svc_latency_seconds", "job": "checkout"})


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "data"))
    s.start()
    yield s
    s.close()


def config(**kw) -> AnomalyConfig:
    return AnomalyConfig.model_validate({
        "default_watches": False, "step": "1m", "warmup": "1d", "max_catchup": "2h", "checkpoint_interval": "1h",
        "watches": [{"name": "latency", "expr": "svc_latency_seconds", "description": "p99 latency", "unit": "s"}],
        **kw})


def now_ms() -> int:
    import time

    return int(time.time() * 1000) // STEP * STEP


def put(store, labels, times, values) -> None:
    batch = SampleBatch()
    for t, v in zip(times, values, strict=True):
        batch.append(labels, int(t), float(v))
    store.write(batch)


def history(store, end: int, n: int = 600, labels=LAT, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    put(store, labels, [end - (n - i) * STEP for i in range(n)], 0.120 + rng.normal(0, 0.004, n))


def test_warm_up_then_one_event_from_spike_to_recovery(store):
    bus, seen = Bus(), []
    bus.subscribe("anomaly", lambda topic, payload: seen.append(payload))
    t0 = now_ms() - 30 * STEP
    history(store, t0)
    eng = AnomalyEngine(store, bus, config())
    eng.evaluate(t0 / 1000)
    (st,) = eng.series.values()
    assert st.source == "history" and st.model.seen >= 590
    assert store.find_events(EventQuery(kinds=["anomaly"])) == []
    rng = np.random.default_rng(2)
    values = [0.12 + rng.normal(0, 0.004) for _ in range(3)] + [0.85] * 10 + \
        [0.12 + rng.normal(0, 0.004) for _ in range(15)]
    for k, v in enumerate(values, start=1):
        put(store, LAT, [t0 + k * STEP], [v])
        eng.evaluate((t0 + k * STEP) / 1000)
    events = store.find_events(EventQuery(kinds=["anomaly"]))
    assert len(events) == 1
    e = events[0]
    assert e.start_ns == (t0 + 4 * STEP) * 1_000_000
    assert e.end_ns is not None and e.end_ns > e.start_ns
    assert e.labels == {"job": "checkout", "anomaly_watch": "latency", "anomaly_type": "statistical"}
    assert e.data["reason"].startswith("p99 latency 850 ms is ")
    assert e.data["series"] == dict(LAT)
    assert e.data["max_score"] >= 0.9 and e.severity == "critical"
    assert [p["status"] for p in seen] == ["open", "resolved"]
    assert seen[0]["id"] == e.id and seen[0]["data"]["reason"] == e.data["reason"]
    assert seen[0]["data"]["score"] >= 0.9 and seen[1]["data"]["score"] < 0.3  # the end is not a new high
    # the score series is in the store, labelled with the series' labels and the watch
    m = [Matcher("__name__", "=", "pantau_anomaly_score"), Matcher("anomaly_watch", "=", "latency")]
    (scores,) = store.select_samples(m, t0, t0 + 40 * STEP)
    assert dict(scores.labels)["job"] == "checkout" and dict(scores.labels)["metric"] == "svc_latency_seconds"
    assert len(scores.values) == len(values) and scores.values.max() >= 0.9


def test_state_is_saved_and_resumed(store):
    t0 = now_ms() - 30 * STEP
    history(store, t0)
    first = AnomalyEngine(store, None, config())
    first.evaluate(t0 / 1000)
    put(store, LAT, [t0 + STEP], [0.12])
    first.evaluate((t0 + STEP) / 1000)
    assert first.checkpoint() == 1
    seen = next(iter(first.series.values())).model.seen
    saved = store.list_state(NAMESPACE)
    assert len(saved['latency|' + '[["__name__","svc_latency_seconds"],["job","checkout"]]']) <= 4096
    again = AnomalyEngine(store, None, config())
    again.load()
    (st,) = again.series.values()
    assert st.source == "state" and st.model.seen == seen
    # resumes after the last evaluated step, judging at once: a spike is an anomaly right away
    put(store, LAT, [t0 + 2 * STEP], [0.85])
    again.evaluate((t0 + 2 * STEP) / 1000)
    assert st.model.seen == seen + 1
    assert len(store.find_events(EventQuery(kinds=["anomaly"], open_only=True))) == 1


def test_a_crash_after_an_event_opened_replays_it_under_the_same_id(store):
    """Checkpoints are minutes apart: after a crash the steps since the last one are scored
    again, and an anomaly opened in between must be the same stored event, not a second one."""
    t0 = now_ms() - 30 * STEP
    history(store, t0)
    first = AnomalyEngine(store, None, config())
    first.evaluate(t0 / 1000)
    first.checkpoint()
    for k, v in enumerate([0.12, 0.85, 0.86], start=1):
        put(store, LAT, [t0 + k * STEP], [v])
        first.evaluate((t0 + k * STEP) / 1000)
    [opened] = store.find_events(EventQuery(kinds=["anomaly"]))
    # killed here, without a checkpoint: the next run resumes from t0 and scores the spike again
    bus, seen = Bus(), []
    bus.subscribe("anomaly", lambda topic, payload: seen.append(payload))
    again = AnomalyEngine(store, bus, config())
    again.evaluate((t0 + 3 * STEP) / 1000)
    [replayed] = store.find_events(EventQuery(kinds=["anomaly"]))
    assert replayed.id == opened.id and replayed.start_ns == opened.start_ns
    assert [p["id"] for p in seen] == [opened.id]


def test_a_series_appearing_later_learns_from_its_history_first(store):
    t0 = now_ms() - 30 * STEP
    history(store, t0)
    eng = AnomalyEngine(store, None, config())
    eng.evaluate(t0 / 1000)
    other = make_labels({"__name__": "svc_latency_seconds", "job": "payments"})
    history(store, t0 + STEP, labels=other, seed=3)  # its history arrives now, up to the next step
    put(store, LAT, [t0 + STEP], [0.12])
    eng.evaluate((t0 + STEP) / 1000)
    late = next(s for s in eng.series.values() if dict(s.labels)["job"] == "payments")
    assert late.source == "history" and late.model.seen >= 590
    assert store.find_events(EventQuery(kinds=["anomaly"])) == []


def test_business_rules_open_and_close_events(store):
    bus, seen = Bus(), []
    bus.subscribe("anomaly", lambda topic, payload: seen.append(payload))
    failures = make_labels({"__name__": "signing_failures_total", "job": "signer"})
    t0 = now_ms() - 30 * STEP
    put(store, failures, [t0 - 2 * STEP, t0 - STEP, t0], [100, 102, 130])  # +28 in the last minute
    eng = AnomalyEngine(store, bus, config(rules=[
        {"name": "signing_failures", "kind": "rate", "expr": "signing_failures_total", "per": "1m", "above": 20,
         "severity": "critical", "description": "signing failures"}]))
    eng.evaluate(t0 / 1000)
    (e,) = store.find_events(EventQuery(kinds=["anomaly"]))
    assert e.labels == {"job": "signer", "anomaly_rule": "signing_failures", "anomaly_type": "business"}
    assert e.title.startswith("signing failures: ") and "above the limit of 20 per 1m" in e.title
    for k in range(1, 4):
        put(store, failures, [t0 + k * STEP], [131 + k])
        eng.evaluate((t0 + k * STEP) / 1000)
    (e,) = store.find_events(EventQuery(kinds=["anomaly"]))
    assert e.end_ns is not None
    assert [p["status"] for p in seen] == ["open", "resolved"]


def test_bad_watch_expression_is_logged_not_fatal(store, caplog):
    eng = AnomalyEngine(store, None, config(watches=[{"name": "bad", "expr": "svc_latency_seconds[5m]"}]))
    eng.evaluate()
    assert eng.last_stats.series == 0


def test_lookback_copies_of_a_sample_are_not_fed_twice(store):
    """A gauge sampled every 5 minutes, evaluated every minute: PromQL repeats each sample for
    5 minutes; the detectors see each sample once (else a flat line, MAD 0)."""
    t0 = now_ms() - 30 * STEP
    rng = np.random.default_rng(4)
    put(store, LAT, [t0 - (60 - i) * 5 * STEP for i in range(60)], 0.12 + rng.normal(0, 0.004, 60))
    eng = AnomalyEngine(store, None, config())
    eng.evaluate(t0 / 1000)
    (st,) = eng.series.values()
    assert st.model.seen == 60
    put(store, LAT, [t0 + 2 * STEP], [0.121])
    for k in range(1, 6):
        eng.evaluate((t0 + k * STEP) / 1000)
    assert st.model.seen == 61


def test_business_rule_for_waits_that_many_evaluations(store):
    integrity = make_labels({"__name__": "chain_integrity_percent", "job": "ledger"})
    t0 = now_ms() - 30 * STEP
    put(store, integrity, [t0 + k * STEP for k in range(4)], [99.0, 91.0, 91.0, 91.0])
    eng = AnomalyEngine(store, None, config(rules=[
        {"name": "integrity", "kind": "threshold", "expr": "chain_integrity_percent", "below": 95, "for": 2}]))
    opened_at = []
    for k in range(4):
        eng.evaluate((t0 + k * STEP) / 1000)
        opened_at.append(len(store.find_events(EventQuery(kinds=["anomaly"]))))
    assert opened_at == [0, 0, 1, 1]  # below the floor from the second evaluation, open at the third
