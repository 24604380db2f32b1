"""Block tables: how spans and log records are kept in a partition file.

Each received batch (per service) becomes one row of `blocks`, holding two compressed column
sets: `columns` (the fields queries filter on, small) and `payloads` (each item's OTLP
encoding, read only for the items a query returns). A record is addressed by
`block_id * 1024 + position`, the id the trace-key and full-text indexes store.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pantau.store.sqlite import columns as colfmt
from pantau.store.sqlite.trace_keys import TraceKeyIndex

SHIFT = 10
BLOCK_MAX = 1 << SHIFT

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources(id INTEGER PRIMARY KEY, data BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS scopes(id INTEGER PRIMARY KEY, data BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS blocks(
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    n INTEGER NOT NULL,
    min_time INTEGER NOT NULL,
    max_time INTEGER NOT NULL,
    stat INTEGER NOT NULL,
    columns BLOB NOT NULL,
    payloads BLOB NOT NULL,
    summary BLOB
);
CREATE INDEX IF NOT EXISTS blocks_service_time ON blocks(service, max_time);
CREATE INDEX IF NOT EXISTS blocks_time ON blocks(max_time);
"""


def record_id(block: int, position: int) -> int:
    return (block << SHIFT) | position


def split_record(rid: int) -> tuple[int, int]:
    return rid >> SHIFT, rid & (BLOCK_MAX - 1)


def groups_by_service(service_column: list[str], rows: list[int] | None) -> list[tuple[str, list[int] | None]]:
    """Row groups that become blocks: one service each, at most BLOCK_MAX rows (`rows` None: all)."""
    services = service_column if rows is None else [service_column[i] for i in rows]
    n = len(services)
    if n <= BLOCK_MAX and services.count(services[0]) == n:
        return [(services[0], rows)]
    by_service: dict[str, list[int]] = defaultdict(list)
    for j, service in enumerate(services):
        by_service[service].append(j if rows is None else rows[j])
    out: list[tuple[str, list[int] | None]] = []
    for service, idx in by_service.items():
        for k in range(0, len(idx), BLOCK_MAX):
            out.append((service, idx[k:k + BLOCK_MAX]))
    return out


def pick(values: list, rows: list[int] | None) -> list:
    return values if rows is None else [values[i] for i in rows]


@dataclass
class BlockWriter:
    """Writer-side state of one signal's partition file."""

    conn: sqlite3.Connection
    keys: TraceKeyIndex
    next_block: int
    resources: dict[bytes, int] = field(default_factory=dict)
    scopes: dict[bytes, int] = field(default_factory=dict)
    # Catalogue entries of the signal already written (for spans: service operations).
    known: set = field(default_factory=set)

    @property
    def next_id(self) -> int:
        """The next block id (restored by the store when a transaction rolls back)."""
        return self.next_block

    @next_id.setter
    def next_id(self, value: int) -> None:
        self.next_block = value

    def intern(self, table: str, data: bytes) -> int:
        cache = self.resources if table == "resources" else self.scopes
        ref = cache.get(data)
        if ref is None:
            self.conn.execute(f"INSERT OR IGNORE INTO {table}(data) VALUES (?)", (data,))
            ref = self.conn.execute(f"SELECT id FROM {table} WHERE data = ?", (data,)).fetchone()[0]
            cache[data] = ref
        return ref

    def append(self, service: str, n: int, min_time: int, max_time: int, stat: int,
               columns: bytes, payloads: bytes, trace_ids: np.ndarray, summary: bytes | None = None) -> int:
        """Insert one block (inside the caller's transaction) and index its trace ids."""
        block = self.next_block
        self.conn.execute("INSERT INTO blocks VALUES (?,?,?,?,?,?,?,?,?)",
                          (block, service, n, min_time, max_time, stat, columns, payloads, summary))
        self.next_block = block + 1
        has_trace = trace_ids.any(axis=1)
        if has_trace.any():
            positions = np.flatnonzero(has_trace)
            self.keys.add(colfmt.id_keys(trace_ids[positions]), (block << SHIFT) | positions.astype(np.int64))
        return block


def open_writer(conn: sqlite3.Connection, keys: TraceKeyIndex, extra_schema: str = "") -> BlockWriter:
    conn.executescript(SCHEMA + extra_schema)
    if "summary" not in {row[1] for row in conn.execute("PRAGMA table_info(blocks)")}:
        conn.execute("ALTER TABLE blocks ADD COLUMN summary BLOB")  # files written before summaries
    keys.load(conn)
    next_block = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM blocks").fetchone()[0]
    writer = BlockWriter(conn, keys, next_block)
    writer.resources = {bytes(d): i for i, d in conn.execute("SELECT id, data FROM resources")}
    writer.scopes = {bytes(d): i for i, d in conn.execute("SELECT id, data FROM scopes")}
    return writer


def trace_id_scan(trace_column: str = "trace_id"):
    """The `scan` a TraceKeyIndex needs, reading the trace-id column of blocks."""

    def scan(conn: sqlite3.Connection, after: int, upto: int | None):
        lo = after >> SHIFT
        sql = "SELECT id, columns FROM blocks WHERE id >= ?"
        params: tuple = (lo,)
        if upto is not None:
            sql += " AND id <= ?"
            params += (upto >> SHIFT,)
        keys, records, ids = [], [], []
        for block, blob in conn.execute(sql + " ORDER BY id", params):
            tids = colfmt.decode(blob, {trace_column})[trace_column]
            rec = (block << SHIFT) | np.arange(len(tids), dtype=np.int64)
            sel = tids.any(axis=1) & (rec > after)
            if upto is not None:
                sel &= rec <= upto
            if sel.any():
                keys.append(colfmt.id_keys(tids[sel]))
                records.append(rec[sel])
                ids.append(tids[sel])
        if not keys:
            return (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64),
                    np.empty((0, 16), dtype=np.uint8))
        return np.concatenate(keys), np.concatenate(records), np.concatenate(ids)

    return scan


class BlockCache:
    """Recently decoded blocks, shared by reader threads (trace lookups revisit blocks),
    bounded by the bytes the decoded blocks hold."""

    def __init__(self, capacity_bytes: int = 8 * 2**20) -> None:
        self.capacity = capacity_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[tuple, tuple] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple) -> tuple | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is None:
                return None
            self._items.move_to_end(key)
            return entry[0]

    def put(self, key: tuple, value: tuple, size: int) -> None:
        with self._lock:
            if key in self._items:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.capacity and self._items:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped


def load_blocks(conn: sqlite3.Connection, path: Path, blocks: Iterable[int], cache: BlockCache,
                payloads: bool) -> dict[int, tuple[str, dict, dict | None]]:
    """Decoded blocks by id: (service, columns, payload columns or None)."""
    out: dict[int, tuple[str, dict, dict | None]] = {}
    missing = []
    for b in blocks:
        hit = cache.get((path, b, payloads))
        if hit is not None:
            out[b] = hit  # type: ignore[assignment]
        else:
            missing.append(b)
    for i in range(0, len(missing), 500):
        group = missing[i:i + 500]
        marks = ",".join("?" * len(group))
        what = "service, columns, payloads" if payloads else "service, columns, NULL"
        for b, service, cols, pays in conn.execute(
                f"SELECT id, {what} FROM blocks WHERE id IN ({marks})", group):
            value = (service, colfmt.decode(cols), colfmt.decode(pays) if pays is not None else None)
            cache.put((path, b, payloads), value, _decoded_size(value))
            out[b] = value
    return out


def walk_blocks(conn: sqlite3.Connection, path: Path, blocks_per_page: int = 16):
    """Every block of a partition file in id order, decoded with payloads, a few at a time
    (archival reads whole partitions once: nothing is kept in a cache)."""
    cache = BlockCache(0)
    ids = [r[0] for r in conn.execute("SELECT id FROM blocks ORDER BY id")]
    for i in range(0, len(ids), blocks_per_page):
        group = ids[i:i + blocks_per_page]
        loaded = load_blocks(conn, path, group, cache, payloads=True)
        yield [(block, *loaded[block]) for block in group]


def _decoded_size(value: tuple) -> int:
    size = 0
    for cols in value[1:]:
        for col in (cols or {}).values():
            size += col.nbytes if isinstance(col, np.ndarray) else len(col.data) + col.offsets.nbytes
    return size
