"""Events and component state, in one small SQLite file (`state.db`).

Both are written rarely compared with telemetry (an anomaly, an alert transition, a detector's
baseline every few minutes), read by id or by recent time, and must survive restarts. They
bypass the telemetry write queue: each call is its own short transaction, serialised by a lock.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

import orjson

from pantau.store.base import Event, EventQuery
from pantau.store.sqlite.db import connect_writer

SCHEMA = """
CREATE TABLE IF NOT EXISTS events(
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER,
    severity TEXT NOT NULL, title TEXT NOT NULL, labels TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_kind_start ON events(kind, start_ns);
CREATE INDEX IF NOT EXISTS events_start ON events(start_ns);
CREATE TABLE IF NOT EXISTS state(
    namespace TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY(namespace, key))
    WITHOUT ROWID;
"""


class EventStore:
    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.conn = connect_writer(path, synchronous=synchronous)
        self.conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def put_event(self, e: Event) -> str:
        if not e.id:
            e.id = uuid.uuid4().hex
        row = (e.id, e.kind, e.start_ns, e.end_ns, e.severity, e.title,
               orjson.dumps(e.labels, option=orjson.OPT_SORT_KEYS).decode(),
               orjson.dumps(e.data, option=orjson.OPT_SERIALIZE_NUMPY).decode())
        with self._lock:
            self.conn.execute("INSERT OR REPLACE INTO events VALUES (?,?,?,?,?,?,?,?)", row)
        return e.id

    def get_event(self, event_id: str) -> Event | None:
        with self._lock:
            row = self.conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        return _event(row) if row else None

    def find_events(self, q: EventQuery) -> list[Event]:
        where, params = ["1"], []
        if q.kinds:
            where.append(f"kind IN ({','.join('?' * len(q.kinds))})")
            params.extend(q.kinds)
        if q.end_ns is not None:
            where.append("start_ns <= ?")
            params.append(q.end_ns)
        if q.start_ns is not None:
            where.append("(end_ns IS NULL OR end_ns >= ?)")
            params.append(q.start_ns)
        if q.open_only:
            where.append("end_ns IS NULL")
        sql = f"SELECT * FROM events WHERE {' AND '.join(where)} ORDER BY start_ns DESC"
        out: list[Event] = []
        with self._lock:
            cursor = self.conn.execute(sql, params)
            for row in cursor:
                event = _event(row)
                if all(event.labels.get(k) == v for k, v in q.labels.items()):
                    out.append(event)
                    if len(out) >= q.limit:
                        break
        return out

    def drop_events_before(self, ns: int) -> int:
        with self._lock:
            return self.conn.execute("DELETE FROM events WHERE end_ns IS NOT NULL AND end_ns < ?", (ns,)).rowcount

    def put_state(self, namespace: str, key: str, value: bytes) -> None:
        with self._lock:
            self.conn.execute("INSERT OR REPLACE INTO state VALUES (?,?,?)", (namespace, key, value))

    def put_states(self, namespace: str, items: dict[str, bytes | None]) -> None:
        puts = [(namespace, k, v) for k, v in items.items() if v is not None]
        drops = [(namespace, k) for k, v in items.items() if v is None]
        with self._lock:
            self.conn.execute("BEGIN")
            try:
                if puts:
                    self.conn.executemany("INSERT OR REPLACE INTO state VALUES (?,?,?)", puts)
                if drops:
                    self.conn.executemany("DELETE FROM state WHERE namespace = ? AND key = ?", drops)
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def get_state(self, namespace: str, key: str) -> bytes | None:
        with self._lock:
            row = self.conn.execute("SELECT value FROM state WHERE namespace = ? AND key = ?",
                                    (namespace, key)).fetchone()
        return bytes(row[0]) if row else None

    def list_state(self, namespace: str) -> dict[str, bytes]:
        with self._lock:
            return {k: bytes(v) for k, v in self.conn.execute(
                "SELECT key, value FROM state WHERE namespace = ?", (namespace,))}

    def delete_state(self, namespace: str, key: str) -> None:
        with self._lock:
            self.conn.execute("DELETE FROM state WHERE namespace = ? AND key = ?", (namespace, key))


def _event(row: sqlite3.Row | tuple) -> Event:
    eid, kind, start, end, severity, title, labels, data = row
    return Event(kind, start, eid, end, severity, title, orjson.loads(labels), orjson.loads(data))
