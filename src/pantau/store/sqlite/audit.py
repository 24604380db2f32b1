"""The audit chain's file (`audit.db`), appended by the writer thread only.

Kept apart from the time partitions: log retention must not cut the chain, and the chain is
small (audit records are a sliver of all logs)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from pantau.logs.audit import GENESIS, AuditEntry, link_hash
from pantau.store.sqlite.db import connect_reader, connect_writer

SCHEMA = """
CREATE TABLE IF NOT EXISTS chain(
    seq INTEGER PRIMARY KEY, time_ns INTEGER NOT NULL, entry BLOB NOT NULL,
    prev_hash BLOB NOT NULL, hash BLOB NOT NULL);
"""


class AuditChain:
    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.conn = connect_writer(path, synchronous=synchronous)
        self.conn.executescript(SCHEMA)
        row = self.conn.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        self.seq, self.head = (row[0], bytes(row[1])) if row else (0, GENESIS)

    def append(self, entries: list[tuple[int, bytes]]) -> None:
        """Chain entries in one transaction (the caller's batch is acknowledged after it)."""
        seq, head = self.seq, self.head
        rows = []
        for time_ns, entry in entries:
            seq += 1
            h = link_hash(head, seq, entry)
            rows.append((seq, time_ns, entry, head, h))
            head = h
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany("INSERT INTO chain VALUES (?,?,?,?,?)", rows)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.seq, self.head = seq, head

    def close(self) -> None:
        self.conn.close()


def _raw(value) -> bytes:
    """Bytes of a column, whatever a hand edit turned it into (text, a number, NULL)."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, int | float):
        return str(value).encode()
    return bytes(value)


def read_chain(path: Path, after: int = 0, page: int = 10_000) -> Iterator[AuditEntry]:
    """Every entry in sequence order, read in pages from a read-only connection."""
    if not path.exists():
        return
    conn = connect_reader(path)
    try:
        while True:
            rows = conn.execute("SELECT seq, time_ns, entry, prev_hash, hash FROM chain WHERE seq > ? "
                                "ORDER BY seq LIMIT ?", (after, page)).fetchall()
            if not rows:
                return
            for seq, t, entry, prev, h in rows:
                yield AuditEntry(seq, t, _raw(entry), _raw(prev), _raw(h))
            after = rows[-1][0]
    except sqlite3.Error:
        raise
    finally:
        conn.close()
