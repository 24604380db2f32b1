"""Log reads over several partition sets (one per retention tier), merged as if one.

A search runs in every set with the caller's limit, the pages are merged by time, and the
next cursor remembers where each set stopped, so paging through a merged result returns
every record exactly once and in order, as it does with a single set.
"""

from __future__ import annotations

import base64
import dataclasses
import heapq
from collections.abc import Sequence

import numpy as np
import orjson

from pantau.model import Labels
from pantau.store.base import LogPage, LogQuery, LogStreamTimes, LogWindowCounts, Matcher
from pantau.store.sqlite.logs import LogReader, cursor_after

_DONE = "-"


class TieredLogReader:
    def __init__(self, readers: Sequence[LogReader]) -> None:
        self.readers = list(readers)

    def _cursors(self, text: str | None) -> list[str | None]:
        if not text:
            return [None] * len(self.readers)
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            cursors = orjson.loads(raw)
        except ValueError:
            raise ValueError(f"invalid cursor {text!r}") from None
        if not isinstance(cursors, list) or len(cursors) != len(self.readers):
            raise ValueError(f"invalid cursor {text!r}: it belongs to another retention layout")
        return cursors

    def search(self, q: LogQuery) -> LogPage:
        cursors = self._cursors(q.cursor)
        pages = []
        for reader, cursor in zip(self.readers, cursors, strict=True):
            if cursor == _DONE:
                pages.append(LogPage([], None))
                continue
            pages.append(reader.search(dataclasses.replace(q, cursor=cursor)))
        sign = -1 if q.newest_first else 1
        merged = heapq.merge(*[[(sign * r.timestamp_ns, i, j) for j, r in enumerate(p.records)]
                               for i, p in enumerate(pages)])
        taken = [0] * len(pages)
        records = []
        for _, i, j in merged:
            if len(records) == q.limit:
                break
            records.append(pages[i].records[j])
            taken[i] = j + 1
        following: list[str | None] = []
        for i, page in enumerate(pages):
            if cursors[i] == _DONE:
                following.append(_DONE)
            elif taken[i] == len(page.records):
                following.append(page.next_cursor or _DONE)
            elif taken[i] == 0:
                following.append(cursors[i])
            else:
                following.append(cursor_after(page.records[taken[i] - 1]))
        more = any(c != _DONE for c in following)
        token = base64.urlsafe_b64encode(orjson.dumps(following)).decode().rstrip("=") if more else None
        return LogPage(records, token)

    def stream_times(self, q: LogQuery) -> list[LogStreamTimes]:
        grouped: dict[Labels, list[LogStreamTimes]] = {}
        for reader in self.readers:
            for st in reader.stream_times(q):
                grouped.setdefault(st.labels, []).append(st)
        out = []
        for labels, parts in grouped.items():
            if len(parts) == 1:
                out.append(parts[0])
                continue
            times = np.concatenate([p.times_ns for p in parts])
            sizes = np.concatenate([p.sizes for p in parts])
            order = np.argsort(times, kind="stable")
            out.append(LogStreamTimes(labels, times[order], sizes[order]))
        return out

    def window_counts(self, q: LogQuery, ends: np.ndarray, range_ns: int) -> list[LogWindowCounts]:
        merged: dict[Labels, LogWindowCounts] = {}
        for reader in self.readers:
            for wc in reader.window_counts(q, ends, range_ns):
                seen = merged.get(wc.labels)
                if seen is None:
                    merged[wc.labels] = LogWindowCounts(wc.labels, wc.counts.copy(), wc.sizes.copy())
                else:
                    seen.counts += wc.counts
                    seen.sizes += wc.sizes
        return list(merged.values())

    def streams(self, matchers: Sequence[Matcher], start_ns: int | None, end_ns: int | None) -> list[Labels]:
        found: set[Labels] = set()
        for reader in self.readers:
            found.update(reader.streams(matchers, start_ns, end_ns))
        return sorted(found)
