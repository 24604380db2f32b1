"""The SQLite store's internals, through the store interface: trace-key runs, the sample head,
retention, log search ordering and pagination."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from pantau.model import SampleBatch, stale_marker
from pantau.otlp.decode import Limits, OtlpDecoder
from pantau.query.logsearch import parse_search
from pantau.store.base import LogQuery, Matcher, TraceQuery
from pantau.store.sqlite import SQLiteOptions, SQLiteStore
from pantau.store.sqlite import trace_keys as tk
from tests.conftest import wait_until
from tests.otlp_factory import log_request, trace_request

DAY = 86_400 * 10**9


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "data"))
    s.start()
    yield s
    s.close()


def decoder() -> OtlpDecoder:
    return OtlpDecoder(Limits(max_age_ns=400 * DAY))


def test_traces_are_found_across_flushed_and_compacted_runs(store, monkeypatch) -> None:
    monkeypatch.setattr(tk, "FLUSH_ROWS", 64)
    monkeypatch.setattr(tk, "MERGE_FANIN", 3)
    dec = decoder()
    ids = []
    for i in range(40):
        tid = os.urandom(16)
        ids.append(tid)
        store.write(dec.traces(trace_request(7, trace_id=tid, service=f"s{i % 3}").SerializeToString()).batch)
        if i % 5 == 4:
            store.maintain_now()
    [part] = store.parts["spans"].list()
    conn = sqlite3.connect(part.path)
    levels = conn.execute("SELECT level, count(*) FROM spans_key_runs GROUP BY level").fetchall()
    assert any(level >= 1 for level, _ in levels), levels  # runs were merged
    for tid in ids:
        spans = store.get_trace(tid)
        assert len(spans) == 7 and {s.trace_id for s in spans} == {tid.hex()}
    assert store.get_trace(os.urandom(16)) == []


def test_trace_keys_survive_restart(tmp_path: Path) -> None:
    dec = decoder()
    first = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "d"))
    first.start()
    tid = os.urandom(16)
    first.write(dec.traces(trace_request(3, trace_id=tid).SerializeToString()).batch)
    first.close()
    again = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "d"))
    again.start()
    try:
        assert len(again.get_trace(tid)) == 3  # rebuilt from blocks no run covers yet
    finally:
        again.close()


def test_trace_search_filters(store) -> None:
    dec = decoder()
    now = time.time_ns()
    slow, fast = os.urandom(16), os.urandom(16)
    req = trace_request(2, trace_id=slow, service="api", start_ns=now)
    for s in req.resource_spans[0].scope_spans[0].spans:
        s.end_time_unix_nano = s.start_time_unix_nano + 900_000_000
    store.write(dec.traces(req.SerializeToString()).batch)
    store.write(dec.traces(trace_request(2, trace_id=fast, service="api", start_ns=now).SerializeToString()).batch)
    found = store.find_trace_ids(TraceQuery(service="api", min_duration_ns=500_000_000))
    assert found == [slow]
    assert set(store.find_trace_ids(TraceQuery(service="api"))) == {slow, fast}
    assert store.find_trace_ids(TraceQuery(service="other")) == []
    assert store.find_trace_ids(TraceQuery(service="api", operation="nope")) == []


def test_samples_head_cut_replay_and_last_write_wins(tmp_path: Path) -> None:
    opts = SQLiteOptions(data_dir=tmp_path / "d")
    store = SQLiteStore(opts)
    store.start()
    base = time.time_ns() // 1_000_000 - 3_600_000
    labels = (("__name__", "g"), ("job", "x"))

    def batch(points):
        b = SampleBatch()
        for t, v in points:
            b.append(labels, base + t, v)
        return b

    store.write(batch([(0, 1.0), (15_000, 2.0), (30_000, 3.0)]))
    store.maintain_now(final=True)  # seal into chunks
    store.write(batch([(45_000, 4.0), (15_000, 20.0)]))  # a later write for an older timestamp
    [series] = store.select_samples([Matcher("__name__", "=", "g")], base, base + 60_000)
    assert series.timestamps_ms.tolist() == [base, base + 15_000, base + 30_000, base + 45_000]
    assert series.values.tolist() == [1.0, 20.0, 3.0, 4.0]
    store.close()  # head cut on close; then reopen and read again
    again = SQLiteStore(opts)
    again.start()
    try:
        [series] = again.select_samples([Matcher("job", "=", "x")], base, base + 60_000)
        assert series.values.tolist() == [1.0, 20.0, 3.0, 4.0]
        assert again.label_values("job") == ["x"]
        assert again.select_series([Matcher("__name__", "=~", "g|h")]) == [labels]
    finally:
        again.close()


def test_samples_replayed_from_the_write_ahead_table_after_a_crash(tmp_path: Path) -> None:
    opts = SQLiteOptions(data_dir=tmp_path / "d")
    store = SQLiteStore(opts)
    store.start()
    base = time.time_ns() // 1_000_000
    b = SampleBatch()
    b.append((("__name__", "crash"),), base, 42.0)
    b.append((("__name__", "crash"),), base + 1, stale_marker())
    store.write(b)
    # no close(): the head is never sealed, as after kill -9
    again = SQLiteStore(opts)
    again.start()
    try:
        [series] = again.select_samples([Matcher("__name__", "=", "crash")], base - 1, base + 1)
        assert series.values[0] == 42.0 and np.isnan(series.values[1])
    finally:
        again.close()


def test_retention_drops_whole_partitions_and_frees_disk(tmp_path: Path) -> None:
    opts = SQLiteOptions(data_dir=tmp_path / "d", partition_seconds=60,
                         retention_seconds={"spans": 120, "logs": 120, "metrics": 120})
    store = SQLiteStore(opts)
    store.start()
    try:
        dec = decoder()
        now = time.time_ns()
        old = now - 10 * 60 * 10**9
        for t in (old, now):
            store.write(dec.traces(trace_request(200, start_ns=t).SerializeToString()).batch)
            store.write(dec.logs(log_request(200, time_ns=t).SerializeToString()).batch)
        size_before = sum(f.stat().st_size for f in (tmp_path / "d").rglob("*") if f.is_file())
        assert len(store.parts["spans"].list()) == 2 and len(store.parts["logs"].list()) == 2
        dropped = store.enforce_retention(now)
        assert dropped == 2
        size_after = sum(f.stat().st_size for f in (tmp_path / "d").rglob("*") if f.is_file())
        assert size_after < size_before
        assert len(list((tmp_path / "d" / "spans").glob("*Z.db"))) == 1
        assert len(list((tmp_path / "d" / "logs").glob("*.fts.db"))) == 1
        assert len(store.search_logs(LogQuery(limit=1000)).records) == 200
    finally:
        store.close()


def test_log_search_order_pagination_and_index_agreement(store) -> None:
    dec = decoder()
    now = time.time_ns() - 10**9
    # two services, times interleaved and out of arrival order
    store.write(dec.logs(log_request(300, service="a", time_ns=now, body="alpha event {i}").SerializeToString()).batch)
    store.write(dec.logs(log_request(300, service="b", time_ns=now - 150_000, body="beta event {i}")
                         .SerializeToString()).batch)
    everything = []
    cursor = None
    while True:
        page = store.search_logs(LogQuery(limit=70, cursor=cursor))
        everything.extend(page.records)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    times = [r.timestamp_ns for r in everything]
    assert len(everything) == 600 and times == sorted(times, reverse=True)
    assert len({r.id for r in everything}) == 600
    forward = store.search_logs(LogQuery(limit=600, newest_first=False)).records
    assert [r.id for r in forward] == [r.id for r in reversed(everything)]

    def search(text: str) -> list[str]:
        return [r.body for r in store.search_logs(parse_search(text, LogQuery(limit=1000))).records]

    unindexed = {q: search(q) for q in ("event", "alpha", '"beta event"', "service:a event 7*", "-alpha event")}
    assert len(unindexed["event"]) == 600 and len(unindexed["alpha"]) == 300
    assert len(unindexed['"beta event"']) == 300
    assert all(b.startswith("alpha event 7") for b in unindexed["service:a event 7*"])
    assert len(unindexed["-alpha event"]) == 300
    # once the indexer has caught up, the same searches give the same answers from the index
    assert wait_until(lambda: store.stats().log_index_lag == 0, timeout=30)
    for q, expected in unindexed.items():
        assert search(q) == expected, q


def test_boolean_search_like_kibana(store) -> None:
    dec = decoder()
    now = time.time_ns() - 10**9
    lines = ["signer timeout after 5s", "signer connection reset by peer", "signer ok", "debug timeout probe"]
    for i, body in enumerate(lines):
        req = log_request(1, service="signer" if i < 3 else "chain", time_ns=now + i, body=body)
        req.resource_logs[0].scope_logs[0].log_records[0].severity_number = 5 if "debug" in body else 9
        store.write(dec.logs(req.SerializeToString()).batch)

    def search(text: str) -> set[str]:
        return {r.body for r in store.search_logs(parse_search(text, LogQuery(limit=100))).records}

    assert search('service:signer (timeout OR "connection reset")') == set(lines[:2])
    assert search("timeout AND NOT level:debug") == {lines[0]}
    assert search("timeout -service:signer") == {lines[3]}
    assert search("(ok OR probe) NOT service:chain") == {lines[2]}


def test_expiring_partitions_are_archived_to_parquet_before_the_drop(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    archive = tmp_path / "archive"
    opts = SQLiteOptions(data_dir=tmp_path / "d", partition_seconds=60, archive_dir=archive,
                         retention_seconds={"spans": 120, "logs": 120, "metrics": 120})
    store = SQLiteStore(opts)
    store.start()
    try:
        dec = decoder()
        now = time.time_ns()
        old = now - 10 * 60 * 10**9
        for t in (old, now):
            store.write(dec.traces(trace_request(150, start_ns=t, service="signer").SerializeToString()).batch)
            store.write(dec.logs(log_request(250, time_ns=t, service="signer",
                                             body="signed doc-{i} for user").SerializeToString()).batch)
        assert store.enforce_retention(now) == 2
    finally:
        store.close()  # waits for the archiver to finish what it was handed
    [log_file] = (archive / "logs").glob("*.parquet")
    [span_file] = (archive / "spans").glob("*.parquet")
    logs = pq.read_table(log_file)
    assert logs.num_rows == 250
    assert sorted(logs.column("body").to_pylist()) == sorted(f"signed doc-{i} for user" for i in range(250))
    assert set(logs.column("service").to_pylist()) == {"signer"}
    times = logs.column("timestamp").cast("int64").to_pylist()
    assert all(abs(t - old) < 60 * 10**9 for t in times)
    spans = pq.read_table(span_file)
    assert spans.num_rows == 150 and set(spans.column("service").to_pylist()) == {"signer"}
    assert all(d >= 0 for d in spans.column("duration_ns").to_pylist())
    # archived partitions are gone from the store; the fresh ones stay
    assert len(list((tmp_path / "d" / "logs").glob("*Z.db"))) == 1
    assert not list(archive.rglob("*.partial"))


def _severity_logs(n: int, t0: int, severity: int, text: str, service: str = "signer"):
    req = log_request(n, service=service, time_ns=t0, body=text + " {i}")
    for r in req.resource_logs[0].scope_logs[0].log_records:
        r.severity_number = severity
        r.severity_text = {5: "DEBUG", 9: "INFO", 17: "ERROR"}[severity]
    return req


def test_retention_per_severity_drops_whole_files_of_the_short_lived_tier(tmp_path: Path) -> None:
    opts = SQLiteOptions(data_dir=tmp_path / "d", partition_seconds=60,
                         retention_seconds={"spans": 3600, "logs": 3600, "metrics": 3600},
                         log_retention_by_severity={"debug": 120, "trace": 120})
    store = SQLiteStore(opts)
    store.start()
    try:
        dec = decoder()
        now = time.time_ns()
        old = now - 10 * 60 * 10**9
        for t in (old, now):
            store.write(dec.logs(_severity_logs(2000, t, 5, "verbose detail " + os.urandom(100).hex())
                                 .SerializeToString()).batch)
            store.write(dec.logs(_severity_logs(50, t, 17, "signing failed").SerializeToString()).batch)
        assert (tmp_path / "d" / "logs_r120").is_dir()
        before = sum(f.stat().st_size for f in (tmp_path / "d").rglob("*") if f.is_file())
        assert store.enforce_retention(now) == 1  # the old debug partition only
        after = sum(f.stat().st_size for f in (tmp_path / "d").rglob("*") if f.is_file())
        assert after < before - 100_000, (before, after)  # the debug lines were most of the data
        assert len(list((tmp_path / "d" / "logs_r120").glob("*Z.db"))) == 1
        assert len(list((tmp_path / "d" / "logs").glob("*Z.db"))) == 2
        found = store.search_logs(LogQuery(limit=10_000)).records
        assert sum(r.severity_number == 17 for r in found) == 100  # old and new errors kept
        assert sum(r.severity_number == 5 for r in found) == 2000  # only the recent debug lines
    finally:
        store.close()
    # the layout is read back as written: a restart without the setting still finds both tiers
    again = SQLiteStore(SQLiteOptions(data_dir=tmp_path / "d", partition_seconds=60,
                                      retention_seconds={"spans": 3600, "logs": 3600, "metrics": 3600}))
    again.start()
    try:
        assert len(again.search_logs(LogQuery(limit=10_000)).records) == 2100
    finally:
        again.close()


@pytest.mark.parametrize("newest_first", [True, False])
def test_search_across_severity_tiers_pages_in_order_without_gaps(tmp_path: Path, newest_first: bool) -> None:
    opts = SQLiteOptions(data_dir=tmp_path / "d",
                         log_retention_by_severity={"debug": 7 * 86400, "error": 90 * 86400})
    store = SQLiteStore(opts)
    store.start()
    try:
        dec = decoder()
        t0 = time.time_ns() - 10**9
        # three tiers, timestamps interleaved: debug at t0+3k, info at t0+3k+1, error at t0+3k+2
        for sev, offset in ((5, 0), (9, 1), (17, 2)):
            req = _severity_logs(120, t0, sev, f"s{sev} event")
            for k, r in enumerate(req.resource_logs[0].scope_logs[0].log_records):
                r.time_unix_nano = t0 + 3 * k + offset
            store.write(dec.logs(req.SerializeToString()).batch)
        expected = sorted(((t0 + 3 * k + off, sev) for sev, off in ((5, 0), (9, 1), (17, 2)) for k in range(120)),
                          reverse=newest_first)
        got, cursor = [], None
        while True:
            page = store.search_logs(LogQuery(limit=37, cursor=cursor, newest_first=newest_first))
            got.extend((r.time_ns, r.severity_number) for r in page.records)
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        assert got == expected
        errors = store.search_logs(LogQuery(limit=1000, severity_ranges=[(17, 20)], terms=["event"])).records
        assert len(errors) == 120
        window = store.log_window_counts([], np.array([t0 + 10**9]), 2 * 10**9)
        assert sum(int(w.counts.sum()) for w in window) == 360
    finally:
        store.close()


def test_records_carry_the_template_id_the_miner_attached_and_are_found_by_it(store) -> None:
    dec = decoder()
    t0 = time.time_ns() - 10**9
    batch = dec.logs(log_request(300, service="a", time_ns=t0, body="event {i}").SerializeToString()).batch
    other = dec.logs(log_request(50, service="b", time_ns=t0, body="other {i}").SerializeToString()).batch
    store.write(batch)
    store.write(other)
    assert batch.placed and not store.search_logs(LogQuery(limit=1)).records[0].template_id
    ids = ["00000000000000a1" if i % 3 else "00000000000000b2" for i in range(len(batch))]
    store.set_log_templates(batch, ids)
    store.maintain_now()  # runs after the queued template write, on the writer thread
    found = store.search_logs(LogQuery(limit=1000, services=["a"])).records
    assert {r.template_id for r in found} == {"00000000000000a1", "00000000000000b2"}
    by_body = {r.body: r.template_id for r in found}
    assert by_body["event 3"] == "00000000000000b2" and by_body["event 4"] == "00000000000000a1"
    query = parse_search("template:00000000000000b2")
    query.limit = 1000
    assert len(store.search_logs(query).records) == 100
    assert all(r.template_id == "" for r in store.search_logs(LogQuery(limit=100, services=["b"])).records)
