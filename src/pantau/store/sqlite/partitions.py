"""Time partitions: one SQLite file per signal per time window.

Retention drops a whole file, so disk space is actually returned to the system (a DELETE or
DROP TABLE inside one big file only grows its free list).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pantau.store.sqlite.db import connect_reader, file_size, remove_database

_NAME_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(eq=False)
class Partition:
    signal: str
    key: int
    start_ns: int
    end_ns: int  # exclusive
    path: Path
    # Per-signal writer state (caches, in-memory heads); owned by the signal's module.
    state: Any = None
    dropped: bool = False
    extra_files: list[Path] = field(default_factory=list)

    def overlaps(self, start_ns: int | None, end_ns: int | None) -> bool:
        return (start_ns is None or self.end_ns > start_ns) and (end_ns is None or self.start_ns <= end_ns)

    @property
    def size(self) -> int:
        return file_size(self.path) + sum(file_size(p) for p in self.extra_files)


class PartitionSet:
    """The partitions of one signal. Thread-safe; the writer creates, anyone lists."""

    def __init__(self, root: Path, signal: str, duration_ns: int) -> None:
        self.signal = signal
        self.dir = root / signal
        self.dir.mkdir(parents=True, exist_ok=True)
        self.duration_ns = duration_ns
        self._lock = threading.Lock()
        self._parts: dict[int, Partition] = {}
        for path in sorted(self.dir.glob("*.db")):
            if path.name.count(".") > 1:
                continue  # companion files such as <name>.fts.db
            try:
                start = datetime.strptime(path.stem, _NAME_FORMAT).replace(tzinfo=UTC)
            except ValueError:
                continue
            start_ns = int(start.timestamp()) * 1_000_000_000
            key = start_ns // duration_ns
            if key * duration_ns != start_ns:
                # Written with another partition length; keep it readable under its own span.
                key = start_ns // duration_ns
            self._parts[key] = self._make(key, start_ns, path)

    def _make(self, key: int, start_ns: int, path: Path) -> Partition:
        return Partition(self.signal, key, start_ns, start_ns + self.duration_ns, path)

    def key_for(self, ts_ns: int) -> int:
        return ts_ns // self.duration_ns

    def get(self, key: int) -> Partition | None:
        with self._lock:
            return self._parts.get(key)

    def get_or_create(self, key: int, init: Callable[[Partition], None]) -> Partition:
        with self._lock:
            part = self._parts.get(key)
            if part is not None:
                return part
            start_ns = key * self.duration_ns
            name = datetime.fromtimestamp(start_ns / 1e9, UTC).strftime(_NAME_FORMAT)
            part = self._make(key, start_ns, self.dir / f"{name}.db")
            init(part)
            self._parts[key] = part
            return part

    def list(self, start_ns: int | None = None, end_ns: int | None = None,
             newest_first: bool = True) -> list[Partition]:
        with self._lock:
            parts = [p for p in self._parts.values() if p.overlaps(start_ns, end_ns)]
        parts.sort(key=lambda p: p.key, reverse=newest_first)
        return parts

    def remove(self, part: Partition) -> None:
        with self._lock:
            self._parts.pop(part.key, None)
        part.dropped = True

    def delete_files(self, part: Partition) -> None:
        remove_database(part.path)
        for extra in part.extra_files:
            remove_database(extra)

    @property
    def size(self) -> int:
        return sum(p.size for p in self.list())


class ReaderPool:
    """Per-thread read connections, opened on first use.

    When a partition is dropped its path is marked; every thread closes its own connection to
    it on its next call (a connection must not be closed from another thread while in use),
    so the file's space is released once each reader moves on.
    """

    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._dropped: set[Path] = set()
        self._generation = 0

    def get(self, path: Path, attach: dict[str, Path] | None = None):
        local = self._local
        conns: dict[Path, Any] | None = getattr(local, "conns", None)
        if conns is None:
            conns = local.conns = {}
            local.generation = self._generation
        if local.generation != self._generation:
            with self._lock:
                dropped = set(self._dropped)
                local.generation = self._generation
            for stale in [p for p in conns if p in dropped]:
                conns.pop(stale).close()
        conn = conns.get(path)
        if conn is None:
            conn = connect_reader(path)
            for schema, other in (attach or {}).items():
                conn.execute(f"ATTACH DATABASE ? AS {schema}", (f"file:{other}?mode=ro",))
            conns[path] = conn
        return conn

    def mark_dropped(self, path: Path) -> None:
        with self._lock:
            self._dropped.add(path)
            self._generation += 1

    def close_thread(self) -> None:
        conns = getattr(self._local, "conns", None) or {}
        for conn in conns.values():
            conn.close()
        conns.clear()


def now_ns() -> int:
    return time.time_ns()
