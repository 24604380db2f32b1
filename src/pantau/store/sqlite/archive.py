"""Archival of expiring partitions to Parquet before their files are deleted.

Retention hands each expiring span or log partition to this thread instead of deleting it:
the thread reads the closed partition file, writes `<archive>/<signal>/<partition>.parquet`
(through a temporary name, so a half-written archive never looks complete), and only then
deletes the partition. If pantau stops first, the partition is still on disk and listed at
the next start, expires again and is archived then: nothing is dropped unarchived.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from pantau.exporting.formats import ParquetSink
from pantau.exporting.records import LOG_COLUMNS, SPAN_COLUMNS, log_row, span_row
from pantau.store.sqlite.db import connect_reader
from pantau.store.sqlite.partitions import Partition

log = logging.getLogger("pantau.store.archive")

ARCHIVED_SIGNALS = ("spans", "logs")


class Archiver:
    def __init__(self, root: Path, pages: dict[str, Callable], delete: Callable[[Partition], None]) -> None:
        """`pages[signal](conn, part)` yields lists of model objects; `delete(part)` removes its files."""
        self.root = root
        self._pages = pages
        self._delete = delete
        self._queue: queue.Queue[Partition | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="pantau-archiver", daemon=True)
        self._thread.start()
        self.archived = 0

    def submit(self, part: Partition) -> None:
        self._queue.put(part)

    def close(self) -> None:
        """Finish the partitions already handed over, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (part := self._queue.get()) is not None:
            try:
                target = self.archive(part)
            except Exception:
                log.exception("archival of %s partition %s failed; its files are kept and it will be "
                              "archived again at the next start", part.signal, part.path.name)
                continue
            self._delete(part)
            self.archived += 1
            log.info("retention: archived %s partition %s to %s, then dropped it", part.signal,
                     part.path.name, target)

    def archive(self, part: Partition) -> Path:
        columns, to_row = (SPAN_COLUMNS, span_row) if part.signal == "spans" else (LOG_COLUMNS, log_row)
        out_dir = self.root / part.signal
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{part.path.stem}.parquet"
        partial = target.with_suffix(".parquet.partial")
        conn = connect_reader(part.path)
        try:
            sink = ParquetSink(columns)
            with partial.open("wb") as f:
                pages: Iterator[list] = self._pages[part.signal](conn, part)
                for page in pages:
                    f.write(sink.write([to_row(item) for item in page]))
                f.write(sink.close())
        finally:
            conn.close()
        partial.replace(target)
        return target
