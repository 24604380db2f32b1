"""Spans in SQLite: one row per span, indexed by (service, start time) and by trace key.

Each row keeps the span's OTLP encoding (`payload`); attributes, events and links are decoded
only for spans a query returns.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from pantau.model import Span, SpanBatch
from pantau.otlp.convert import resource_from_bytes, scope_from_bytes, span_attributes, span_from_payload
from pantau.otlp.values import as_text
from pantau.store.base import DependencyLink, Operation, TraceQuery
from pantau.store.sqlite.partitions import Partition, PartitionSet, ReaderPool
from pantau.store.sqlite.trace_keys import TraceKeyIndex, trace_keys

SCHEMA = """
CREATE TABLE IF NOT EXISTS resources(id INTEGER PRIMARY KEY, data BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS scopes(id INTEGER PRIMARY KEY, data BLOB NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS spans(
    id INTEGER PRIMARY KEY,
    trace_id BLOB NOT NULL,
    span_id BLOB NOT NULL,
    parent_span_id BLOB NOT NULL,
    service TEXT NOT NULL,
    name TEXT NOT NULL,
    kind INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,
    duration_ns INTEGER NOT NULL,
    status_code INTEGER NOT NULL,
    resource_id INTEGER NOT NULL,
    scope_id INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_service_start ON spans(service, start_ns);
CREATE TABLE IF NOT EXISTS operations(
    service TEXT NOT NULL, name TEXT NOT NULL, kind INTEGER NOT NULL,
    PRIMARY KEY(service, name, kind)) WITHOUT ROWID;
"""

_COLUMNS = "id, trace_id, span_id, parent_span_id, service, name, kind, start_ns, duration_ns, " \
           "status_code, resource_id, scope_id, payload"
_INSERT = f"INSERT INTO spans({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"


@dataclass
class SpanPartition:
    """Writer-side state of one span partition."""

    conn: sqlite3.Connection
    keys: TraceKeyIndex
    next_id: int
    resources: dict[bytes, int] = field(default_factory=dict)
    scopes: dict[bytes, int] = field(default_factory=dict)
    operations: set[tuple[str, str, int]] = field(default_factory=set)


def open_partition(conn: sqlite3.Connection, keys: TraceKeyIndex) -> SpanPartition:
    conn.executescript(SCHEMA)
    keys.load(conn)
    next_id = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM spans").fetchone()[0]
    state = SpanPartition(conn, keys, next_id)
    state.resources = {bytes(d): i for i, d in conn.execute("SELECT id, data FROM resources")}
    state.scopes = {bytes(d): i for i, d in conn.execute("SELECT id, data FROM scopes")}
    state.operations = {tuple(r) for r in conn.execute("SELECT service, name, kind FROM operations")}
    return state


def _intern(conn: sqlite3.Connection, table: str, cache: dict[bytes, int], data: bytes) -> int:
    ref = cache.get(data)
    if ref is None:
        conn.execute(f"INSERT OR IGNORE INTO {table}(data) VALUES (?)", (data,))
        ref = conn.execute(f"SELECT id FROM {table} WHERE data = ?", (data,)).fetchone()[0]
        cache[data] = ref
    return ref


def write(state: SpanPartition, batch: SpanBatch, rows: list[int] | None = None) -> None:
    """Insert spans (all, or the given row numbers) inside the caller's transaction."""
    conn = state.conn
    res_ids = [_intern(conn, "resources", state.resources, r) for r in batch.resources]
    scope_ids = [_intern(conn, "scopes", state.scopes, s) for s in batch.scopes]
    index = range(len(batch)) if rows is None else rows
    first = state.next_id
    n = len(index)
    ids = range(first, first + n)
    b = batch
    if rows is None:
        trace_id, service, name, kind, start = b.trace_id, b.service, b.name, b.kind, b.start_ns
        durations = [e - s for s, e in zip(b.start_ns, b.end_ns, strict=True)]
        conn.executemany(_INSERT, zip(
            ids, trace_id, b.span_id, b.parent_span_id, service, name, kind, start, durations,
            b.status_code, [res_ids[r] for r in b.resource_ref], [scope_ids[s] for s in b.scope_ref],
            b.payload, strict=True))
    else:
        trace_id = [b.trace_id[i] for i in index]
        service = [b.service[i] for i in index]
        name = [b.name[i] for i in index]
        kind = [b.kind[i] for i in index]
        conn.executemany(_INSERT, (
            (first + j, b.trace_id[i], b.span_id[i], b.parent_span_id[i], b.service[i], b.name[i],
             b.kind[i], b.start_ns[i], b.end_ns[i] - b.start_ns[i], b.status_code[i],
             res_ids[b.resource_ref[i]], scope_ids[b.scope_ref[i]], b.payload[i])
            for j, i in enumerate(index)))
    state.next_id = first + n
    new_ops = set(zip(service, name, kind, strict=True)) - state.operations
    if new_ops:
        conn.executemany("INSERT OR IGNORE INTO operations VALUES (?,?,?)", new_ops)
        state.operations |= new_ops
    state.keys.add(trace_keys(trace_id), np.arange(first, first + n, dtype=np.int64))


# --- reads -----------------------------------------------------------------------------------


class SpanReader:
    def __init__(self, parts: PartitionSet, pool: ReaderPool) -> None:
        self.parts = parts
        self.pool = pool

    def _conn(self, part: Partition) -> sqlite3.Connection:
        return self.pool.get(part.path)

    def _lookup(self, part: Partition, trace_id: bytes) -> list[tuple]:
        if part.state is None:
            return []
        conn = self._conn(part)
        conn.execute("BEGIN")
        try:
            rows = part.state.keys.lookup(conn, trace_id)
            if not rows:
                return []
            marks = ",".join("?" * len(rows))
            return conn.execute(
                f"SELECT s.service, s.payload, r.data, c.data FROM spans s "
                f"JOIN resources r ON r.id = s.resource_id JOIN scopes c ON c.id = s.scope_id "
                f"WHERE s.id IN ({marks}) AND s.trace_id = ?", (*rows, trace_id)).fetchall()
        finally:
            conn.execute("COMMIT")

    def get_trace(self, trace_id: bytes, start_ns: int | None, end_ns: int | None) -> list[Span]:
        spans: list[Span] = []
        for part in self.parts.list(start_ns, end_ns):
            for service, payload, resource, scope in self._lookup(part, trace_id):
                spans.append(span_from_payload(payload, service, resource_from_bytes(resource),
                                               scope_from_bytes(scope)))
        spans.sort(key=lambda s: (s.start_ns, s.span_id))
        return spans

    def find_trace_ids(self, q: TraceQuery) -> list[bytes]:
        found: dict[bytes, int] = {}
        where, params = ["1"], []
        if q.service:
            where.append("s.service = ?")
            params.append(q.service)
        if q.operation:
            where.append("s.name = ?")
            params.append(q.operation)
        if q.start_ns is not None:
            where.append("s.start_ns >= ?")
            params.append(q.start_ns)
        if q.end_ns is not None:
            where.append("s.start_ns <= ?")
            params.append(q.end_ns)
        if q.min_duration_ns is not None:
            where.append("s.duration_ns >= ?")
            params.append(q.min_duration_ns)
        if q.max_duration_ns is not None:
            where.append("s.duration_ns <= ?")
            params.append(q.max_duration_ns)
        sql_where = " AND ".join(where)
        for part in self.parts.list(q.start_ns, q.end_ns):
            if len(found) >= q.limit:
                break
            conn = self._conn(part)
            if not q.attributes:
                rows = conn.execute(
                    f"SELECT s.trace_id, max(s.start_ns) AS t FROM spans s WHERE {sql_where} "
                    f"GROUP BY s.trace_id ORDER BY t DESC LIMIT ?", (*params, q.limit - len(found)))
                for trace_id, t in rows:
                    found.setdefault(bytes(trace_id), t)
                continue
            cursor = conn.execute(
                f"SELECT s.trace_id, s.start_ns, s.payload, r.data, s.kind, s.status_code FROM spans s "
                f"JOIN resources r ON r.id = s.resource_id WHERE {sql_where} ORDER BY s.start_ns DESC",
                params)
            for trace_id, t, payload, resource, kind, status in cursor:
                tid = bytes(trace_id)
                if tid in found:
                    continue
                if _attributes_match(q.attributes, payload, resource, kind, status):
                    found[tid] = t
                    if len(found) >= q.limit:
                        break
        return [tid for tid, _ in sorted(found.items(), key=lambda kv: kv[1], reverse=True)][: q.limit]

    def services(self) -> list[str]:
        names: set[str] = set()
        for part in self.parts.list():
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
            ops.update(Operation(n, k) for n, k in self._conn(part).execute(sql, params))
        return sorted(ops, key=lambda o: (o.name, o.span_kind))

    def dependencies(self, start_ns: int, end_ns: int) -> list[DependencyLink]:
        """Parent/child span pairs whose services differ, counted per (parent, child) service.

        Parents are looked up among the spans of the window; a call whose parent started
        before the window is not counted, as in Jaeger's own dependency jobs.
        """
        owner: dict[tuple[bytes, bytes], str] = {}
        children: list[tuple[bytes, bytes, str]] = []
        for part in self.parts.list(start_ns, end_ns):
            conn = self._conn(part)
            services = [r[0] for r in conn.execute("SELECT DISTINCT service FROM operations")]
            for service in services:
                for trace_id, span_id, parent in conn.execute(
                        "SELECT trace_id, span_id, parent_span_id FROM spans "
                        "WHERE service = ? AND start_ns >= ? AND start_ns <= ?",
                        (service, start_ns, end_ns)):
                    owner[(trace_id, span_id)] = service
                    if parent:
                        children.append((trace_id, parent, service))
        calls: Counter[tuple[str, str]] = Counter()
        for trace_id, parent, service in children:
            parent_service = owner.get((trace_id, parent))
            if parent_service is not None and parent_service != service:
                calls[(parent_service, service)] += 1
        return [DependencyLink(p, c, n) for (p, c), n in sorted(calls.items())]


_KIND_TAG = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUS_TAG = {1: "OK", 2: "ERROR"}


def _attributes_match(wanted: dict[str, str], payload: bytes, resource: bytes, kind: int,
                      status: int) -> bool:
    """Jaeger tag search: a tag matches a span attribute, a resource (process) attribute, or
    one of the tags Jaeger derives from OTLP fields (`error`, `span.kind`, `otel.status_code`)."""
    derived = {"span.kind": _KIND_TAG.get(kind, ""), "otel.status_code": _STATUS_TAG.get(status, "")}
    if status == 2:
        derived["error"] = "true"
    attrs = span_attributes(payload)
    res = resource_from_bytes(bytes(resource)).attributes
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
