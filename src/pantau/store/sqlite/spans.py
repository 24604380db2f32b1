"""Spans in SQLite: blocks of spans (see `blocks`), found by trace key, service and time.

A block's `columns` hold what searches filter on (ids, start, duration, kind, status, name);
`payloads` hold each span's OTLP encoding, decoded only for spans a query returns.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator

import numpy as np

from pantau.model import Span, SpanBatch
from pantau.otlp.convert import resource_from_bytes, scope_from_bytes, span_attributes, span_from_payload
from pantau.otlp.values import as_text
from pantau.store.base import DependencyLink, Operation, TraceQuery
from pantau.store.sqlite import blocks as blk
from pantau.store.sqlite import columns as colfmt
from pantau.store.sqlite.partitions import Partition, PartitionSet, ReaderPool
from pantau.store.sqlite.trace_keys import TraceKeyIndex

EXTRA_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations(
    service TEXT NOT NULL, name TEXT NOT NULL, kind INTEGER NOT NULL,
    PRIMARY KEY(service, name, kind)) WITHOUT ROWID;
"""


def new_index() -> TraceKeyIndex:
    return TraceKeyIndex("spans", blk.trace_id_scan())


def open_partition(conn: sqlite3.Connection, keys: TraceKeyIndex) -> blk.BlockWriter:
    writer = blk.open_writer(conn, keys, EXTRA_SCHEMA)
    writer.known = {tuple(r) for r in conn.execute("SELECT service, name, kind FROM operations")}
    return writer


def write(state: blk.BlockWriter, batch: SpanBatch, rows: list[int] | None = None) -> None:
    """Store spans (all, or the given row numbers) as blocks, inside the caller's transaction."""
    res_ids = np.asarray([state.intern("resources", r) for r in batch.resources], dtype=np.int32)
    scope_ids = np.asarray([state.intern("scopes", s) for s in batch.scopes], dtype=np.int32)
    new_ops: set[tuple[str, str, int]] = set()
    for service, idx in blk.groups_by_service(batch.service, rows):
        names = blk.pick(batch.name, idx)
        kinds = blk.pick(batch.kind, idx)
        distinct = list(dict.fromkeys(names))
        position = {name: i for i, name in enumerate(distinct)}
        start = np.asarray(blk.pick(batch.start_ns, idx), dtype=np.int64)
        duration = np.asarray(blk.pick(batch.end_ns, idx), dtype=np.int64) - start
        trace_ids = colfmt.fixed_bytes(blk.pick(batch.trace_id, idx), 16)
        cols = colfmt.encode({
            "trace_id": trace_ids,
            "span_id": colfmt.fixed_bytes(blk.pick(batch.span_id, idx), 8),
            "parent": colfmt.fixed_bytes(blk.pick(batch.parent_span_id, idx), 8),
            "start": start,
            "duration": duration,
            "kind": np.asarray(kinds, dtype=np.uint8),
            "status": np.asarray(blk.pick(batch.status_code, idx), dtype=np.uint8),
            "name": np.asarray([position[n] for n in names], dtype=np.int32),
            "names": colfmt.var([n.encode() for n in distinct]),
            "resource": res_ids[np.asarray(blk.pick(batch.resource_ref, idx), dtype=np.int64)],
            "scope": scope_ids[np.asarray(blk.pick(batch.scope_ref, idx), dtype=np.int64)],
        })
        payloads = colfmt.encode({"payload": colfmt.var(blk.pick(batch.payload, idx))})
        state.append(service, len(names), int(start.min()), int(start.max()), int(duration.max()),
                     cols, payloads, trace_ids)
        for name, kind in set(zip(names, kinds, strict=True)):
            op = (service, name, kind)
            if op not in state.known:
                new_ops.add(op)
    if new_ops:
        state.conn.executemany("INSERT OR IGNORE INTO operations VALUES (?,?,?)", new_ops)
        state.known |= new_ops


# --- reads -----------------------------------------------------------------------------------

_KIND_TAG = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS_TAG = {1: "OK", 2: "ERROR"}


class SpanReader:
    def __init__(self, parts: PartitionSet, pool: ReaderPool) -> None:
        self.parts = parts
        self.pool = pool
        self.cache = blk.BlockCache()
        self._refs: dict[tuple, bytes] = {}
        self._refs_lock = threading.Lock()

    def _conn(self, part: Partition) -> sqlite3.Connection:
        return self.pool.get(part.path)

    def _ref(self, conn: sqlite3.Connection, part: Partition, table: str, ref: int) -> bytes:
        key = (part.path, table, ref)
        data = self._refs.get(key)
        if data is None:
            row = conn.execute(f"SELECT data FROM {table} WHERE id = ?", (ref,)).fetchone()
            data = bytes(row[0]) if row else b""
            with self._refs_lock:
                if len(self._refs) > 10_000:
                    self._refs.clear()
                self._refs[key] = data
        return data

    def _spans(self, conn, part: Partition, service: str, cols: dict, pays: dict, positions) -> list[Span]:
        out = []
        names = cols["names"]
        for i in positions:
            resource = resource_from_bytes(self._ref(conn, part, "resources", int(cols["resource"][i])))
            scope = scope_from_bytes(self._ref(conn, part, "scopes", int(cols["scope"][i])))
            span = span_from_payload(pays["payload"][i], service, resource, scope)
            if not span.name:
                span.name = names.text(int(cols["name"][i]))
            out.append(span)
        return out

    def partition_spans(self, conn, part: Partition, blocks_per_page: int = 16) -> Iterator[list[Span]]:
        """Every span of one partition in storage order, a few blocks at a time (archival)."""
        for blocks in blk.walk_blocks(conn, part.path, blocks_per_page):
            page: list[Span] = []
            for _, service, cols, pays in blocks:
                page.extend(self._spans(conn, part, service, cols, pays, range(len(cols["start"]))))
            yield page

    def get_trace(self, trace_id: bytes, start_ns: int | None, end_ns: int | None) -> list[Span]:
        spans: list[Span] = []
        wanted = np.frombuffer(trace_id, dtype=np.uint8)
        for part in self.parts.list(start_ns, end_ns):
            if part.state is None:
                continue
            conn = self._conn(part)
            conn.execute("BEGIN")
            try:
                records = part.state.keys.lookup(conn, trace_id)
                if not records:
                    continue
                by_block: dict[int, list[int]] = defaultdict(list)
                for rid in records:
                    b, pos = blk.split_record(rid)
                    by_block[b].append(pos)
                loaded = blk.load_blocks(conn, part.path, sorted(by_block), self.cache, payloads=True)
                for b, positions in by_block.items():
                    if b not in loaded:
                        continue
                    service, cols, pays = loaded[b]
                    ok = [p for p in sorted(set(positions)) if (cols["trace_id"][p] == wanted).all()]
                    spans.extend(self._spans(conn, part, service, cols, pays, ok))
            finally:
                conn.execute("COMMIT")
        spans.sort(key=lambda s: (s.start_ns, s.span_id))
        return spans

    def find_trace_ids(self, q: TraceQuery) -> list[bytes]:
        found: dict[bytes, int] = {}
        where, params = ["1"], []
        if q.service:
            where.append("service = ?")
            params.append(q.service)
        if q.start_ns is not None:
            where.append("max_time >= ?")
            params.append(q.start_ns)
        if q.end_ns is not None:
            where.append("min_time <= ?")
            params.append(q.end_ns)
        if q.min_duration_ns is not None:
            where.append("stat >= ?")
            params.append(q.min_duration_ns)
        sql = f"SELECT id, max_time, service FROM blocks WHERE {' AND '.join(where)} ORDER BY max_time DESC"
        for part in self.parts.list(q.start_ns, q.end_ns):
            if part.state is None:
                continue
            conn = self._conn(part)
            conn.execute("BEGIN")
            try:
                for block, max_time, service in conn.execute(sql, params).fetchall():
                    if len(found) >= q.limit and max_time < min(found.values()):
                        break
                    self._search_block(conn, part, block, service, q, found)
            finally:
                conn.execute("COMMIT")
        ranked = sorted(found.items(), key=lambda kv: kv[1], reverse=True)
        return [tid for tid, _ in ranked[: q.limit]]

    def _search_block(self, conn, part: Partition, block: int, service: str, q: TraceQuery,
                      found: dict[bytes, int]) -> None:
        loaded = blk.load_blocks(conn, part.path, [block], self.cache, payloads=bool(q.attributes))
        if block not in loaded:
            return
        _, cols, pays = loaded[block]
        start, duration = cols["start"], cols["duration"]
        mask = np.ones(len(start), dtype=bool)
        if q.start_ns is not None:
            mask &= start >= q.start_ns
        if q.end_ns is not None:
            mask &= start <= q.end_ns
        if q.min_duration_ns is not None:
            mask &= duration >= q.min_duration_ns
        if q.max_duration_ns is not None:
            mask &= duration <= q.max_duration_ns
        if q.operation:
            names = cols["names"]
            index = [i for i in range(len(names)) if names.text(i) == q.operation]
            if not index:
                return
            mask &= np.isin(cols["name"], index)
        positions = np.flatnonzero(mask)
        trace_ids = cols["trace_id"]
        for p in positions.tolist():
            tid = trace_ids[p].tobytes()
            t = int(start[p])
            if tid in found and found[tid] >= t:
                continue
            if q.attributes and not _attributes_match(
                    q.attributes, pays["payload"][p],
                    self._ref(conn, part, "resources", int(cols["resource"][p])),
                    int(cols["kind"][p]), int(cols["status"][p])):
                continue
            found[tid] = max(t, found.get(tid, t))

    def services(self) -> list[str]:
        names: set[str] = set()
        for part in self.parts.list():
            if part.state is not None:
                names.update(r[0] for r in self._conn(part).execute("SELECT DISTINCT service FROM operations"))
        return sorted(names)

    def operations(self, service: str, span_kind: int | None) -> list[Operation]:
        ops: set[Operation] = set()
        sql = "SELECT name, kind FROM operations WHERE service = ?"
        params: tuple = (service,)
        if span_kind is not None:
            sql += " AND kind = ?"
            params += (span_kind,)
        for part in self.parts.list():
            if part.state is not None:
                ops.update(Operation(n, k) for n, k in self._conn(part).execute(sql, params))
        return sorted(ops, key=lambda o: (o.name, o.span_kind))

    def dependencies(self, start_ns: int, end_ns: int) -> list[DependencyLink]:
        """Parent/child span pairs whose services differ, counted per (parent, child) service.

        Parents are looked up among the spans of the window; a call whose parent started
        before the window is not counted, as in Jaeger's own dependency jobs.
        """
        services: list[str] = []
        service_index: dict[str, int] = {}
        keys_parts, spans_parts, parents_parts, owners = [], [], [], []
        for part in self.parts.list(start_ns, end_ns):
            if part.state is None:
                continue
            conn = self._conn(part)
            rows = conn.execute("SELECT service, columns FROM blocks WHERE max_time >= ? AND min_time <= ?",
                                (start_ns, end_ns)).fetchall()
            for service, blob in rows:
                cols = colfmt.decode(blob, {"trace_id", "span_id", "parent", "start"})
                sel = (cols["start"] >= start_ns) & (cols["start"] <= end_ns)
                if not sel.any():
                    continue
                sid = service_index.setdefault(service, len(services))
                if sid == len(services):
                    services.append(service)
                keys_parts.append(colfmt.id_keys(cols["trace_id"][sel]).view(np.uint64))
                spans_parts.append(colfmt.id_ints(cols["span_id"][sel]))
                parents_parts.append(colfmt.id_ints(cols["parent"][sel]))
                owners.append(np.full(int(sel.sum()), sid, dtype=np.int32))
        if not keys_parts:
            return []
        trace_keys = np.concatenate(keys_parts)
        span_ids = np.concatenate(spans_parts)
        parent_ids = np.concatenate(parents_parts)
        owner = np.concatenate(owners)
        # One 64-bit key per (trace, span); parents are found with a sorted search.
        span_key = trace_keys ^ (span_ids * np.uint64(0x9E3779B97F4A7C15))
        parent_key = trace_keys ^ (parent_ids * np.uint64(0x9E3779B97F4A7C15))
        order = np.argsort(span_key, kind="stable")
        sorted_keys = span_key[order]
        has_parent = parent_ids != 0
        pos = np.searchsorted(sorted_keys, parent_key[has_parent])
        pos_clipped = np.minimum(pos, len(sorted_keys) - 1)
        hit = sorted_keys[pos_clipped] == parent_key[has_parent]
        child_owner = owner[has_parent][hit]
        parent_owner = owner[order[pos_clipped[hit]]]
        cross = child_owner != parent_owner
        calls: Counter[tuple[str, str]] = Counter()
        for p, c in zip(parent_owner[cross].tolist(), child_owner[cross].tolist(), strict=True):
            calls[(services[p], services[c])] += 1
        return [DependencyLink(p, c, n) for (p, c), n in sorted(calls.items())]


def _attributes_match(wanted: dict[str, str], payload: bytes, resource: bytes, kind: int,
                      status: int) -> bool:
    """Jaeger tag search: a tag matches a span attribute, a resource (process) attribute, or
    one of the tags Jaeger derives from OTLP fields (`error`, `span.kind`, `otel.status_code`)."""
    derived = {"span.kind": _KIND_TAG.get(kind, ""), "otel.status_code": _STATUS_TAG.get(status, "")}
    if status == 2:
        derived["error"] = "true"
    attrs = span_attributes(payload)
    res = resource_from_bytes(resource).attributes
    for key, value in wanted.items():
        if key in attrs:
            actual = as_text(attrs[key])
        elif key in derived:
            actual = derived[key]
        elif key in res:
            actual = as_text(res[key])
        else:
            return False
        if actual != value:
            return False
    return True
