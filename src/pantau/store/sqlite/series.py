"""The series index: every label set ever written, its id, and postings for label matching.

Lives in one file (`index.db`) for all time partitions, as Prometheus keeps one symbol table
per block; series ids are stable across partitions so samples can refer to them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import orjson

from pantau.model import METRIC_NAME, Labels, MetricMetadata
from pantau.store.base import Matcher
from pantau.store.sqlite.db import connect_writer

SCHEMA = """
CREATE TABLE IF NOT EXISTS series(id INTEGER PRIMARY KEY, labels TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS postings(
    name TEXT NOT NULL, value TEXT NOT NULL, series_id INTEGER NOT NULL,
    PRIMARY KEY(name, value, series_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS metadata(
    metric TEXT PRIMARY KEY, type TEXT NOT NULL, help TEXT NOT NULL, unit TEXT NOT NULL);
"""


def _decode(text: str) -> Labels:
    return tuple((k, v) for k, v in orjson.loads(text))


class SeriesIndex:
    """Resolves label sets to ids (writer thread) and matches label matchers (any thread).

    All label sets are kept in memory: resolving a known series is one dict lookup, and
    matchers run over memory. Postings are also written to SQLite so other tools (and a
    future lazy-loading mode for very many series) can use them.
    """

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.conn = connect_writer(path, synchronous=synchronous)
        self.conn.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.ids: dict[str, int] = {}  # by series_key
        self.labels: dict[int, Labels] = {}
        self.by_name: dict[str, set[int]] = {}
        # label (name, value) -> ids: equality matchers (`instance="a"`) find their few series
        # without scanning every series of the metric (alert rules select one series each)
        self.postings: dict[tuple[str, str], set[int]] = {}
        for sid, text in self.conn.execute("SELECT id, labels FROM series"):
            self._remember(sid, _decode(text), text)
        self._next_id = max(self.labels, default=0) + 1
        self._metadata: dict[str, MetricMetadata] = {
            m: MetricMetadata(m, t, h, u) for m, t, h, u in self.conn.execute("SELECT * FROM metadata")}

    def _remember(self, sid: int, labels: Labels, key: str) -> None:
        self.ids[key] = sid
        self.labels[sid] = labels
        name = next((v for k, v in labels if k == METRIC_NAME), "")
        self.by_name.setdefault(name, set()).add(sid)
        postings = self.postings
        for pair in labels:
            if pair[0] != METRIC_NAME:
                ids = postings.get(pair)
                if ids is None:
                    postings[pair] = {sid}
                else:
                    ids.add(sid)

    # --- writer side -----------------------------------------------------------------------

    def resolve(self, series: dict[str, Labels]) -> dict[str, int]:
        """Ids of series (by `series_key`), creating new ones inside a transaction the caller
        commits (then calls `committed`)."""
        ids = self.ids
        out: dict[str, int] = {}
        new: list[tuple[int, Labels, str]] = []
        for key, labels in series.items():
            sid = ids.get(key)
            if sid is None:
                sid = self._next_id
                self._next_id += 1
                new.append((sid, labels, key))
            out[key] = sid
        if new:
            self.conn.executemany("INSERT INTO series(id, labels) VALUES (?, ?)",
                                  ((sid, key) for sid, _, key in new))
            self.conn.executemany("INSERT OR IGNORE INTO postings VALUES (?, ?, ?)",
                                  ((k, v, sid) for sid, lab, _ in new for k, v in lab))
            self._pending = new
        return out

    def committed(self) -> None:
        """The transaction holding the last `resolve` committed: make the new series visible."""
        new = getattr(self, "_pending", None)
        if new:
            with self._lock:
                for sid, labels, key in new:
                    self._remember(sid, labels, key)
            self._pending = []

    def rolled_back(self) -> None:
        new = getattr(self, "_pending", None) or []
        if new:
            self._next_id = min(sid for sid, _, _ in new)
        self._pending = []

    def metadata_changed(self, items: Iterable[MetricMetadata]) -> bool:
        return any(self._metadata.get(m.metric) != m for m in items)

    def set_metadata(self, items: Iterable[MetricMetadata]) -> None:
        changed = [m for m in items if self._metadata.get(m.metric) != m]
        if changed:
            self.conn.executemany("INSERT OR REPLACE INTO metadata VALUES (?, ?, ?, ?)",
                                  ((m.metric, m.type, m.help, m.unit) for m in changed))
            with self._lock:
                for m in changed:
                    self._metadata[m.metric] = m

    # --- reader side -----------------------------------------------------------------------

    def match(self, matchers: Sequence[Matcher]) -> list[int]:
        """Ids of the series every matcher accepts (an absent label counts as "")."""
        with self._lock:
            candidates: Iterable[int] | None = None
            exact: Matcher | None = None  # the matcher whose postings are the candidates
            for m in matchers:
                if m.op == "=~" and m.name != METRIC_NAME:
                    # `instance=~"a|b|c"`: the union of a few postings (Prometheus's set matches)
                    values = _literal_alternatives(m.value)
                    if not values:
                        continue
                    found = set().union(*(self.postings.get((m.name, v), ()) for v in values))
                elif m.op != "=" or m.value == "":
                    continue
                else:
                    found = (self.by_name.get(m.value, set()) if m.name == METRIC_NAME
                             else self.postings.get((m.name, m.value), set()))
                if candidates is None or len(found) < len(candidates):  # type: ignore[arg-type]
                    candidates, exact = found, m
            if candidates is None:
                candidates = list(self.labels)
            labels = self.labels
            # the postings' own matcher holds for every candidate: not checked again (a metric
            # name alone selects its series without a look at their labels)
            rest = [m for m in matchers if m is not exact]
            if not rest:
                return list(candidates)
            return [sid for sid in candidates
                    if all(m.matches(_value(labels[sid], m.name)) for m in rest)]

    def labels_of(self, ids: Iterable[int]) -> list[Labels]:
        with self._lock:
            return [self.labels[i] for i in ids]

    def all_ids(self) -> list[int]:
        with self._lock:
            return list(self.labels)

    def metadata(self, metric: str | None = None) -> dict[str, list[MetricMetadata]]:
        with self._lock:
            items = list(self._metadata.values())
        return {m.metric: [m] for m in items if metric is None or m.metric == metric}

    def close(self) -> None:
        self.conn.close()


_LITERAL = re.compile(r"(?:[^\\.^$*+?()\[\]{}|]|\\[^a-zA-Z0-9])+")
_UNESCAPE = re.compile(r"\\(.)")


def _literal_alternatives(regex: str) -> list[str] | None:
    """`a|b\\.c` -> ["a", "b.c"] when the regex is nothing but literal alternatives."""
    parts = regex.split("|")
    if not all(_LITERAL.fullmatch(p) for p in parts):
        return None
    return [_UNESCAPE.sub(r"\1", p) for p in parts]


def _value(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""
