"""Samples in SQLite, shaped like Prometheus's TSDB.

* Each write batch is committed as one row of a write-ahead table (`sample_wal`): one
  INSERT per batch instead of one per sample.
* The same samples are kept in memory (the head) as NumPy arrays.
* Now and then the head is cut: samples are sorted by series and time and sealed into one
  compressed chunk per series (`chunks`), and the write-ahead rows they came from are
  deleted, all in one transaction.
* After a crash, the write-ahead rows still present are the head: reading them back is the
  whole recovery.

Readers see a consistent picture without locking the writer: their snapshot says which
write-ahead rows were already sealed; newer samples come from the head in memory or, if the
head has moved on since the snapshot, from the write-ahead rows the snapshot still holds.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from pantau.store.sqlite import chunks, rollups
from pantau.store.sqlite.partitions import Partition, PartitionSet, ReaderPool

SCHEMA = """
CREATE TABLE IF NOT EXISTS sample_wal(id INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunks(
    series_id INTEGER NOT NULL, t_min INTEGER NOT NULL, cut INTEGER NOT NULL,
    t_max INTEGER NOT NULL, n INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY(series_id, t_min, cut)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partition_series(series_id INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS sample_meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO sample_meta VALUES ('sealed_upto', 0);
INSERT OR IGNORE INTO sample_meta VALUES ('cuts', 0);
"""

HEAD_MAX_SAMPLES = 1_000_000
HEAD_MAX_AGE_S = 30 * 60
IDLE_CUT_S = 5 * 60
_IN_CHUNK = 500


# A head entry: (WAL id, series ids, timestamps, values, (oldest, newest timestamp)). The time
# bounds let a reader of a recent window skip whole batches instead of filtering their samples.
HeadEntry = tuple[int, np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]


@dataclass
class Head:
    """Samples written but not yet sealed into chunks. Shared by the writer and readers."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    entries: list[HeadEntry] = field(default_factory=list)
    base: int = 0  # every WAL row with id > base is in `entries`
    samples: int = 0
    series: set[int] = field(default_factory=set)
    first_write: float = 0.0
    last_write: float = 0.0

    def add(self, wal_id: int, sids: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> None:
        now = time.monotonic()
        bounds = (int(ts.min()), int(ts.max())) if len(ts) else (0, -1)
        with self.lock:
            self.entries.append((wal_id, sids, ts, vals, bounds))
            self.samples += len(sids)
            self.series.update(np.unique(sids).tolist())
            if not self.first_write:
                self.first_write = now
            self.last_write = now

    def snapshot(self) -> tuple[int, list[HeadEntry], set[int]]:
        with self.lock:
            return self.base, list(self.entries), set(self.series)

    def entries_snapshot(self) -> tuple[int, list[HeadEntry]]:
        """`snapshot` without the copy of the series set (readers of samples do not need it)."""
        with self.lock:
            return self.base, list(self.entries)

    def add_series_to(self, out: set[int]) -> None:
        """Add the head's series ids to `out` (no copy of the set in between)."""
        with self.lock:
            out |= self.series

    def drop_upto(self, wal_id: int) -> None:
        with self.lock:
            self.entries = [e for e in self.entries if e[0] > wal_id]
            self.base = max(self.base, wal_id)
            self.samples = sum(len(e[1]) for e in self.entries)
            self.series = set()
            for e in self.entries:
                self.series.update(np.unique(e[1]).tolist())
            self.first_write = time.monotonic() if self.entries else 0.0


@dataclass
class SamplePartition:
    conn: sqlite3.Connection
    head: Head
    next_wal: int
    cuts: int
    known_series: set[int]
    pending: list[tuple[int, np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)


def open_partition(conn: sqlite3.Connection) -> SamplePartition:
    conn.executescript(SCHEMA)
    sealed = conn.execute("SELECT v FROM sample_meta WHERE k = 'sealed_upto'").fetchone()[0]
    cuts = conn.execute("SELECT v FROM sample_meta WHERE k = 'cuts'").fetchone()[0]
    head = Head(base=sealed)
    last = sealed
    for wal_id, blob in conn.execute("SELECT id, data FROM sample_wal WHERE id > ? ORDER BY id", (sealed,)):
        head.add(wal_id, *chunks.unpack_wal(blob))
        last = wal_id
    known = {r[0] for r in conn.execute("SELECT series_id FROM partition_series")}
    return SamplePartition(conn, head, last + 1, cuts, known)


def write(state: SamplePartition, sids: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> None:
    """Append samples to the write-ahead table inside the caller's transaction."""
    wal_id = state.next_wal
    state.conn.execute("INSERT INTO sample_wal(id, data) VALUES (?, ?)",
                       (wal_id, chunks.pack_wal(sids, ts, vals)))
    state.next_wal = wal_id + 1
    state.pending.append((wal_id, sids, ts, vals))


def committed(state: SamplePartition) -> None:
    for entry in state.pending:
        state.head.add(*entry)
    state.pending.clear()


def rolled_back(state: SamplePartition) -> None:
    if state.pending:
        state.next_wal = state.pending[0][0]
    state.pending.clear()


def should_cut(state: SamplePartition, *, force: bool = False) -> bool:
    head = state.head
    if not head.entries:
        return False
    if force or head.samples >= HEAD_MAX_SAMPLES:
        return True
    now = time.monotonic()
    return now - head.first_write >= HEAD_MAX_AGE_S or now - head.last_write >= IDLE_CUT_S


def _merge(parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> tuple[np.ndarray, ...]:
    """Concatenate (sid, ts, value) arrays in write order; sort by series and time; where one
    series has several values at one timestamp, keep the last written (a client's retry)."""
    sids = np.concatenate([p[0] for p in parts])
    ts = np.concatenate([p[1] for p in parts])
    vals = np.concatenate([p[2] for p in parts])
    order = np.lexsort((np.arange(len(sids)), ts, sids))
    sids, ts, vals = sids[order], ts[order], vals[order]
    if len(sids) > 1:
        keep = np.ones(len(sids), dtype=bool)
        keep[:-1] = (sids[1:] != sids[:-1]) | (ts[1:] != ts[:-1])
        sids, ts, vals = sids[keep], ts[keep], vals[keep]
    return sids, ts, vals


def _merge_blocks(sids: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, ...]:
    """Blocks laid end to end in write order, each sorted by series then time, into one: a
    stable sort by series (a merge of a few sorted runs) puts each series' pieces together in
    write order; only the series whose pieces then overlap in time are sorted by time (chunks
    of several cuts, or chunks and the head, rarely overlap). One `lexsort` of every sample
    read made a day's range query over 1,000 series twice as slow."""
    if len(sids) > 1 and (sids[1:] < sids[:-1]).any():
        order = np.argsort(sids, kind="stable")
        sids, ts, vals = sids[order], ts[order], vals[order]
    if len(sids) < 2:
        return sids, ts, vals
    bad = (sids[1:] == sids[:-1]) & (ts[1:] <= ts[:-1])
    if not bad.any():
        return sids, ts, vals
    mixed = np.isin(sids, np.unique(sids[1:][bad]))
    m_sids, m_ts, m_vals = _merge([(sids[mixed], ts[mixed], vals[mixed])])
    keep = ~mixed
    sids = np.concatenate((sids[keep], m_sids))
    order = np.argsort(sids, kind="stable")
    return sids[order], np.concatenate((ts[keep], m_ts))[order], np.concatenate((vals[keep], m_vals))[order]


@dataclass
class Cut:
    """The head's samples, merged and sorted by series then time, ready to be sealed."""

    upto: int  # last WAL id included
    number: int
    sids: np.ndarray
    ts: np.ndarray
    values: np.ndarray
    starts: np.ndarray  # per series: first index
    ends: np.ndarray  # per series: one past the last index


def prepare_cut(state: SamplePartition) -> Cut | None:
    _, entries, _ = state.head.snapshot()
    if not entries:
        return None
    sids, ts, vals = _merge([(e[1], e[2], e[3]) for e in entries])
    bounds = np.flatnonzero(np.diff(sids)) + 1
    return Cut(entries[-1][0], state.cuts + 1, sids, ts, vals, np.concatenate(([0], bounds)),
               np.concatenate((bounds, [len(sids)])))


def write_cut(state: SamplePartition, cut: Cut) -> None:
    """Seal a prepared cut into chunks (inside the caller's transaction); call `sealed` after
    the commit."""
    sids, ts, vals = cut.sids, cut.ts, cut.values
    conn = state.conn
    blobs = chunks.encode_many(ts, vals, cut.starts, cut.ends)
    last = cut.ends - 1
    conn.executemany(
        "INSERT INTO chunks(series_id, t_min, cut, t_max, n, data) VALUES (?,?,?,?,?,?)",
        zip(sids[cut.starts].tolist(), ts[cut.starts].tolist(), [cut.number] * len(blobs), ts[last].tolist(),
            (cut.ends - cut.starts).tolist(), blobs, strict=True))
    new_series = set(np.unique(sids).tolist()) - state.known_series
    if new_series:
        conn.executemany("INSERT OR IGNORE INTO partition_series VALUES (?)", ((s,) for s in new_series))
    conn.execute("DELETE FROM sample_wal WHERE id <= ?", (cut.upto,))
    conn.execute("UPDATE sample_meta SET v = ? WHERE k = 'sealed_upto'", (cut.upto,))
    conn.execute("UPDATE sample_meta SET v = ? WHERE k = 'cuts'", (cut.number,))
    state._cut_pending = (cut.upto, cut.number, new_series)  # type: ignore[attr-defined]


def sealed(state: SamplePartition) -> None:
    upto, cut_no, new_series = state._cut_pending  # type: ignore[attr-defined]
    state.cuts = cut_no
    state.known_series |= new_series
    state.head.drop_upto(upto)


# --- reads -----------------------------------------------------------------------------------


class SampleReader:
    def __init__(self, parts: PartitionSet, pool: ReaderPool) -> None:
        self.parts = parts
        self.pool = pool

    def series_ids(self, start_ms: int | None, end_ms: int | None) -> set[int]:
        """Series with at least one sample in a partition overlapping the range."""
        out: set[int] = set()
        for part in self._parts(start_ms, end_ms):
            state: SamplePartition = part.state
            out |= state.known_series
            state.head.add_series_to(out)
        return out

    def _parts(self, start_ms: int | None, end_ms: int | None) -> list[Partition]:
        start_ns = None if start_ms is None else start_ms * 1_000_000
        end_ns = None if end_ms is None else end_ms * 1_000_000 + 999_999
        return [p for p in self.parts.list(start_ns, end_ns, newest_first=False) if p.state is not None]

    def select(self, ids: Iterable[int], start_ms: int, end_ms: int
               ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        sids, offsets, ts, vals = self.select_columns(ids, start_ms, end_ms)
        o = offsets.tolist()
        return {sid: (ts[a:b], vals[a:b]) for sid, a, b in zip(sids.tolist(), o[:-1], o[1:], strict=True)}

    def select_columns(self, ids: Iterable[int], start_ms: int, end_ms: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Samples of the wanted series laid end to end: (series ids ascending, offsets one
        longer, timestamps, values); each series' samples sorted by time, the last written
        value of a duplicated timestamp kept. No Python work per series beyond one per
        chunk read: the head's samples are selected, sorted and split with NumPy alone."""
        wanted = sorted(set(ids))
        # blocks of (sid, ts, value) in write order: per partition its chunks (by series and
        # cut), then its head; each block sorted by series then time
        blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        heads: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if wanted:
            for part in self._parts(start_ms, end_ms):
                self._select_partition(part, wanted, start_ms, end_ms, blocks, heads)
        if not blocks:
            return (np.zeros(0, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int64),
                    np.zeros(0))
        # one head block is in order already (merged by `_unsealed_columns`)
        head_only = len(blocks) == 1 and len(heads) == 1
        if len(blocks) == 1:
            sids, ts, vals = blocks[0]
        else:
            sids = np.concatenate([b[0] for b in blocks])
            ts = np.concatenate([b[1] for b in blocks])
            vals = np.concatenate([b[2] for b in blocks])
        if not head_only:
            sids, ts, vals = _merge_blocks(sids, ts, vals)
        bounds = np.flatnonzero(np.diff(sids)) + 1
        starts = np.concatenate(([0], bounds)).astype(np.int64)
        return sids[starts], np.concatenate((starts, [len(sids)])).astype(np.int64), ts, vals

    def _select_partition(self, part: Partition, wanted: list[int], start_ms: int, end_ms: int,
                          blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                          heads: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> None:
        conn = self.pool.get(part.path)
        c_sids: list[int] = []
        c_blobs: list[bytes] = []
        conn.execute("BEGIN")
        try:
            for i in range(0, len(wanted), _IN_CHUNK):
                group = wanted[i:i + _IN_CHUNK]
                marks = ",".join("?" * len(group))
                for sid, blob in conn.execute(
                        f"SELECT series_id, data FROM chunks WHERE series_id IN ({marks}) "
                        f"AND t_min <= ? AND t_max >= ? ORDER BY series_id, cut",
                        (*group, end_ms, start_ms)):
                    c_sids.append(sid)
                    c_blobs.append(blob)
            head = self._unsealed_columns(conn, part, wanted, start_ms, end_ms)
        finally:
            conn.execute("COMMIT")
        if c_sids:
            # all chunks decoded together (one per series for a short window)
            lens, ts, vals = chunks.decode_many(c_blobs)
            sids = np.repeat(np.asarray(c_sids, dtype=np.int64), lens)
            sel = (ts >= start_ms) & (ts <= end_ms)
            if sel.any():
                blocks.append((sids[sel], ts[sel], vals[sel]))
        if head is not None:
            blocks.append(head)
            heads.append(head)

    def _unsealed_columns(self, conn: sqlite3.Connection, part: Partition, wanted: list[int], start_ms: int,
                          end_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """Samples not yet sealed into chunks (call inside a read transaction), sorted by
        series and time, as (sid, ts, value) columns: from the head, or from the write-ahead
        rows if the head moved on since the snapshot."""
        state: SamplePartition = part.state
        sealed_upto = conn.execute("SELECT v FROM sample_meta WHERE k = 'sealed_upto'").fetchone()[0]
        base, entries = state.head.entries_snapshot()
        recent: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        if sealed_upto < base:
            for (blob,) in conn.execute("SELECT data FROM sample_wal WHERE id > ? AND id <= ? ORDER BY id",
                                        (sealed_upto, base)):
                recent.append(chunks.unpack_wal(blob))
        # batches wholly outside the window are skipped (a recent window skips most of the head)
        recent.extend((e[1], e[2], e[3]) for e in entries
                      if e[0] > sealed_upto and e[4][0] <= end_ms and e[4][1] >= start_ms)
        if not recent:
            return None
        sids = np.concatenate([r[0] for r in recent])
        ts = np.concatenate([r[1] for r in recent])
        vals = np.concatenate([r[2] for r in recent])
        sel = (ts >= start_ms) & (ts <= end_ms)
        sel &= np.isin(sids, np.asarray(wanted, dtype=np.int64))
        if not sel.any():
            return None
        return _merge([(sids[sel], ts[sel], vals[sel])])

    def _unsealed(self, conn: sqlite3.Connection, part: Partition, wanted: list[int], start_ms: int,
                  end_ms: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """`_unsealed_columns` per series."""
        out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        cols = self._unsealed_columns(conn, part, wanted, start_ms, end_ms)
        if cols is None:
            return out
        sids, ts, vals = cols
        bounds = np.flatnonzero(np.diff(sids)) + 1
        starts = np.concatenate(([0], bounds)).tolist()
        ends = np.concatenate((bounds, [len(sids)])).tolist()
        for a, b, sid in zip(starts, ends, sids[starts].tolist(), strict=True):
            out[sid] = (ts[a:b], vals[a:b])
        return out

    def select_rollups(self, ids, start_ms: int, end_ms: int, rollup_parts: PartitionSet,
                       resolution: int) -> dict[int, dict[str, np.ndarray]]:
        """Bucket aggregates per series: stored rows of sealed data plus rows summarised on the
        fly from samples not sealed yet."""
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        lo = start_ms - resolution  # one bucket more, for the increase into the first one
        found: dict[int, list[dict[str, np.ndarray]]] = {}
        start_ns, end_ns = lo * 1_000_000, end_ms * 1_000_000 + 999_999
        for part in rollup_parts.list(start_ns, end_ns, newest_first=False):
            if part.state is None:
                continue
            conn = self.pool.get(part.path)
            for i in range(0, len(wanted), _IN_CHUNK):
                group = wanted[i:i + _IN_CHUNK]
                marks = ",".join("?" * len(group))
                for sid, blob in conn.execute(
                        f"SELECT series_id, data FROM rollups WHERE series_id IN ({marks}) "
                        f"AND t_max >= ? AND t_min <= ?", (*group, lo, end_ms)):
                    found.setdefault(sid, []).append(rollups.decode(blob))
        for part in self._parts(lo, end_ms):
            conn = self.pool.get(part.path)
            conn.execute("BEGIN")
            try:
                unsealed = self._unsealed(conn, part, wanted, lo, end_ms)
            finally:
                conn.execute("COMMIT")
            for sid, (ts, vals) in unsealed.items():
                rows = rollups.summarise(ts, vals, resolution)
                if rows is not None:
                    found.setdefault(sid, []).append(rows)
        out = {}
        for sid, parts in found.items():
            merged = rollups.merge(parts)
            if merged is not None:
                sel = (merged["last_ts"] >= lo) & (merged["bucket"] <= end_ms)
                out[sid] = {f: v[sel] for f, v in merged.items()}
        return out
