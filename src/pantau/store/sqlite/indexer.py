"""The full-text indexer, in a process of its own.

Tokenising text into FTS5 is the heaviest work pantau does for logs. In the hub's process it
would compete with ingest for the interpreter lock; as a separate process it runs on the
other core. It needs nothing but the files: it reads committed blocks of each logs partition
and writes that partition's companion `.fts.db`, recording how far it got in the same
transaction, so it can be stopped or killed at any moment and resumed.

Run by the store as `python -c "from pantau.store.sqlite.indexer import main; main()" DATA_DIR`.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from pantau.store.sqlite.db import connect_writer
from pantau.store.sqlite.logs import fts_path, index_some

log = logging.getLogger("pantau.indexer")
IDLE_POLL_S = 0.2


def _partitions(data_dir: Path) -> list[Path]:
    """Log partitions of every retention tier (`logs/`, `logs_r<seconds>/`)."""
    return sorted(p for d in (data_dir / "logs", *data_dir.glob("logs_r*")) for p in d.glob("*Z.db"))


def run(data_dir: Path) -> None:
    parent = os.getppid()
    stopping = False

    def stop(_sig, _frame) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    conns: dict[Path, tuple[sqlite3.Connection, sqlite3.Connection]] = {}
    try:
        while not stopping and os.getppid() == parent:
            worked = False
            live = set()
            for path in _partitions(data_dir):
                fts_file = fts_path(path)
                if not fts_file.exists():
                    continue  # the store creates it with the partition
                live.add(path)
                pair = conns.get(path)
                try:
                    if pair is None:
                        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
                        source.execute("PRAGMA busy_timeout=10000")
                        pair = conns[path] = (source, connect_writer(fts_file, create=False))
                    worked |= index_some(*pair) > 0
                except sqlite3.Error as exc:
                    log.error("indexing %s: %s", path.name, exc)
                if stopping:
                    break
            for gone in [p for p in conns if p not in live]:
                for conn in conns.pop(gone):
                    conn.close()
            if not worked:
                time.sleep(IDLE_POLL_S)
    finally:
        for source, fts in conns.values():
            source.close()
            fts.close()


class IndexerProcess:
    """Starts the indexer next to the store, restarts it if it dies, stops it with the store."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        code = "from pantau.store.sqlite.indexer import main; main()"
        self.proc = subprocess.Popen([sys.executable, "-c", code, str(self.data_dir)], stdin=subprocess.DEVNULL)

    def ensure_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            log.warning("log indexer exited with %s; restarting it", self.proc.returncode)
            self.start()

    def stop(self, timeout: float = 30.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(Path(sys.argv[1]))
