"""The store interface: the only way any part of pantau reads or writes telemetry.

Like Prometheus's `storage.Queryable`, it says nothing about how data is laid out. SQLite
(`pantau.store.sqlite`) is the embedded implementation; ClickHouse is the scale-out one.

Writes are asynchronous and acknowledged: `submit` queues a batch and returns a future that
completes once the batch is durably committed, so a receiver can answer its client only
after the data is safe. A full queue is reported at once (`Overloaded`), never by blocking,
so receivers can tell clients to back off.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from pantau.logs.audit import AuditEntry
from pantau.model import Labels, LogBatch, LogRecord, MetricMetadata, SampleBatch, Span, SpanBatch

WriteBatch = SpanBatch | LogBatch | SampleBatch


class StoreError(Exception):
    """Base class for store failures."""


class Overloaded(StoreError):
    """The write queue is full. Retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreClosed(StoreError):
    """The store is shutting down and accepts no more writes."""


# --- metric selection ------------------------------------------------------------------------


@dataclass(frozen=True)
class Matcher:
    """A Prometheus label matcher. Regular expressions are anchored at both ends, as in PromQL."""

    name: str
    op: str  # "=", "!=", "=~", "!~"
    value: str

    def __post_init__(self) -> None:
        if self.op not in ("=", "!=", "=~", "!~"):
            raise ValueError(f"unknown matcher operator {self.op!r}")
        if self.op in ("=~", "!~"):
            try:
                object.__setattr__(self, "_regex", re.compile(self.value, re.DOTALL))
            except re.error as exc:
                raise ValueError(f"invalid regular expression {self.value!r}: {exc}") from None

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        hit = self._regex.fullmatch(value) is not None  # type: ignore[attr-defined]
        return hit if self.op == "=~" else not hit

    @property
    def matches_empty(self) -> bool:
        """Whether a series *without* this label matches (Prometheus treats absent as "")."""
        return self.matches("")


@dataclass(slots=True)
class SeriesSamples:
    """The raw samples of one series in a time range, oldest first."""

    labels: Labels
    timestamps_ms: np.ndarray  # int64
    values: np.ndarray  # float64


@dataclass(slots=True)
class SampleColumns:
    """The raw samples of many series laid end to end: series i has
    `timestamps_ms[offsets[i]:offsets[i + 1]]` (ascending) and the same slice of `values`.

    What a query over thousands of series reads: one object per series (`SeriesSamples`)
    costs more than its few samples when the window is short (an instant selector's
    lookback, the anomaly engine's new step), and the garbage collector has to scan them."""

    labels: list[Labels]
    offsets: np.ndarray  # int64, len(labels) + 1
    timestamps_ms: np.ndarray  # int64
    values: np.ndarray  # float64

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def from_series(cls, series: Sequence[SeriesSamples]) -> SampleColumns:
        lens = np.fromiter((len(s.timestamps_ms) for s in series), dtype=np.int64, count=len(series))
        offsets = np.zeros(len(series) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        if not len(series):
            return cls([], offsets, np.zeros(0, dtype=np.int64), np.zeros(0))
        if len(series) == 1:  # e.g. one alert rule's series: no copy
            s = series[0]
            return cls([s.labels], offsets, np.asarray(s.timestamps_ms, dtype=np.int64),
                       np.asarray(s.values, dtype=np.float64))
        return cls([s.labels for s in series], offsets,
                   np.concatenate([np.asarray(s.timestamps_ms, dtype=np.int64) for s in series]),
                   np.concatenate([np.asarray(s.values, dtype=np.float64) for s in series]))

    def series(self) -> list[SeriesSamples]:
        o = self.offsets.tolist()
        ts, vs = self.timestamps_ms, self.values
        return [SeriesSamples(lab, ts[a:b], vs[a:b]) for lab, a, b in zip(self.labels, o[:-1], o[1:], strict=True)]

    def sorted(self) -> SampleColumns:
        """The same series ordered by label set (the order `select_samples` returns)."""
        labels = self.labels
        order = sorted(range(len(labels)), key=labels.__getitem__)
        if all(i == j for i, j in enumerate(order)):
            return self
        perm = np.asarray(order, dtype=np.int64)
        lens = np.diff(self.offsets)[perm]
        offsets = np.zeros(len(labels) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        # index of each output sample in the input: its series' old start plus its rank in it
        gather = np.repeat(self.offsets[:-1][perm] - offsets[:-1], lens) + np.arange(int(offsets[-1]))
        return SampleColumns([labels[i] for i in order], offsets, self.timestamps_ms[gather], self.values[gather])


@dataclass(slots=True)
class RollupSeries:
    """Downsampled samples of one series: one row per bucket (see `Store.select_rollups`)."""

    labels: Labels
    bucket_ms: np.ndarray  # bucket start
    count: np.ndarray
    sum: np.ndarray
    min: np.ndarray
    max: np.ndarray
    first: np.ndarray  # the bucket's first value ...
    first_ms: np.ndarray  # ... and its timestamp
    last: np.ndarray  # the bucket's last value ...
    last_ms: np.ndarray  # ... and its timestamp
    increase: np.ndarray  # counter increase into and within the bucket (drops count as resets)


# --- traces ----------------------------------------------------------------------------------


@dataclass(slots=True)
class TraceQuery:
    """Trace search, as Jaeger's `/api/traces` defines it: traces with at least one span that
    matches every given condition."""

    service: str | None = None
    operation: str | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    min_duration_ns: int | None = None
    max_duration_ns: int | None = None
    start_ns: int | None = None
    end_ns: int | None = None
    limit: int = 20


@dataclass(frozen=True, slots=True)
class DependencyLink:
    parent: str
    child: str
    call_count: int


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    span_kind: int


# --- logs ------------------------------------------------------------------------------------


@dataclass(slots=True)
class LogQuery:
    """A log search. Terms and phrases match whole words, case-insensitively, in the body and
    in string attribute values; every condition must hold."""

    terms: list[str] = field(default_factory=list)
    phrases: list[str] = field(default_factory=list)
    excluded: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    min_severity: int | None = None
    # Inclusive severity-number ranges, any of which matches (e.g. ERROR = 17..20).
    severity_ranges: list[tuple[int, int]] = field(default_factory=list)
    trace_id: bytes | None = None
    span_id: bytes | None = None
    template_id: str | None = None  # records the pattern miner put in this template
    attributes: dict[str, str] = field(default_factory=dict)
    start_ns: int | None = None
    end_ns: int | None = None
    limit: int = 100
    cursor: str | None = None
    newest_first: bool = True
    # LogQL: matchers on stream labels (see model.log_stream_labels) ...
    stream: list[Matcher] = field(default_factory=list)
    # ... line filters on the body, in order: ("|=", text), ("!=", text), ("|~", regex), ("!~", regex)
    line_filters: list[tuple[str, str]] = field(default_factory=list)
    # ... and any further per-record condition (parsers, label filters), checked last
    predicate: Callable[[LogRecord], bool] | None = None


@dataclass(slots=True)
class LogStreamTimes:
    """Matching records of one stream: their timestamps (ns, ascending) and body sizes (bytes),
    what LogQL's count_over_time, rate and bytes_over_time need."""

    labels: Labels
    times_ns: np.ndarray
    sizes: np.ndarray


@dataclass(slots=True)
class LogWindowCounts:
    """Records and body bytes of one stream in each query window."""

    labels: Labels
    counts: np.ndarray
    sizes: np.ndarray


@dataclass(slots=True)
class LogPage:
    records: list[LogRecord]
    next_cursor: str | None


# --- events and component state ------------------------------------------------------------


@dataclass(slots=True)
class Event:
    """Something a component concluded: an anomaly, a new log pattern, a fired alert, an
    incident. Events with the same `id` are one event updated over time (e.g. its end)."""

    kind: str  # "anomaly", "log_pattern", "alert", "incident", ...
    start_ns: int
    id: str = ""  # empty: the store assigns one
    end_ns: int | None = None  # None while ongoing
    severity: str = "info"  # info | warning | critical
    title: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    data: dict = field(default_factory=dict)  # JSON-serialisable details (reason, score, evidence...)


@dataclass(slots=True)
class EventQuery:
    kinds: list[str] = field(default_factory=list)
    start_ns: int | None = None  # events overlapping [start, end]
    end_ns: int | None = None
    labels: dict[str, str] = field(default_factory=dict)  # equality on labels
    open_only: bool = False
    limit: int = 100


# --- health and stats ------------------------------------------------------------------------


@dataclass(slots=True)
class StoreStats:
    queue_items: int = 0
    queue_capacity: int = 0
    commits: int = 0
    commit_seconds_total: float = 0.0
    commit_seconds_buckets: dict[float, int] = field(default_factory=dict)
    bytes_by_signal: dict[str, int] = field(default_factory=dict)
    partitions_by_signal: dict[str, int] = field(default_factory=dict)
    written_by_signal: dict[str, int] = field(default_factory=dict)
    log_index_lag: int = 0


CommitListener = Callable[[WriteBatch], None]


class Store(ABC):
    """Everything pantau keeps: spans, logs, metric series and samples."""

    # lifecycle
    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def close(self) -> None:
        """Commit every accepted batch, then release resources. Idempotent."""

    @abstractmethod
    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call `listener(batch)` after each batch is committed (from the writer's thread)."""

    # writes
    @abstractmethod
    def submit(self, batch: WriteBatch) -> Future[None]:
        """Queue a batch. The future completes when it is committed, or fails with the reason.

        Raises `Overloaded` when the queue is full and `StoreClosed` when shutting down.
        """

    def write(self, batch: WriteBatch, timeout: float | None = None) -> None:
        """Submit and wait for the commit (for callers outside an event loop)."""
        self.submit(batch).result(timeout)

    # traces
    @abstractmethod
    def get_trace(self, trace_id: bytes, start_ns: int | None = None,
                  end_ns: int | None = None) -> list[Span]: ...

    @abstractmethod
    def find_trace_ids(self, query: TraceQuery) -> list[bytes]:
        """Ids of matching traces, most recent first."""

    @abstractmethod
    def services(self) -> list[str]: ...

    @abstractmethod
    def operations(self, service: str, span_kind: int | None = None) -> list[Operation]: ...

    @abstractmethod
    def dependencies(self, start_ns: int, end_ns: int) -> list[DependencyLink]:
        """Calls between services: a span whose parent span belongs to another service."""

    # logs
    @abstractmethod
    def search_logs(self, query: LogQuery) -> LogPage: ...

    @abstractmethod
    def log_stream_times(self, query: LogQuery) -> list[LogStreamTimes]:
        """Timestamps and sizes of every matching record, per stream (no limit, no cursor)."""

    @abstractmethod
    def log_window_counts(self, stream: Sequence[Matcher], ends_ns: np.ndarray, range_ns: int) -> list[LogWindowCounts]:
        """Records and bytes per stream in each window (end - range, end], for stream matchers
        alone (no filters): what `count_over_time({...}[r])` and `bytes_over_time` need."""

    @abstractmethod
    def log_streams(self, stream: Sequence[Matcher], start_ns: int | None, end_ns: int | None) -> list[Labels]:
        """Label sets of the log streams with records in the range."""

    # metrics
    @abstractmethod
    def select_series(self, matchers: Sequence[Matcher], start_ms: int | None = None,
                      end_ms: int | None = None) -> list[Labels]: ...

    @abstractmethod
    def label_names(self, matchers: Sequence[Matcher] = (), start_ms: int | None = None,
                    end_ms: int | None = None) -> list[str]: ...

    @abstractmethod
    def label_values(self, name: str, matchers: Sequence[Matcher] = (),
                     start_ms: int | None = None, end_ms: int | None = None) -> list[str]: ...

    @abstractmethod
    def select_samples(self, matchers: Sequence[Matcher], start_ms: int,
                       end_ms: int) -> list[SeriesSamples]:
        """Raw samples with `start_ms <= t <= end_ms` of every series the matchers select."""

    def select_sample_columns(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> SampleColumns:
        """`select_samples` laid end to end, series in the same order (see `SampleColumns`).
        Stores that can should answer it without making one object per series."""
        return SampleColumns.from_series(self.select_samples(matchers, start_ms, end_ms))

    @abstractmethod
    def select_rollups(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int,
                       resolution_ms: int) -> list[RollupSeries]:
        """Downsampled rows (1 min or 1 h buckets) for long-range queries; an approximation of
        the raw data, as in Thanos: windows are made of whole buckets."""

    @abstractmethod
    def metadata(self, metric: str | None = None) -> dict[str, list[MetricMetadata]]: ...

    # audit
    @abstractmethod
    def audit_chain(self) -> Iterator[AuditEntry]:
        """The tamper-evident chain of audit records, in sequence (see pantau.logs.audit)."""

    @abstractmethod
    def set_log_templates(self, batch: LogBatch, template_ids: Sequence[str]) -> None:
        """Attach the pattern miner's template id to each record of a committed batch (in the
        batch's row order). Asynchronous: it never waits for the writer."""

    # events and state
    @abstractmethod
    def put_event(self, event: Event) -> str:
        """Insert or update (same id) an event, durably; returns its id."""

    @abstractmethod
    def get_event(self, event_id: str) -> Event | None: ...

    @abstractmethod
    def find_events(self, query: EventQuery) -> list[Event]:
        """Matching events, most recent start first."""

    @abstractmethod
    def put_state(self, namespace: str, key: str, value: bytes) -> None:
        """Durable state of a component (detector baselines, miner state, alert state)."""

    def put_states(self, namespace: str, items: dict[str, bytes | None]) -> None:
        """Write (or, for None, delete) several keys at once, in one transaction where the
        store can: the alert pipeline persists thousands of small records per second."""
        for key, value in items.items():
            if value is None:
                self.delete_state(namespace, key)
            else:
                self.put_state(namespace, key, value)

    @abstractmethod
    def get_state(self, namespace: str, key: str) -> bytes | None: ...

    @abstractmethod
    def list_state(self, namespace: str) -> dict[str, bytes]: ...

    @abstractmethod
    def delete_state(self, namespace: str, key: str) -> None: ...

    # maintenance
    @abstractmethod
    def enforce_retention(self, now_ns: int) -> int:
        """Drop partitions past their retention; returns how many were dropped."""

    @abstractmethod
    def stats(self) -> StoreStats: ...
