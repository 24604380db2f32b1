"""The embedded store: SQLite files under one data directory.

```
data/
  index.db                     series ids, label postings, metric metadata
  spans/20261128T000000Z.db    one file per signal and time window
  logs/20261128T000000Z.db     (+ .fts.db: the full-text index, written by the indexer)
  metrics/20261128T000000Z.db
```

One writer thread owns every write connection and commits in groups: whatever batches queued
while the previous commit ran go into the next transaction (group commit). Each batch's
future completes only after the transactions holding it have committed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pantau.logs.audit import AuditEntry
from pantau.model import Labels, LogBatch, MetricMetadata, SampleBatch, Span, SpanBatch
from pantau.store.base import (
    CommitListener,
    DependencyLink,
    Event,
    EventQuery,
    LogPage,
    LogQuery,
    LogStreamTimes,
    LogWindowCounts,
    Matcher,
    Operation,
    RollupSeries,
    SampleColumns,
    SeriesSamples,
    Store,
    StoreError,
    StoreStats,
    TraceQuery,
    WriteBatch,
)
from pantau.store.sqlite import logs as log_store
from pantau.store.sqlite import rollups
from pantau.store.sqlite import samples as sample_store
from pantau.store.sqlite import spans as span_store
from pantau.store.sqlite.archive import ARCHIVED_SIGNALS, Archiver
from pantau.store.sqlite.audit import AuditChain, read_chain
from pantau.store.sqlite.db import connect_writer
from pantau.store.sqlite.events import EventStore
from pantau.store.sqlite.indexer import IndexerProcess
from pantau.store.sqlite.partitions import Partition, PartitionSet, ReaderPool
from pantau.store.sqlite.queue import WriteQueue
from pantau.store.sqlite.series import SeriesIndex
from pantau.store.sqlite.tiered_logs import TieredLogReader
from pantau.store.sqlite.tiers import SeverityTiers, is_log_signal
from pantau.store.sqlite.trace_keys import TraceKeyIndex

log = logging.getLogger("pantau.store")

DAY_S = 86_400
SIGNALS = ("spans", "logs", "metrics", "metrics_1m", "metrics_1h")
DEFAULT_RETENTION_DAYS = {"spans": 30, "logs": 30, "metrics": 30, "metrics_1m": 90, "metrics_1h": 365}
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))


@dataclass
class SQLiteOptions:
    data_dir: Path
    partition_seconds: int = DAY_S
    retention_seconds: dict[str, int] = field(
        default_factory=lambda: {s: days * DAY_S for s, days in DEFAULT_RETENTION_DAYS.items()})
    queue_capacity: int = 1_000_000
    max_commit_items: int = 100_000
    synchronous: str = "NORMAL"
    maintenance_interval_s: float = 1.0
    retention_interval_s: float = 300.0
    # Where expiring span and log partitions are written as Parquet before they are dropped.
    archive_dir: Path | None = None
    # Log retention per severity class ("debug": 7 days, "error": 365 days...), in seconds.
    log_retention_by_severity: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        defaults = {s: days * DAY_S for s, days in DEFAULT_RETENTION_DAYS.items()}
        self.retention_seconds = {**defaults, **self.retention_seconds}


class SQLiteStore(Store):
    def __init__(self, options: SQLiteOptions) -> None:
        self.options = options
        self.root = Path(options.data_dir)
        self.root.mkdir(parents=True, exist_ok=True)
        dur = options.partition_seconds * 1_000_000_000
        self.log_tiers = SeverityTiers(self.options.retention_seconds["logs"],
                                       options.log_retention_by_severity, self.root)
        self.parts = {s: PartitionSet(self.root, s, dur) for s in SIGNALS}
        for signal in self.log_tiers.signals:
            self.parts.setdefault(signal, PartitionSet(self.root, signal, dur))
        self.log_signals = self.log_tiers.signals
        self.pool = ReaderPool()
        self.series = SeriesIndex(self.root / "index.db", options.synchronous)
        self.events = EventStore(self.root / "state.db", options.synchronous)
        self.audit = AuditChain(self.root / "audit.db", options.synchronous)
        self.queue = WriteQueue(options.queue_capacity)
        self.span_reader = span_store.SpanReader(self.parts["spans"], self.pool)
        self.log_readers = {s: log_store.LogReader(self.parts[s], self.pool) for s in self.log_signals}
        readers = list(self.log_readers.values())
        self.log_reader: log_store.LogReader | TieredLogReader = (
            readers[0] if len(readers) == 1 else TieredLogReader(readers))
        self.sample_reader = sample_store.SampleReader(self.parts["metrics"], self.pool)
        self.indexer = IndexerProcess(self.root)
        self.archiver: Archiver | None = None
        if options.archive_dir is not None:
            pages = {s: reader.partition_records for s, reader in self.log_readers.items()}
            pages["spans"] = self.span_reader.partition_spans
            self.archiver = Archiver(Path(options.archive_dir), pages,
                                     lambda part: self.parts[part.signal].delete_files(part))
        self._listeners: list[CommitListener] = []
        self._writer = threading.Thread(target=self._run, name="pantau-writer", daemon=True)
        self._started = False
        self._closed = False
        self._stats = StoreStats(queue_capacity=options.queue_capacity,
                                 commit_seconds_buckets=dict.fromkeys(COMMIT_BUCKETS, 0))
        self._written: dict[str, int] = defaultdict(int)
        self._last_retention = 0.0
        self._last_write = self._last_trim = 0.0

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        if self._started:
            return
        self._apply_retention(time.time_ns())  # what expired while pantau was down
        for signal, parts in self.parts.items():
            for part in parts.list(newest_first=False):
                self._init_partition(signal, part)
        self._started = True
        self._writer.start()
        self.indexer.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.queue.close()
        if self._writer.is_alive():
            self._writer.join()
        self.indexer.stop()
        if self.archiver is not None:
            self.archiver.close()
        for parts in self.parts.values():
            for part in parts.list():
                if part.state is not None:
                    part.state.conn.close()
        self.series.close()
        self.events.close()
        self.audit.close()
        self.pool.close_thread()

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    # --- writes ------------------------------------------------------------------------------

    def submit(self, batch: WriteBatch) -> Future[None]:
        if not self._started:
            raise StoreError("store not started")
        return self.queue.put(batch, max(len(batch), 1))

    def _init_partition(self, signal: str, part: Partition) -> None:
        conn = connect_writer(part.path, synchronous=self.options.synchronous)
        if signal == "spans":
            part.state = span_store.open_partition(conn, span_store.new_index())
        elif is_log_signal(signal):
            part.state = log_store.open_partition(conn, part.path, log_store.new_index())
            part.extra_files = [log_store.fts_path(part.path)]
        elif signal == "metrics":
            part.state = sample_store.open_partition(conn)
        else:
            part.state = rollups.open_partition(conn)

    def _partition(self, signal: str, key: int) -> Partition:
        return self.parts[signal].get_or_create(key, lambda p: self._init_partition(signal, p))

    def _run(self) -> None:
        last_maintenance = 0.0
        while True:
            items = self.queue.take(self.options.max_commit_items, timeout=0.2)
            if items:
                self._process(items)
            now = time.monotonic()
            if now - last_maintenance >= self.options.maintenance_interval_s:
                last_maintenance = now
                self._guarded(self._maintain)
            if self.queue.closed and self.queue.empty:
                break
        self._guarded(lambda: self._maintain(final=True))

    def _guarded(self, action) -> None:
        try:
            action()
        except Exception:  # the writer must survive anything a maintenance step throws
            log.exception("store maintenance failed")

    def _process(self, items: list) -> None:
        self._last_write = time.monotonic()
        writes = [(batch, size, fut) for batch, size, fut in items if size]
        if writes:
            started = time.perf_counter()
            failures = self._commit_group([w[0] for w in writes])
            elapsed = time.perf_counter() - started
            self._record_commit(elapsed)
            for i, (batch, size, fut) in enumerate(writes):
                self.queue.done(size)
                if i in failures:
                    fut.set_exception(failures[i])
                else:
                    self._written[_signal_of(batch)] += len(batch)
                    fut.set_result(None)
            for i, (batch, _, _) in enumerate(writes):
                if i not in failures:
                    for listener in self._listeners:
                        try:
                            listener(batch)
                        except Exception:
                            log.exception("commit listener failed")
        for action, size, fut in items:
            if size == 0:
                try:
                    fut.set_result(action())
                except Exception as exc:
                    fut.set_exception(exc)

    def _commit_group(self, batches: list[WriteBatch]) -> dict[int, Exception]:
        """Write a group of batches, one transaction per touched file. Returns failures by index."""
        failures: dict[int, Exception] = {}
        # (signal, partition key) -> list of (batch index, batch, rows or None)
        groups: dict[tuple[str, int], list[tuple[int, WriteBatch, list[int] | None]]] = defaultdict(list)
        sample_groups: dict[int, list[tuple[int, np.ndarray, np.ndarray, np.ndarray]]] = defaultdict(list)
        sample_batches = [(i, b) for i, b in enumerate(batches) if isinstance(b, SampleBatch)]
        if sample_batches:
            try:
                self._resolve_series(sample_batches, sample_groups)
            except Exception as exc:
                log.exception("series index write failed")
                for i, _ in sample_batches:
                    failures[i] = _wrap(exc)
                sample_groups.clear()
        for i, batch in enumerate(batches):
            if isinstance(batch, SampleBatch):
                continue
            signal = _signal_of(batch)
            times = batch.start_ns if isinstance(batch, SpanBatch) else batch.time_ns
            for key, rows in _split(times, self.parts[signal].duration_ns):
                if isinstance(batch, LogBatch):
                    for tier, tier_rows in self.log_tiers.split(batch.severity_number, rows):
                        groups[(tier, key)].append((i, batch, tier_rows))
                else:
                    groups[(signal, key)].append((i, batch, rows))
        for (signal, key), members in groups.items():
            part = self._partition(signal, key)
            ok = self._transaction(part, lambda p=part, m=members: self._write_rows(p, m))
            if ok is not None:
                for i, _, _ in members:
                    failures[i] = ok
        audit = [(i, b.audit) for i, b in enumerate(batches)
                 if isinstance(b, LogBatch) and b.audit and i not in failures]
        if audit:
            try:
                self.audit.append([entry for _, entries in audit for entry in entries])
            except Exception as exc:
                log.error("audit chain write failed: %s", exc)
                for i, _ in audit:
                    failures[i] = _wrap(exc)
        for key, members in sample_groups.items():
            part = self._partition("metrics", key)
            state: sample_store.SamplePartition = part.state

            def write_samples(state=state, members=members) -> None:
                sids = np.concatenate([m[1] for m in members])
                ts = np.concatenate([m[2] for m in members])
                vals = np.concatenate([m[3] for m in members])
                sample_store.write(state, sids, ts, vals)

            err = self._transaction(part, write_samples)
            if err is None:
                sample_store.committed(state)
            else:
                sample_store.rolled_back(state)
                for i, *_ in members:
                    failures[i] = err
        return failures

    def _write_rows(self, part: Partition, members) -> None:
        if part.signal == "spans":
            for _, batch, rows in members:
                span_store.write(part.state, batch, rows)
            return
        for _, batch, rows in members:
            for block, idx in log_store.write(part.state, batch, rows):
                batch.placed.append((part.signal, part.key, block, idx))

    def _transaction(self, part: Partition, body) -> Exception | None:
        conn = part.state.conn
        next_id = getattr(part.state, "next_id", None)
        try:
            conn.execute("BEGIN")
            body()
            conn.execute("COMMIT")
            return None
        except Exception as exc:
            log.error("write to %s failed: %s", part.path, exc)
            try:
                conn.execute("ROLLBACK")
            except Exception:
                pass
            if next_id is not None:
                part.state.next_id = next_id
            return _wrap(exc)

    def _resolve_series(self, sample_batches, sample_groups) -> None:
        """Series ids of every sample; new series (and changed metadata) are written to the
        index first, in their own transaction, so samples never refer to unknown series."""
        index = self.series
        known = index.ids.get
        resolved = [[known(key) for key in batch.series_key] for _, batch in sample_batches]
        missing: dict[str, Labels] = {}
        metadata: dict[str, MetricMetadata] = {}
        for (_, batch), ids in zip(sample_batches, resolved, strict=True):
            if None in ids:
                missing.update((k, lab) for k, lab, sid in zip(batch.series_key, batch.series, ids, strict=True)
                               if sid is None)
            metadata.update(batch.metadata)
        if missing or index.metadata_changed(metadata.values()):
            conn = index.conn
            conn.execute("BEGIN")
            try:
                created = index.resolve(missing)
                index.set_metadata(metadata.values())
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                index.rolled_back()
                raise
            index.committed()
            for (_, batch), ids in zip(sample_batches, resolved, strict=True):
                if None in ids:
                    ids[:] = [created[k] if sid is None else sid
                              for k, sid in zip(batch.series_key, ids, strict=True)]
        dur_ms = self.parts["metrics"].duration_ns // 1_000_000
        for (i, batch), ids in zip(sample_batches, resolved, strict=True):
            if not len(batch):
                continue
            sids = np.asarray(ids, dtype=np.int64)[np.asarray(batch.ref, dtype=np.int64)]
            ts = np.asarray(batch.timestamp_ms, dtype=np.int64)
            vals = np.asarray(batch.value, dtype=np.float64)
            keys = ts // dur_ms
            first = int(keys[0])
            if (keys == first).all():
                sample_groups[first].append((i, sids, ts, vals))
            else:
                for key in np.unique(keys).tolist():
                    sel = keys == key
                    sample_groups[key].append((i, sids[sel], ts[sel], vals[sel]))

    def _record_commit(self, seconds: float) -> None:
        s = self._stats
        s.commits += 1
        s.commit_seconds_total += seconds
        for bound in COMMIT_BUCKETS:
            if seconds <= bound:
                s.commit_seconds_buckets[bound] += 1

    # --- maintenance -------------------------------------------------------------------------

    def _maintain(self, final: bool = False) -> None:
        for signal in ("spans", *self.log_signals):
            for part in self.parts[signal].list():
                keys: TraceKeyIndex = part.state.keys
                if keys.needs_flush:
                    self._flush_keys(part, keys)
        for part in self.parts["metrics"].list():
            state = part.state
            if sample_store.should_cut(state, force=final):
                self._seal(part, state)
        if not final and time.monotonic() - self._last_retention >= self.options.retention_interval_s:
            self._apply_retention(time.time_ns())
        now = time.monotonic()
        if not final and now - self._last_write > 5 and now - self._last_trim > 10:
            _release_free_memory()
            self._last_trim = now
        if not final:
            self.indexer.ensure_running()

    def _seal(self, part: Partition, state: sample_store.SamplePartition) -> None:
        """Seal the head of a metrics partition: downsampled rows first (keyed by this cut, so
        a retry after a crash replaces them), then the chunks, each in its own transaction."""
        cut = sample_store.prepare_cut(state)
        if cut is None:
            return
        for name in rollups.RESOLUTIONS:
            touched = rollups.write_cut(self.parts[name], name, part.key, cut.number, cut.sids, cut.ts,
                                        cut.values, cut.starts, cut.ends, self._partition)
            for rollup_part in touched:
                rollup_part.state.conn.execute("COMMIT")
        if self._transaction(part, lambda: sample_store.write_cut(state, cut)) is None:
            sample_store.sealed(state)

    def _flush_keys(self, part: Partition, keys: TraceKeyIndex) -> None:
        conn = part.state.conn

        def body() -> None:
            keys.flush(conn)

        if self._transaction(part, body) is None:
            keys.flushed()
            self._transaction(part, lambda: keys.compact(conn))

    def _apply_retention(self, now_ns: int) -> int:
        self._last_retention = time.monotonic()
        longest = max(*self.options.retention_seconds.values(), *map(self.log_tiers.retention_s, self.log_signals))
        self.events.drop_events_before(now_ns - longest * 1_000_000_000)
        dropped = 0
        for signal, parts in self.parts.items():
            retention_s = (self.log_tiers.retention_s(signal) if is_log_signal(signal)
                           else self.options.retention_seconds[signal])
            horizon = now_ns - retention_s * 1_000_000_000
            for part in parts.list():
                if part.end_ns <= horizon:
                    parts.remove(part)
                    if part.state is not None:
                        part.state.conn.close()
                        part.state = None
                    self.pool.mark_dropped(part.path)
                    for extra in part.extra_files:
                        self.pool.mark_dropped(extra)
                    dropped += 1
                    if self.archiver is not None and (signal in ARCHIVED_SIGNALS or is_log_signal(signal)):
                        self.archiver.submit(part)  # deletes the files once archived
                        continue
                    parts.delete_files(part)
                    log.info("retention: dropped %s partition %s", signal, part.path.name)
        return dropped

    def enforce_retention(self, now_ns: int) -> int:
        return self.queue.put_control(lambda: self._apply_retention(now_ns)).result()

    def maintain_now(self, final: bool = False) -> None:
        """Run the writer's maintenance (key flushes, head cuts) now; for tests and tools."""
        self.queue.put_control(lambda: self._maintain(final=final)).result()

    # --- reads -------------------------------------------------------------------------------

    def get_trace(self, trace_id: bytes, start_ns: int | None = None,
                  end_ns: int | None = None) -> list[Span]:
        return self.span_reader.get_trace(trace_id, start_ns, end_ns)

    def find_trace_ids(self, query: TraceQuery) -> list[bytes]:
        return self.span_reader.find_trace_ids(query)

    def services(self) -> list[str]:
        return self.span_reader.services()

    def operations(self, service: str, span_kind: int | None = None) -> list[Operation]:
        return self.span_reader.operations(service, span_kind)

    def dependencies(self, start_ns: int, end_ns: int) -> list[DependencyLink]:
        return self.span_reader.dependencies(start_ns, end_ns)

    def search_logs(self, query: LogQuery) -> LogPage:
        return self.log_reader.search(query)

    def log_stream_times(self, query: LogQuery) -> list[LogStreamTimes]:
        return self.log_reader.stream_times(query)

    def log_window_counts(self, stream: Sequence[Matcher], ends_ns: np.ndarray, range_ns: int) -> list[LogWindowCounts]:
        services = [m.value for m in stream if m.name == "service_name" and m.op == "="]
        return self.log_reader.window_counts(LogQuery(stream=list(stream), services=services), ends_ns, range_ns)

    def log_streams(self, stream: Sequence[Matcher], start_ns: int | None, end_ns: int | None) -> list[Labels]:
        return self.log_reader.streams(stream, start_ns, end_ns)

    def _matching_ids(self, matchers: Sequence[Matcher], start_ms: int | None,
                      end_ms: int | None) -> list[int]:
        ids = self.series.match(matchers) if matchers else self.series.all_ids()
        present = self.sample_reader.series_ids(start_ms, end_ms)
        return [i for i in ids if i in present]

    def select_series(self, matchers: Sequence[Matcher], start_ms: int | None = None,
                      end_ms: int | None = None) -> list[Labels]:
        return sorted(self.series.labels_of(self._matching_ids(matchers, start_ms, end_ms)))

    def label_names(self, matchers: Sequence[Matcher] = (), start_ms: int | None = None,
                    end_ms: int | None = None) -> list[str]:
        names: set[str] = set()
        for labels in self.series.labels_of(self._matching_ids(matchers, start_ms, end_ms)):
            names.update(k for k, _ in labels)
        return sorted(names)

    def label_values(self, name: str, matchers: Sequence[Matcher] = (),
                     start_ms: int | None = None, end_ms: int | None = None) -> list[str]:
        values: set[str] = set()
        for labels in self.series.labels_of(self._matching_ids(matchers, start_ms, end_ms)):
            values.update(v for k, v in labels if k == name)
        return sorted(values)

    def select_samples(self, matchers: Sequence[Matcher], start_ms: int,
                       end_ms: int) -> list[SeriesSamples]:
        out = self._columns(matchers, start_ms, end_ms).series()  # views, in series id order
        out.sort(key=lambda s: s.labels)
        return out

    def select_sample_columns(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> SampleColumns:
        return self._columns(matchers, start_ms, end_ms).sorted()

    def _columns(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> SampleColumns:
        ids = self._matching_ids(matchers, start_ms, end_ms)
        sids, offsets, ts, vals = self.sample_reader.select_columns(ids, start_ms, end_ms)
        labels = self.series.labels
        return SampleColumns([labels[sid] for sid in sids.tolist()], offsets, ts, vals)

    def select_rollups(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int,
                       resolution_ms: int) -> list[RollupSeries]:
        name = next((n for n, r in rollups.RESOLUTIONS.items() if r == resolution_ms), None)
        if name is None:
            raise StoreError(f"no downsampled data at {resolution_ms} ms resolution")
        ids = self._matching_ids(matchers, start_ms, end_ms)
        if not ids:  # series whose raw partitions are gone may live on in rollups
            ids = self.series.match(matchers) if matchers else self.series.all_ids()
        data = self.sample_reader.select_rollups(ids, start_ms, end_ms, self.parts[name], resolution_ms)
        out = [RollupSeries(self.series.labels[sid], rows["bucket"], rows["count"], rows["sum"], rows["min"],
                            rows["max"], rows["first"], rows["first_ts"], rows["last"], rows["last_ts"], rows["inc"])
               for sid, rows in data.items() if len(rows["bucket"])]
        out.sort(key=lambda s: s.labels)
        return out

    def metadata(self, metric: str | None = None) -> dict[str, list[MetricMetadata]]:
        return self.series.metadata(metric)

    def _index_lag(self) -> int:
        """Log blocks committed but not yet in the full-text index (searched by scan meanwhile)."""
        lag = 0
        for part in (p for s in self.log_signals for p in self.parts[s].list()):
            if part.state is None:
                continue
            try:
                conn = self.pool.get(log_store.fts_path(part.path))
                upto = conn.execute("SELECT v FROM fts_meta WHERE k = 'upto_block'").fetchone()[0]
            except Exception:
                continue
            lag += max(0, part.state.next_block - 1 - upto)
        return lag

    def audit_chain(self) -> Iterator[AuditEntry]:
        return read_chain(self.root / "audit.db")

    def set_log_templates(self, batch: LogBatch, template_ids: Sequence[str]) -> None:
        placed = list(batch.placed)
        if not placed:
            return

        def write() -> None:
            for signal, key, block, rows in placed:
                part = self.parts[signal].get(key)
                if part is None or part.state is None:
                    continue  # dropped by retention meanwhile
                ids = list(template_ids) if rows is None else [template_ids[i] for i in rows]
                self._transaction(part, lambda p=part, b=block, t=ids: log_store.write_templates(p.state, b, t))

        try:
            self.queue.put_control(write)
        except StoreError:
            pass  # shutting down: the records stay stored, only without their template id

    # --- events and state ----------------------------------------------------------------------

    def put_event(self, event: Event) -> str:
        return self.events.put_event(event)

    def get_event(self, event_id: str) -> Event | None:
        return self.events.get_event(event_id)

    def find_events(self, query: EventQuery) -> list[Event]:
        return self.events.find_events(query)

    def put_state(self, namespace: str, key: str, value: bytes) -> None:
        self.events.put_state(namespace, key, value)

    def put_states(self, namespace: str, items: dict[str, bytes | None]) -> None:
        self.events.put_states(namespace, items)

    def get_state(self, namespace: str, key: str) -> bytes | None:
        return self.events.get_state(namespace, key)

    def list_state(self, namespace: str) -> dict[str, bytes]:
        return self.events.list_state(namespace)

    def delete_state(self, namespace: str, key: str) -> None:
        self.events.delete_state(namespace, key)

    def stats(self) -> StoreStats:
        s = self._stats
        s.queue_items = self.queue.held
        s.written_by_signal = dict(self._written)
        s.bytes_by_signal, s.partitions_by_signal = defaultdict(int), defaultdict(int)
        for sig, parts in self.parts.items():
            name = "logs" if is_log_signal(sig) else sig  # retention tiers count as logs
            s.bytes_by_signal[name] += parts.size
            s.partitions_by_signal[name] += len(parts.list())
        s.bytes_by_signal["index"] = self.series.path.stat().st_size if self.series.path.exists() else 0
        s.log_index_lag = self._index_lag()
        return s


def _release_free_memory() -> None:
    """Hand memory freed after a burst back to the system (glibc keeps it otherwise)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _signal_of(batch: WriteBatch) -> str:
    if isinstance(batch, SpanBatch):
        return "spans"
    if isinstance(batch, LogBatch):
        return "logs"
    return "metrics"


def _split(times: list[int], duration_ns: int) -> list[tuple[int, list[int] | None]]:
    """Partition keys of a batch's rows: the whole batch when they share one (the usual case)."""
    if not times:
        return []
    first = times[0] // duration_ns
    lo, hi = min(times) // duration_ns, max(times) // duration_ns
    if lo == hi:
        return [(first, None)]
    rows: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(times):
        rows[t // duration_ns].append(i)
    return list(rows.items())


def _wrap(exc: Exception) -> Exception:
    return exc if isinstance(exc, StoreError) else StoreError(f"storage write failed: {exc}")
