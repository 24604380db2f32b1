"""Log records in SQLite, with full-text search built behind the write path.

Rows are committed (and acknowledged) first; a separate indexer thread feeds them to an FTS5
index kept in a companion file, in large chunks. Searches use the index for indexed rows and
scan the few not yet indexed, so results are complete at every moment, as with
Elasticsearch's refresh interval but without its window of invisibility.

Measured on this machine (see docs/benchmarks.md): inserting into FTS5 inside the ingest
transaction capped log ingest near 45,000 records/s; the same rows without it commit at
~180,000/s, and the indexer, working in chunks of 20,000, reaches ~60,000/s on its own core.

The index is contentless (the text lives once, in the `logs` table) with `detail=none`:
the smallest FTS5 form. Phrase adjacency, prefix terms and attribute filters are checked in
Python on the candidate rows the index returns.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import threading
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pantau.model import LogBatch, LogRecord
from pantau.otlp.convert import log_attributes, log_from_payload, resource_from_bytes, scope_from_bytes
from pantau.otlp.values import as_text
from pantau.store.base import LogPage, LogQuery
from pantau.store.sqlite.db import connect_writer
from pantau.store.sqlite.partitions import Partition, PartitionSet, ReaderPool
from pantau.store.sqlite.trace_keys import TraceKeyIndex, trace_keys

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources(id INTEGER PRIMARY KEY, data BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS scopes(id INTEGER PRIMARY KEY, data BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS logs(
    id INTEGER PRIMARY KEY,
    time_ns INTEGER NOT NULL,
    observed_ns INTEGER NOT NULL,
    severity INTEGER NOT NULL,
    severity_text TEXT NOT NULL,
    service TEXT NOT NULL,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    resource_id INTEGER NOT NULL,
    scope_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS logs_time ON logs(time_ns);
CREATE INDEX IF NOT EXISTS logs_service_time ON logs(service, time_ns);
"""

FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    text, content='', detail=none, columnsize=0, tokenize='unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS fts_meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO fts_meta VALUES ('upto', 0);
"""

_INSERT = ("INSERT INTO logs(id, time_ns, observed_ns, severity, severity_text, service, trace_id, "
           "span_id, resource_id, scope_id, body, payload) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")

INDEX_CHUNK = 20_000


def fts_path(part_path: Path) -> Path:
    return part_path.with_suffix(".fts.db")


# --- tokens, as FTS5's unicode61 tokenizer (remove_diacritics 2) sees them ---------------------

_TOKEN = re.compile(r"[^\W_]+")


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(_fold(text))


# --- writer side -----------------------------------------------------------------------------


@dataclass
class LogPartition:
    conn: sqlite3.Connection
    keys: TraceKeyIndex
    next_id: int
    resources: dict[bytes, int] = field(default_factory=dict)
    scopes: dict[bytes, int] = field(default_factory=dict)


def open_partition(conn: sqlite3.Connection, part_path: Path, keys: TraceKeyIndex) -> LogPartition:
    conn.executescript(SCHEMA)
    fts = connect_writer(fts_path(part_path))
    fts.executescript(FTS_SCHEMA)
    fts.close()
    keys.load(conn)
    next_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM logs").fetchone()[0]
    state = LogPartition(conn, keys, next_id)
    state.resources = {bytes(d): i for i, d in conn.execute("SELECT id, data FROM resources")}
    state.scopes = {bytes(d): i for i, d in conn.execute("SELECT id, data FROM scopes")}
    return state


def _intern(conn: sqlite3.Connection, table: str, cache: dict[bytes, int], data: bytes) -> int:
    ref = cache.get(data)
    if ref is None:
        conn.execute(f"INSERT OR IGNORE INTO {table}(data) VALUES (?)", (data,))
        ref = conn.execute(f"SELECT id FROM {table} WHERE data = ?", (data,)).fetchone()[0]
        cache[data] = ref
    return ref


def write(state: LogPartition, batch: LogBatch, rows: list[int] | None = None) -> None:
    conn = state.conn
    res_ids = [_intern(conn, "resources", state.resources, r) for r in batch.resources]
    scope_ids = [_intern(conn, "scopes", state.scopes, s) for s in batch.scopes]
    index = range(len(batch)) if rows is None else rows
    b = batch
    first = state.next_id
    n = len(index)
    if rows is None:
        conn.executemany(_INSERT, zip(
            range(first, first + n), b.time_ns, b.observed_ns, b.severity_number, b.severity_text,
            b.service, b.trace_id, b.span_id, [res_ids[r] for r in b.resource_ref],
            [scope_ids[s] for s in b.scope_ref], b.body, b.payload, strict=True))
        traced = [(first + j, t) for j, t in enumerate(b.trace_id) if t]
    else:
        conn.executemany(_INSERT, (
            (first + j, b.time_ns[i], b.observed_ns[i], b.severity_number[i], b.severity_text[i],
             b.service[i], b.trace_id[i], b.span_id[i], res_ids[b.resource_ref[i]],
             scope_ids[b.scope_ref[i]], b.body[i], b.payload[i]) for j, i in enumerate(index)))
        traced = [(first + j, b.trace_id[i]) for j, i in enumerate(index) if b.trace_id[i]]
    state.next_id = first + n
    if traced:
        state.keys.add(trace_keys([t for _, t in traced]),
                       np.fromiter((r for r, _ in traced), dtype=np.int64, count=len(traced)))


def searchable_text(body: str, payload: bytes) -> str:
    """What the full-text index sees of a record: its body and its attribute values."""
    attrs = log_attributes(payload)
    if not attrs:
        return body
    return body + "\n" + "\n".join(as_text(v) for v in attrs.values())


class LogIndexer(threading.Thread):
    """Feeds committed log rows to each partition's FTS5 index, in chunks, off the write path."""

    def __init__(self, parts: PartitionSet, on_error: Callable[[Exception], None] | None = None) -> None:
        super().__init__(name="pantau-log-indexer", daemon=True)
        self.parts = parts
        self.wake = threading.Event()
        self._stopping = threading.Event()
        self._lag: dict[Path, int] = {}
        self._on_error = on_error
        self.indexed_total = 0

    @property
    def lag(self) -> int:
        return sum(self._lag.values())

    def stop(self) -> None:
        self._stopping.set()
        self.wake.set()

    def run(self) -> None:
        conns: dict[Path, tuple[sqlite3.Connection, sqlite3.Connection]] = {}
        try:
            while not self._stopping.is_set():
                worked = False
                live = set()
                for part in self.parts.list():
                    if part.dropped or part.state is None:
                        continue
                    live.add(part.path)
                    pair = conns.get(part.path)
                    if pair is None:
                        source = sqlite3.connect(f"file:{part.path}?mode=ro", uri=True,
                                                 isolation_level=None, check_same_thread=False)
                        pair = conns[part.path] = (source, connect_writer(fts_path(part.path)))
                    try:
                        worked |= self._index_some(part, *pair)
                    except sqlite3.Error as exc:
                        if self._on_error:
                            self._on_error(exc)
                for path in [p for p in conns if p not in live]:
                    for c in conns.pop(path):
                        c.close()
                    self._lag.pop(path, None)
                if not worked:
                    self.wake.wait(1.0)
                    self.wake.clear()
        finally:
            for source, fts in conns.values():
                source.close()
                fts.close()

    def _index_some(self, part: Partition, source: sqlite3.Connection, fts: sqlite3.Connection) -> bool:
        upto = fts.execute("SELECT v FROM fts_meta WHERE k = 'upto'").fetchone()[0]
        last = part.state.next_id - 1
        self._lag[part.path] = max(0, last - upto)
        if last <= upto:
            return False
        rows = source.execute("SELECT id, body, payload FROM logs WHERE id > ? ORDER BY id LIMIT ?",
                              (upto, INDEX_CHUNK)).fetchall()
        if not rows:
            return False
        fts.execute("BEGIN")
        try:
            fts.executemany("INSERT INTO fts(rowid, text) VALUES (?, ?)",
                            ((rid, searchable_text(body, payload)) for rid, body, payload in rows))
            fts.execute("UPDATE fts_meta SET v = ? WHERE k = 'upto'", (rows[-1][0],))
            fts.execute("COMMIT")
        except BaseException:
            fts.execute("ROLLBACK")
            raise
        self.indexed_total += len(rows)
        self._lag[part.path] = max(0, last - rows[-1][0])
        return True


# --- search ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cursor:
    time_ns: int
    part_key: int
    row_id: int

    def encode(self) -> str:
        raw = f"{self.time_ns}:{self.part_key}:{self.row_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> _Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            t, k, r = raw.split(":")
            return cls(int(t), int(k), int(r))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"invalid cursor {text!r}") from None


class _Matcher:
    """The per-record checks the index cannot do: phrases, prefixes, exclusions, attributes."""

    def __init__(self, q: LogQuery) -> None:
        self.q = q
        self.words: list[list[str]] = []  # each: a sequence of tokens that must be adjacent
        self.prefixes: list[str] = []
        for term in q.terms:
            if term.endswith("*") and len(term) > 1:
                self.prefixes.append(_fold(term[:-1]))
            elif toks := tokens(term):
                self.words.append(toks)
        for phrase in q.phrases:
            if toks := tokens(phrase):
                self.words.append(toks)
        self.excluded = [t for t in (tokens(x) for x in q.excluded) if t]

    @property
    def index_tokens(self) -> list[str]:
        """Tokens every match must contain: what the FTS index can narrow on."""
        return sorted({t for seq in self.words for t in seq})

    @property
    def needs_text(self) -> bool:
        return bool(self.words or self.prefixes or self.excluded)

    def text_matches(self, text: str) -> bool:
        toks = tokens(text)
        return (all(_contains_seq(toks, seq) for seq in self.words)
                and all(any(t.startswith(p) for t in toks) for p in self.prefixes)
                and not any(_contains_seq(toks, seq) for seq in self.excluded))

    def record_matches(self, body: str, payload: bytes, trace_id: bytes, span_id: bytes) -> bool:
        q = self.q
        if q.trace_id is not None and trace_id != q.trace_id:
            return False
        if q.span_id is not None and span_id != q.span_id:
            return False
        attrs = None
        if q.attributes:
            attrs = log_attributes(payload)
            for key, value in q.attributes.items():
                if key not in attrs or as_text(attrs[key]) != value:
                    return False
        if self.needs_text:
            if attrs is None:
                attrs = log_attributes(payload)
            text = body if not attrs else body + "\n" + "\n".join(as_text(v) for v in attrs.values())
            return self.text_matches(text)
        return True


def _contains_seq(toks: list[str], seq: list[str]) -> bool:
    if len(seq) == 1:
        return seq[0] in toks
    n = len(seq)
    first = seq[0]
    return any(toks[i] == first and toks[i:i + n] == seq for i in range(len(toks) - n + 1))


def _fts_query(toks: list[str]) -> str:
    return " AND ".join('"' + t.replace('"', '""') + '"' for t in toks)


class LogReader:
    def __init__(self, parts: PartitionSet, pool: ReaderPool) -> None:
        self.parts = parts
        self.pool = pool

    def _conn(self, part: Partition) -> sqlite3.Connection:
        return self.pool.get(part.path, {"ftsdb": fts_path(part.path)})

    def search(self, q: LogQuery) -> LogPage:
        cursor = _Cursor.decode(q.cursor) if q.cursor else None
        matcher = _Matcher(q)
        results: list[LogRecord] = []
        last: _Cursor | None = None
        more = False
        for part in self.parts.list(q.start_ns, q.end_ns, newest_first=q.newest_first):
            if cursor is not None:
                if q.newest_first and part.key > cursor.part_key:
                    continue
                if not q.newest_first and part.key < cursor.part_key:
                    continue
            part_cursor = cursor if cursor is not None and cursor.part_key == part.key else None
            for rec, pos in self._search_partition(part, q, matcher, part_cursor):
                if len(results) == q.limit:
                    more = True
                    break
                results.append(rec)
                last = pos
            if more:
                break
        return LogPage(results, last.encode() if more and last else None)

    def _search_partition(self, part: Partition, q: LogQuery, m: _Matcher,
                          cursor: _Cursor | None) -> Iterator[tuple[LogRecord, _Cursor]]:
        if part.state is None:
            return
        conn = self._conn(part)
        where, params = [], []
        if q.start_ns is not None:
            where.append("l.time_ns >= ?")
            params.append(q.start_ns)
        if q.end_ns is not None:
            where.append("l.time_ns <= ?")
            params.append(q.end_ns)
        if q.services:
            where.append(f"l.service IN ({','.join('?' * len(q.services))})")
            params.extend(q.services)
        if q.min_severity is not None:
            where.append("l.severity >= ?")
            params.append(q.min_severity)
        if q.severity_ranges:
            where.append("(" + " OR ".join("l.severity BETWEEN ? AND ?" for _ in q.severity_ranges) + ")")
            for lo, hi in q.severity_ranges:
                params.extend((lo, hi))
        if cursor is not None:
            op = "<" if q.newest_first else ">"
            where.append(f"(l.time_ns {op} ? OR (l.time_ns = ? AND l.id {op} ?))")
            params.extend((cursor.time_ns, cursor.time_ns, cursor.row_id))
        conn.execute("BEGIN")
        try:
            upto = conn.execute("SELECT v FROM ftsdb.fts_meta WHERE k = 'upto'").fetchone()[0]
            index_tokens = m.index_tokens
            if index_tokens:
                where.append("(l.id > ? OR l.id IN (SELECT rowid FROM ftsdb.fts WHERE fts MATCH ?))")
                params.extend((upto, _fts_query(index_tokens)))
            elif q.trace_id is not None:
                rows = part.state.keys.lookup(conn, q.trace_id)
                if not rows:
                    return
                where.append(f"l.id IN ({','.join('?' * len(rows))})")
                params.extend(rows)
            order = "DESC" if q.newest_first else "ASC"
            sql = ("SELECT l.id, l.time_ns, l.service, l.body, l.payload, l.trace_id, l.span_id, "
                   "r.data, c.data FROM logs l JOIN resources r ON r.id = l.resource_id "
                   "JOIN scopes c ON c.id = l.scope_id"
                   + (" WHERE " + " AND ".join(where) if where else "")
                   + f" ORDER BY l.time_ns {order}, l.id {order}")
            for rid, t, service, body, payload, trace_id, span_id, res, scope in conn.execute(sql, params):
                if not m.record_matches(body, payload, trace_id, span_id):
                    continue
                record = log_from_payload(payload, body, service, resource_from_bytes(res),
                                          scope_from_bytes(scope), f"{part.key}:{rid}")
                yield record, _Cursor(t, part.key, rid)
        finally:
            conn.execute("COMMIT")
