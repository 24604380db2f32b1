"""Log records in SQLite: blocks of records (see `blocks`), with full-text search built behind
the write path.

Blocks are committed (and acknowledged) first; a separate indexer thread feeds their records
to an FTS5 index kept in a companion file, many blocks per transaction. Searches use the
index for indexed blocks and check the few newer blocks record by record, so results are
complete at every moment (Elasticsearch's refresh interval, without its invisible window).

Measured on this machine (docs/benchmarks.md): FTS5 inside the ingest transaction capped log
ingest near 45,000 records/s; rows alone commit several times faster.

The index is contentless (text lives once, in the blocks) with `detail=none`, the smallest
FTS5 form; its rowids are record ids. Phrase adjacency, prefixes and attribute filters are
checked in Python on the candidates the index returns.
"""

from __future__ import annotations

import base64
import heapq
import re
import sqlite3
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson

from pantau.model import Labels, LogBatch, LogRecord, log_stream_labels
from pantau.otlp.convert import log_attributes, log_from_payload, resource_from_bytes, scope_from_bytes
from pantau.otlp.values import as_text
from pantau.store.base import LogPage, LogQuery, LogStreamTimes, LogWindowCounts
from pantau.store.sqlite import blocks as blk
from pantau.store.sqlite import columns as colfmt
from pantau.store.sqlite.db import connect_writer
from pantau.store.sqlite.partitions import Partition, PartitionSet, ReaderPool
from pantau.store.sqlite.trace_keys import TraceKeyIndex
from pantau.textmatch import WORD, contains_sequence, fold, tokens

FTS_SCHEMA = """
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
    text, content='', detail=none, columnsize=0, tokenize='unicode61 remove_diacritics 2');
CREATE TABLE IF NOT EXISTS fts_meta(k TEXT PRIMARY KEY, v INTEGER NOT NULL);
INSERT OR IGNORE INTO fts_meta VALUES ('upto_block', 0);
"""

INDEX_CHUNK = 20_000  # records per indexer transaction
FTS_PAGE = 4096


def fts_path(part_path: Path) -> Path:
    return part_path.with_suffix(".fts.db")


_TOKEN, _fold = WORD, fold


# --- writer side -----------------------------------------------------------------------------


def new_index() -> TraceKeyIndex:
    return TraceKeyIndex("logs", blk.trace_id_scan())


TEMPLATES_SCHEMA = """
CREATE TABLE IF NOT EXISTS templates(block INTEGER PRIMARY KEY, ids BLOB NOT NULL);
"""
TEMPLATE_ID_BYTES = 8


def open_partition(conn: sqlite3.Connection, part_path: Path, keys: TraceKeyIndex) -> blk.BlockWriter:
    writer = blk.open_writer(conn, keys, TEMPLATES_SCHEMA)
    fts = connect_writer(fts_path(part_path))
    fts.executescript(FTS_SCHEMA)
    fts.close()
    return writer


def write_templates(state: blk.BlockWriter, block: int, ids: list[str]) -> None:
    """Template ids of a block's records, in position order (8 bytes each)."""
    state.conn.execute("INSERT OR REPLACE INTO templates VALUES (?, ?)",
                       (block, b"".join(bytes.fromhex(t) if t else bytes(TEMPLATE_ID_BYTES) for t in ids)))


def write(state: blk.BlockWriter, batch: LogBatch, rows: list[int] | None = None) -> list[tuple[int, list[int] | None]]:
    res_ids = np.asarray([state.intern("resources", r) for r in batch.resources], dtype=np.int32)
    scope_ids = np.asarray([state.intern("scopes", s) for s in batch.scopes], dtype=np.int32)
    placed = []
    for service, idx in blk.groups_by_service(batch.service, rows):
        times = np.asarray(blk.pick(batch.time_ns, idx), dtype=np.int64)
        severity = np.asarray(blk.pick(batch.severity_number, idx), dtype=np.uint8)
        texts = blk.pick(batch.severity_text, idx)
        distinct = list(dict.fromkeys(texts))
        position = {t: i for i, t in enumerate(distinct)}
        trace_ids = colfmt.fixed_bytes(blk.pick(batch.trace_id, idx), 16)
        cols = colfmt.encode({
            "time": times,
            "observed": np.asarray(blk.pick(batch.observed_ns, idx), dtype=np.int64),
            "severity": severity,
            "severity_text": np.asarray([position[t] for t in texts], dtype=np.int16),
            "severity_texts": colfmt.var([t.encode() for t in distinct]),
            "trace_id": trace_ids,
            "span_id": colfmt.fixed_bytes(blk.pick(batch.span_id, idx), 8),
            "resource": res_ids[np.asarray(blk.pick(batch.resource_ref, idx), dtype=np.int64)],
            "scope": scope_ids[np.asarray(blk.pick(batch.scope_ref, idx), dtype=np.int64)],
            "body": colfmt.var(bodies := [b.encode("utf-8", "surrogatepass") for b in blk.pick(batch.body, idx)]),
        })
        payloads = colfmt.encode({"payload": colfmt.var(blk.pick(batch.payload, idx))})
        resources = res_ids[np.asarray(blk.pick(batch.resource_ref, idx), dtype=np.int64)]
        block = state.append(service, len(times), int(times.min()), int(times.max()), int(severity.max()),
                             cols, payloads, trace_ids, _summary(resources, texts, bodies))
        placed.append((block, idx))
    return placed


def _summary(resources: np.ndarray, texts: list[str], bodies: list[bytes]) -> bytes:
    """Records and body bytes per (resource, severity text) of a block: enough to count a
    block that lies wholly inside a query window without opening it."""
    groups: dict[tuple[int, str], list[int]] = {}
    for r, t, b in zip(resources.tolist(), texts, bodies, strict=True):
        g = groups.get((r, t))
        if g is None:
            groups[(r, t)] = [1, len(b)]
        else:
            g[0] += 1
            g[1] += len(b)
    return orjson.dumps([[r, t, c, n] for (r, t), (c, n) in groups.items()])


def searchable_text(body: str, payload: bytes) -> str:
    """What the full-text index sees of a record: its body and its attribute values."""
    attrs = log_attributes(payload)
    if not attrs:
        return body
    return body + "\n" + "\n".join(as_text(v) for v in attrs.values())


def index_some(source: sqlite3.Connection, fts: sqlite3.Connection, max_records: int = INDEX_CHUNK) -> int:
    """Feed the next blocks not yet indexed to the FTS index, in one transaction.
    Returns how many records were indexed (0: nothing to do)."""
    upto = fts.execute("SELECT v FROM fts_meta WHERE k = 'upto_block'").fetchone()[0]
    rows, count = [], 0
    for block, n, cols, pays in source.execute(
            "SELECT id, n, columns, payloads FROM blocks WHERE id > ? ORDER BY id", (upto,)):
        rows.append((block, cols, pays))
        count += n
        if count >= max_records:
            break
    if not rows:
        return 0

    def documents() -> Iterator[tuple[int, str]]:
        for block, cols, pays in rows:
            bodies = colfmt.decode(cols, {"body"})["body"].texts()
            payloads = colfmt.decode(pays)["payload"]
            base = block << blk.SHIFT
            for i, body in enumerate(bodies):
                yield base | i, searchable_text(body, payloads[i])

    fts.execute("BEGIN")
    try:
        fts.executemany("INSERT INTO fts(rowid, text) VALUES (?, ?)", documents())
        fts.execute("UPDATE fts_meta SET v = ? WHERE k = 'upto_block'", (rows[-1][0],))
        fts.execute("COMMIT")
    except BaseException:
        fts.execute("ROLLBACK")
        raise
    return count


# --- search ----------------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class _Cursor:
    time_ns: int
    part_key: int
    record: int

    def encode(self) -> str:
        raw = f"{self.time_ns}:{self.part_key}:{self.record}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> _Cursor:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            t, k, r = raw.split(":")
            return cls(int(t), int(k), int(r))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(f"invalid cursor {text!r}") from None


def cursor_after(record: LogRecord) -> str:
    """The cursor that continues a search just after `record` (one this store returned)."""
    part_key, rid = record.id.split(":")
    return _Cursor(record.timestamp_ns, int(part_key), int(rid)).encode()


class _Matcher:
    """The per-record checks the index cannot do: phrases, prefixes, exclusions, attributes."""

    def __init__(self, q: LogQuery) -> None:
        self.q = q
        self.words: list[list[str]] = []  # each: tokens that must appear adjacent, in order
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
        self.line_filters: list[tuple[str, object]] = []
        self.fts_extra: list[str] = []  # FTS5 expressions implied by `|=` line filters
        for op, value in q.line_filters:
            if op in ("|~", "!~"):
                try:
                    self.line_filters.append((op, re.compile(value)))
                except re.error as exc:
                    raise ValueError(f"invalid regular expression {value!r}: {exc}") from None
            elif op in ("|=", "!="):
                self.line_filters.append((op, value))
                if op == "|=":
                    self.fts_extra.extend(_substring_fts(value))
            else:
                raise ValueError(f"unknown line filter {op!r}")
        self.predicate = q.predicate

    @property
    def index_tokens(self) -> list[str]:
        """Tokens every match must contain: what the FTS index can narrow on."""
        return sorted({t for seq in self.words for t in seq})

    def fts_match(self) -> str | None:
        """The FTS5 query every match satisfies, or None if the index cannot narrow."""
        parts = ['"' + t.replace('"', '""') + '"' for t in self.index_tokens] + self.fts_extra
        return " AND ".join(dict.fromkeys(parts)) if parts else None

    def body_matches(self, body: str) -> bool:
        for op, value in self.line_filters:
            if op == "|=":
                if value not in body:  # type: ignore[operator]
                    return False
            elif op == "!=":
                if value in body:  # type: ignore[operator]
                    return False
            elif op == "|~":
                if value.search(body) is None:  # type: ignore[union-attr]
                    return False
            elif value.search(body) is not None:  # type: ignore[union-attr]
                return False
        return True

    @property
    def needs_text(self) -> bool:
        return bool(self.words or self.prefixes or self.excluded)

    @property
    def index_is_exact(self) -> bool:
        """Whether an index hit needs no further text check (single words only)."""
        return all(len(seq) == 1 for seq in self.words) and not self.prefixes and not self.excluded

    @property
    def needs_record_check(self) -> bool:
        return bool(self.line_filters) or self.predicate is not None

    def text_matches(self, text: str) -> bool:
        toks = tokens(text)
        return (all(_contains_seq(toks, seq) for seq in self.words)
                and all(any(t.startswith(p) for t in toks) for p in self.prefixes)
                and not any(_contains_seq(toks, seq) for seq in self.excluded))

    def record_matches(self, body: str, payload: bytes, text_checked: bool) -> bool:
        attrs = None
        if self.q.attributes:
            attrs = log_attributes(payload)
            for key, value in self.q.attributes.items():
                if key not in attrs or as_text(attrs[key]) != value:
                    return False
        if self.needs_text and not text_checked:
            if attrs is None:
                attrs = log_attributes(payload)
            text = body if not attrs else body + "\n" + "\n".join(as_text(v) for v in attrs.values())
            return self.text_matches(text)
        return True


_contains_seq = contains_sequence


def _substring_fts(literal: str) -> list[str]:
    """FTS5 terms any body containing `literal` (case-insensitively) must hold.

    The index holds whole words. A word of the literal with a separator on both sides within
    the literal is a whole word of the body; one with a separator only before it is the start
    of a body word (a prefix query); the others may be pieces of longer words and say nothing.
    """
    out = []
    folded = _fold(literal)
    for m in _TOKEN.finditer(folded):
        starts = m.start() > 0
        ends = m.end() < len(folded)
        word = '"' + m.group().replace('"', '""') + '"'
        if starts and ends:
            out.append(word)
        elif starts:
            out.append(word + "*")
    return out


@dataclass
class _StreamFilter:
    resources: set[int]
    severity: list
    labels: dict[int, dict[str, str]]


class LogReader:
    def __init__(self, parts: PartitionSet, pool: ReaderPool) -> None:
        self.parts = parts
        self.pool = pool
        self.cache = blk.BlockCache()
        self._refs: dict[tuple, bytes] = {}

    def _conn(self, part: Partition) -> sqlite3.Connection:
        return self.pool.get(part.path, {"ftsdb": fts_path(part.path)})

    def _ref(self, conn, part: Partition, table: str, ref: int) -> bytes:
        key = (part.path, table, ref)
        data = self._refs.get(key)
        if data is None:
            row = conn.execute(f"SELECT data FROM {table} WHERE id = ?", (ref,)).fetchone()
            data = bytes(row[0]) if row else b""
            if len(self._refs) > 10_000:
                self._refs.clear()
            self._refs[key] = data
        return data

    def search(self, q: LogQuery) -> LogPage:
        cursor = _Cursor.decode(q.cursor) if q.cursor else None
        matcher = _Matcher(q)
        results: list[LogRecord] = []
        more = False
        last: _Cursor | None = None
        for part in self.parts.list(q.start_ns, q.end_ns, newest_first=q.newest_first):
            if part.state is None:
                continue
            if cursor is not None and (part.key > cursor.part_key if q.newest_first
                                       else part.key < cursor.part_key):
                continue
            part_cursor = cursor if cursor is not None and cursor.part_key == part.key else None
            want = q.limit - len(results) + 1
            for record, pos in self._search_partition(part, q, matcher, part_cursor, want):
                if len(results) == q.limit:
                    more = True
                    break
                results.append(record)
                last = pos
            if more:
                break
        return LogPage(results, last.encode() if more and last else None)

    def _search_partition(self, part: Partition, q: LogQuery, m: _Matcher, cursor: _Cursor | None,
                          want: int) -> list[tuple[LogRecord, _Cursor]]:
        """The first `want` matches of one partition, in the query's order.

        Blocks are visited in record-id order (≈ arrival order, close to time order); the walk
        stops once `want` matches are kept and no block left could hold a better one (each
        block's time range is known), so results are exactly ordered by time.
        """
        conn = self._conn(part)
        backward = q.newest_first
        where, params = [], []
        if q.services:
            where.append(f"service IN ({','.join('?' * len(q.services))})")
            params.extend(q.services)
        if q.start_ns is not None:
            where.append("max_time >= ?")
            params.append(q.start_ns)
        if q.end_ns is not None:
            where.append("min_time <= ?")
            params.append(q.end_ns)
        if cursor is not None:
            where.append("min_time <= ?" if backward else "max_time >= ?")
            params.append(cursor.time_ns)
        min_sev = q.min_severity
        if q.severity_ranges:
            low = min(lo for lo, _ in q.severity_ranges)
            min_sev = low if min_sev is None else max(min_sev, low)
        if min_sev is not None:
            where.append("stat >= ?")
            params.append(min_sev)
        block_filter = " AND ".join(where) or "1"
        best: list[tuple] = []  # min-heap of (key, t, rid, block, pos); the root is the worst kept
        conn.execute("BEGIN")
        try:
            stream = self._stream_filter(conn, part, q)
            if stream is not None and not stream.resources:
                return []
            meta = conn.execute(f"SELECT id, max_time, min_time FROM blocks WHERE {block_filter} ORDER BY id",
                                params).fetchall()
            if not meta:
                return []
            ids = np.fromiter((r[0] for r in meta), dtype=np.int64, count=len(meta))
            # the most extreme time held by any eligible block with a smaller (larger) id
            if backward:
                reach = np.maximum.accumulate(np.fromiter((r[1] for r in meta), dtype=np.int64, count=len(meta)))
            else:
                mins = np.fromiter((r[2] for r in meta), dtype=np.int64, count=len(meta))
                reach = np.minimum.accumulate(mins[::-1])[::-1]
            eligible = set(ids.tolist())
            upto = conn.execute("SELECT v FROM ftsdb.fts_meta WHERE k = 'upto_block'").fetchone()[0]
            for block, positions, text_checked in self._candidates(conn, part, q, m, ids, upto, backward):
                if block not in eligible:
                    continue
                self._scan_block(conn, part, block, positions, text_checked, q, m, cursor, want, best, backward,
                                 stream)
                if len(best) >= want:
                    i = int(np.searchsorted(ids, block))
                    worst_t = best[0][1]
                    if backward:
                        if i == 0 or reach[i - 1] <= worst_t:
                            break
                    elif i + 1 >= len(ids) or reach[i + 1] >= worst_t:
                        break
            kept = sorted(best, reverse=True)  # best first
            loaded = blk.load_blocks(conn, part.path, sorted({e[3] for e in kept}), self.cache, payloads=True)
            out = []
            for _, t, rid, block, pos in kept:
                service, cols, pays = loaded[block]
                res = resource_from_bytes(self._ref(conn, part, "resources", int(cols["resource"][pos])))
                scope = scope_from_bytes(self._ref(conn, part, "scopes", int(cols["scope"][pos])))
                record = log_from_payload(pays["payload"][pos], cols["body"].text(pos), service, res, scope,
                                          f"{part.key}:{rid}")
                record.template_id = self._template(conn, part, block, pos)
                out.append((record, _Cursor(t, part.key, rid)))
            return out
        finally:
            conn.execute("COMMIT")

    def partition_records(self, conn, part: Partition, blocks_per_page: int = 16) -> Iterator[list[LogRecord]]:
        """Every record of one partition in storage order, a few blocks at a time (archival)."""
        for blocks in blk.walk_blocks(conn, part.path, blocks_per_page):
            page: list[LogRecord] = []
            for block, service, cols, pays in blocks:
                for pos in range(len(cols["time"])):
                    record = self._record(conn, part, service, cols, pays, pos, blk.record_id(block, pos))
                    record.template_id = self._template(conn, part, block, pos)
                    page.append(record)
            yield page

    def _template(self, conn, part: Partition, block: int, pos: int) -> str:
        """The template id the miner gave a record ("" while it has not been mined)."""
        key = (part.path, "templates", block)
        ids = self._refs.get(key)
        if ids is None:
            row = conn.execute("SELECT ids FROM templates WHERE block = ?", (block,)).fetchone()
            if row is None:
                return ""
            ids = bytes(row[0])
            self._refs[key] = ids
        raw = ids[pos * TEMPLATE_ID_BYTES:(pos + 1) * TEMPLATE_ID_BYTES]
        return raw.hex() if raw.strip(b"\x00") else ""

    def _record(self, conn, part: Partition, service: str, cols: dict, pays: dict, pos: int, rid: int) -> LogRecord:
        res = resource_from_bytes(self._ref(conn, part, "resources", int(cols["resource"][pos])))
        scope = scope_from_bytes(self._ref(conn, part, "scopes", int(cols["scope"][pos])))
        return log_from_payload(pays["payload"][pos], cols["body"].text(pos), service, res, scope,
                                f"{part.key}:{rid}")

    def _stream_filter(self, conn, part: Partition, q: LogQuery) -> _StreamFilter | None:
        """Which resources and severity texts the stream matchers allow in this partition."""
        if not q.stream:
            return None
        severity_matchers = [mt for mt in q.stream if mt.name == "severity_text"]
        other = [mt for mt in q.stream if mt.name != "severity_text"]
        allowed: set[int] = set()
        labels: dict[int, dict[str, str]] = {}
        for rid, data in conn.execute("SELECT id, data FROM resources"):
            attrs = resource_from_bytes(bytes(data)).attributes
            lab = dict(log_stream_labels(attrs, ""))
            labels[rid] = lab
            if all(mt.matches(lab.get(mt.name, "")) for mt in other):
                allowed.add(rid)
        return _StreamFilter(allowed, severity_matchers, labels)

    def _block_mask(self, cols: dict, positions: np.ndarray | None, q: LogQuery,
                    stream: _StreamFilter | None) -> np.ndarray:
        times = cols["time"]
        n = len(times)
        if positions is None:
            mask = np.ones(n, dtype=bool)
        else:
            mask = np.zeros(n, dtype=bool)
            mask[positions[positions < n]] = True
        if q.start_ns is not None:
            mask &= times >= q.start_ns
        if q.end_ns is not None:
            mask &= times <= q.end_ns
        if q.min_severity is not None:
            mask &= cols["severity"] >= q.min_severity
        if q.severity_ranges:
            sev = cols["severity"]
            in_any = np.zeros(n, dtype=bool)
            for lo, hi in q.severity_ranges:
                in_any |= (sev >= lo) & (sev <= hi)
            mask &= in_any
        if q.trace_id is not None:
            mask &= (cols["trace_id"] == np.frombuffer(q.trace_id, dtype=np.uint8)).all(axis=1)
        if q.span_id is not None:
            mask &= (cols["span_id"] == np.frombuffer(q.span_id, dtype=np.uint8)).all(axis=1)
        if stream is not None:
            mask &= np.isin(cols["resource"], np.fromiter(stream.resources, dtype=np.int64))
            if stream.severity:
                texts = cols["severity_texts"].texts()
                ok = [i for i, t in enumerate(texts) if all(mt.matches(t) for mt in stream.severity)]
                mask &= np.isin(cols["severity_text"], ok)
        return mask

    def stream_times(self, q: LogQuery) -> list[LogStreamTimes]:
        """Timestamps and sizes of every match, grouped by stream, for LogQL metric queries.
        Only records that need it (line filters, predicates, word searches) are looked at one
        by one; everything else is NumPy over block columns."""
        m = _Matcher(q)
        times: dict[tuple, list[np.ndarray]] = {}
        sizes: dict[tuple, list[np.ndarray]] = {}
        labels_of: dict[tuple, Labels] = {}
        for part in self.parts.list(q.start_ns, q.end_ns, newest_first=False):
            if part.state is None:
                continue
            conn = self._conn(part)
            conn.execute("BEGIN")
            try:
                stream = self._stream_filter(conn, part, q)
                if stream is not None and not stream.resources:
                    continue
                where, params = [], []
                if q.services:
                    where.append(f"service IN ({','.join('?' * len(q.services))})")
                    params.extend(q.services)
                if q.start_ns is not None:
                    where.append("max_time >= ?")
                    params.append(q.start_ns)
                if q.end_ns is not None:
                    where.append("min_time <= ?")
                    params.append(q.end_ns)
                ids = np.fromiter((r[0] for r in conn.execute(
                    f"SELECT id FROM blocks WHERE {' AND '.join(where) or '1'} ORDER BY id", params)),
                    dtype=np.int64)
                if not len(ids):
                    continue
                upto = conn.execute("SELECT v FROM ftsdb.fts_meta WHERE k = 'upto_block'").fetchone()[0]
                eligible = set(ids.tolist())
                for block, positions, text_checked in self._candidates(conn, part, q, m, ids, upto, False):
                    if block not in eligible:
                        continue
                    service, cols, _ = blk.load_blocks(conn, part.path, [block], self.cache, payloads=False)[block]
                    mask = self._block_mask(cols, positions, q, stream)
                    hits = np.flatnonzero(mask)
                    if not len(hits):
                        continue
                    body = cols["body"]
                    check = bool(q.attributes) or (m.needs_text and not text_checked)
                    if check or m.needs_record_check:
                        pays = blk.load_blocks(conn, part.path, [block], self.cache, payloads=True)[block][2]
                        keep = []
                        for pos in hits.tolist():
                            text = body.text(pos)
                            if m.line_filters and not m.body_matches(text):
                                continue
                            if check and not m.record_matches(text, pays["payload"][pos], text_checked):
                                continue
                            if m.predicate is not None and not m.predicate(self._record(
                                    conn, part, service, cols, pays, pos, (block << blk.SHIFT) | pos)):
                                continue
                            keep.append(pos)
                        hits = np.asarray(keep, dtype=np.int64)
                        if not len(hits):
                            continue
                    lengths = np.diff(body.offsets)[hits]
                    res = cols["resource"][hits]
                    sev = cols["severity_text"][hits]
                    texts = cols["severity_texts"].texts()
                    for r, t in set(zip(res.tolist(), sev.tolist(), strict=True)):
                        sel = (res == r) & (sev == t)
                        key = (part.key, r, texts[t])
                        if key not in labels_of:
                            attrs = resource_from_bytes(self._ref(conn, part, "resources", r)).attributes
                            labels_of[key] = log_stream_labels(attrs, texts[t])
                        times.setdefault(key, []).append(cols["time"][hits[sel]])
                        sizes.setdefault(key, []).append(lengths[sel])
            finally:
                conn.execute("COMMIT")
        merged: dict[Labels, tuple[list, list]] = {}
        for key, labels in labels_of.items():
            t_list, s_list = merged.setdefault(labels, ([], []))
            t_list.extend(times[key])
            s_list.extend(sizes[key])
        out = []
        for labels, (t_list, s_list) in merged.items():
            t, sz = np.concatenate(t_list), np.concatenate(s_list)
            order = np.argsort(t, kind="stable")
            out.append(LogStreamTimes(labels, t[order], sz[order]))
        out.sort(key=lambda st: st.labels)
        return out

    def window_counts(self, q: LogQuery, ends: np.ndarray, range_ns: int) -> list[LogWindowCounts]:
        """Records and bytes per stream in each window (end - range, end], for a query that has
        only stream matchers and a time range. Blocks wholly inside a window are counted from
        their summary; only blocks cut by a window edge are opened."""
        starts = ends - range_ns
        lo, hi = int(starts.min()), int(ends.max())
        counts: dict[Labels, np.ndarray] = {}
        sizes: dict[Labels, np.ndarray] = {}
        for part in self.parts.list(lo, hi, newest_first=False):
            if part.state is None:
                continue
            conn = self._conn(part)
            conn.execute("BEGIN")
            try:
                stream = self._stream_filter(conn, part, q)
                if stream is not None and not stream.resources:
                    continue
                label_cache: dict[tuple[int, str], Labels] = {}

                def labels_of(r: int, text: str, conn=conn, part=part, label_cache=label_cache) -> Labels:
                    key = (r, text)
                    if key not in label_cache:
                        attrs = resource_from_bytes(self._ref(conn, part, "resources", r)).attributes
                        label_cache[key] = log_stream_labels(attrs, text)
                    return label_cache[key]

                def add(labels: Labels, window: np.ndarray, c, b) -> None:
                    if labels not in counts:
                        counts[labels] = np.zeros(len(ends))
                        sizes[labels] = np.zeros(len(ends))
                    counts[labels][window] += c
                    sizes[labels][window] += b

                where, params = ["max_time > ?", "min_time <= ?"], [lo, hi]
                if q.services:
                    where.append(f"service IN ({','.join('?' * len(q.services))})")
                    params.extend(q.services)
                for block, bmin, bmax, summary in conn.execute(
                        f"SELECT id, min_time, max_time, summary FROM blocks WHERE {' AND '.join(where)}", params):
                    inside = (starts < bmin) & (bmax <= ends)
                    cut = (starts < bmax) & (bmin <= ends) & ~inside
                    if inside.any() and summary is not None:
                        for r, text, c, b in orjson.loads(summary):
                            if stream is not None and (r not in stream.resources or not all(
                                    mt.matches(text) for mt in stream.severity)):
                                continue
                            add(labels_of(r, text), inside, c, b)
                    elif inside.any():
                        cut |= inside
                    if not cut.any():
                        continue
                    _, cols, _ = blk.load_blocks(conn, part.path, [block], self.cache, payloads=False)[block]
                    mask = self._block_mask(cols, None, q, stream)
                    times = cols["time"][mask]
                    lengths = np.diff(cols["body"].offsets)[mask]
                    res = cols["resource"][mask]
                    sev = cols["severity_text"][mask]
                    texts = cols["severity_texts"].texts()
                    for r, t in set(zip(res.tolist(), sev.tolist(), strict=True)):
                        sel = (res == r) & (sev == t)
                        st, sl = np.sort(times[sel]), lengths[sel][np.argsort(times[sel], kind="stable")]
                        prefix = np.r_[0, np.cumsum(sl)]
                        w = np.flatnonzero(cut)
                        a = np.searchsorted(st, starts[w], side="right")
                        z = np.searchsorted(st, ends[w], side="right")
                        labels = labels_of(r, texts[t])
                        add(labels, w, z - a, prefix[z] - prefix[a])
            finally:
                conn.execute("COMMIT")
        return [LogWindowCounts(labels, counts[labels], sizes[labels]) for labels in sorted(counts)]

    def streams(self, matchers, start_ns: int | None, end_ns: int | None) -> list[Labels]:
        """Label sets of streams with records in the range (resource x severity text)."""
        q = LogQuery(stream=list(matchers), start_ns=start_ns, end_ns=end_ns)
        found: set[Labels] = set()
        for part in self.parts.list(start_ns, end_ns):
            if part.state is None:
                continue
            conn = self._conn(part)
            conn.execute("BEGIN")
            try:
                stream = self._stream_filter(conn, part, q)
                where, params = ["1"], []
                if start_ns is not None:
                    where.append("max_time >= ?")
                    params.append(start_ns)
                if end_ns is not None:
                    where.append("min_time <= ?")
                    params.append(end_ns)
                for (blob,) in conn.execute(f"SELECT columns FROM blocks WHERE {' AND '.join(where)}", params):
                    cols = colfmt.decode(blob, {"resource", "severity_text", "severity_texts", "time"})
                    mask = self._block_mask(cols, None, q, stream)
                    texts = cols["severity_texts"].texts()
                    for r, t in set(zip(cols["resource"][mask].tolist(), cols["severity_text"][mask].tolist(),
                                        strict=True)):
                        attrs = resource_from_bytes(self._ref(conn, part, "resources", r)).attributes
                        found.add(log_stream_labels(attrs, texts[t]))
            finally:
                conn.execute("COMMIT")
        return sorted(found)

    def _candidates(self, conn, part: Partition, q: LogQuery, m: _Matcher, ids: np.ndarray, upto: int,
                    backward: bool) -> Iterator[tuple[int, np.ndarray | None, bool]]:
        """Blocks to examine, in record order: (block, positions or None for all, text checked)."""
        if q.trace_id is not None:
            by_block: dict[int, list[int]] = defaultdict(list)
            for rid in part.state.keys.lookup(conn, q.trace_id):
                b, pos = blk.split_record(rid)
                by_block[b].append(pos)
            for b in sorted(by_block, reverse=backward):
                yield b, np.asarray(sorted(set(by_block[b])), dtype=np.int64), False
            return
        ordered = ids[::-1] if backward else ids
        match = m.fts_match()
        if match is None:
            for b in ordered.tolist():
                yield b, None, False
            return
        exact = m.index_is_exact
        tail = [b for b in ordered.tolist() if b > upto]
        if backward:
            for b in tail:
                yield b, None, False
        last_rowid = None
        while True:
            if backward:
                sql = "SELECT rowid FROM ftsdb.fts WHERE fts MATCH ? AND rowid < ? ORDER BY rowid DESC LIMIT ?"
                args = (match, last_rowid if last_rowid is not None else (upto + 1) << blk.SHIFT, FTS_PAGE)
            else:
                sql = "SELECT rowid FROM ftsdb.fts WHERE fts MATCH ? AND rowid > ? ORDER BY rowid ASC LIMIT ?"
                args = (match, last_rowid if last_rowid is not None else -1, FTS_PAGE)
            rowids = np.fromiter((r[0] for r in conn.execute(sql, args)), dtype=np.int64)
            if not len(rowids):
                break
            last_rowid = int(rowids[-1])
            cuts = np.flatnonzero(np.diff(rowids >> blk.SHIFT)) + 1
            for chunk in np.split(rowids, cuts):
                yield int(chunk[0] >> blk.SHIFT), np.sort(chunk & (blk.BLOCK_MAX - 1)), exact
            if len(rowids) < FTS_PAGE:
                break
        if not backward:
            for b in tail:
                yield b, None, False

    def _scan_block(self, conn, part: Partition, block: int, positions: np.ndarray | None, text_checked: bool,
                    q: LogQuery, m: _Matcher, cursor: _Cursor | None, want: int, best: list,
                    backward: bool, stream: _StreamFilter | None = None) -> None:
        service, cols, _ = blk.load_blocks(conn, part.path, [block], self.cache, payloads=False)[block]
        mask = self._block_mask(cols, positions, q, stream)
        if q.template_id is not None:
            row = conn.execute("SELECT ids FROM templates WHERE block = ?", (block,)).fetchone()
            if row is None:
                return
            ids = np.frombuffer(bytes(row[0]), dtype=f"S{TEMPLATE_ID_BYTES}")
            mask &= ids[:len(mask)] == bytes.fromhex(q.template_id)
        times = cols["time"]
        n = len(times)
        rids = (block << blk.SHIFT) | np.arange(n, dtype=np.int64)
        if cursor is not None:
            if backward:
                mask &= (times < cursor.time_ns) | ((times == cursor.time_ns) & (rids < cursor.record))
            else:
                mask &= (times > cursor.time_ns) | ((times == cursor.time_ns) & (rids > cursor.record))
        if len(best) >= want:
            # only records that beat the worst one kept can enter
            wt, wr = best[0][1], best[0][2]
            if backward:
                mask &= (times > wt) | ((times == wt) & (rids > wr))
            else:
                mask &= (times < wt) | ((times == wt) & (rids < wr))
        hits = np.flatnonzero(mask)
        if not len(hits):
            return
        check = bool(q.attributes) or (m.needs_text and not text_checked)
        predicate = m.predicate
        pays = blk.load_blocks(conn, part.path, [block], self.cache, payloads=True)[block][2] \
            if check or predicate is not None else None
        body = cols["body"]
        for pos in hits.tolist():
            if m.line_filters and not m.body_matches(body.text(pos)):
                continue
            if check and not m.record_matches(body.text(pos), pays["payload"][pos], text_checked):
                continue
            if predicate is not None and not predicate(
                    self._record(conn, part, service, cols, pays, pos, int(rids[pos]))):
                continue
            t, rid = int(times[pos]), int(rids[pos])
            item = ((t, rid) if backward else (-t, -rid), t, rid, block, pos)
            if len(best) < want:
                heapq.heappush(best, item)
            elif item[0] > best[0][0]:
                heapq.heapreplace(best, item)
