"""The shapes every part of pantau shares.

Two families live here:

* **Read models** (`Span`, `LogRecord`, `Sample`, `Labels`): decoded, friendly objects returned
  by the store's queries and handed to APIs, detectors and the UI.
* **Write batches** (`SpanBatch`, `LogBatch`, `SampleBatch`): what ingest hands to the store.
  They are columnar and carry the original OTLP protobuf encoding of each item (`payload`)
  next to the few fields that are indexed. Decoding every attribute of every item on the way
  in is the single largest cost of an OTLP receiver written in Python; keeping the encoding
  makes ingest cost proportional to what is indexed, and queries decode only what they return.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

import orjson

AttrValue = Any  # str | bool | int | float | bytes | list[AttrValue] | dict[str, AttrValue] | None
Attributes = dict[str, AttrValue]


class SpanKind(IntEnum):
    """OTLP span kinds (same numbers as the protobuf enum)."""

    UNSPECIFIED = 0
    INTERNAL = 1
    SERVER = 2
    CLIENT = 3
    PRODUCER = 4
    CONSUMER = 5


class StatusCode(IntEnum):
    UNSET = 0
    OK = 1
    ERROR = 2


@dataclass(slots=True)
class Resource:
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0

    @property
    def service_name(self) -> str:
        return service_name_of(self.attributes)


@dataclass(slots=True)
class Scope:
    name: str = ""
    version: str = ""
    attributes: Attributes = field(default_factory=dict)


@dataclass(slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: Attributes = field(default_factory=dict)
    dropped_attributes_count: int = 0


@dataclass(slots=True)
class SpanLink:
    trace_id: str
    span_id: str
    trace_state: str = ""
    attributes: Attributes = field(default_factory=dict)
    flags: int = 0


@dataclass(slots=True)
class Span:
    """One span. Ids are lowercase hex, as in W3C trace context and the Jaeger API."""

    trace_id: str
    span_id: str
    parent_span_id: str
    service: str
    name: str
    kind: SpanKind
    start_ns: int
    end_ns: int
    status_code: StatusCode = StatusCode.UNSET
    status_message: str = ""
    attributes: Attributes = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    links: list[SpanLink] = field(default_factory=list)
    resource: Resource = field(default_factory=Resource)
    scope: Scope = field(default_factory=Scope)
    trace_state: str = ""
    flags: int = 0
    dropped_attributes_count: int = 0
    dropped_events_count: int = 0
    dropped_links_count: int = 0

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


@dataclass(slots=True)
class LogRecord:
    time_ns: int
    observed_time_ns: int
    severity_number: int
    severity_text: str
    body: AttrValue
    service: str = ""
    attributes: Attributes = field(default_factory=dict)
    resource: Resource = field(default_factory=Resource)
    scope: Scope = field(default_factory=Scope)
    trace_id: str = ""
    span_id: str = ""
    flags: int = 0
    event_name: str = ""
    dropped_attributes_count: int = 0
    # Opaque, store-specific position used for cursor pagination and de-duplication.
    id: str = ""
    # The log pattern (template) the hub's miner put this record in; "" until mined.
    template_id: str = ""

    @property
    def timestamp_ns(self) -> int:
        """The time to order by: the event time, or when it was observed if the source gave none."""
        return self.time_ns or self.observed_time_ns


# --- metrics -------------------------------------------------------------------------------

Labels = tuple[tuple[str, str], ...]
"""A label set as Prometheus sees it: sorted (name, value) pairs, `__name__` included."""

METRIC_NAME = "__name__"


def make_labels(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    """Canonical label set: sorted by name, empty values dropped (Prometheus treats them as absent)."""
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple(sorted((k, v) for k, v in items if v != ""))


def labels_dict(labels: Labels) -> dict[str, str]:
    return dict(labels)


def metric_name(labels: Labels) -> str:
    for k, v in labels:
        if k == METRIC_NAME:
            return v
    return ""


STALE_NAN_BITS = 0x7FF0000000000002
"""Prometheus's staleness marker: a NaN with this exact bit pattern."""


def is_stale_marker(value: float) -> bool:
    import struct

    return math.isnan(value) and struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_NAN_BITS


def stale_marker() -> float:
    import struct

    return struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]


@dataclass(slots=True)
class Sample:
    labels: Labels
    timestamp_ms: int
    value: float

    @property
    def name(self) -> str:
        return metric_name(self.labels)


class MetricType:
    """Prometheus metric types, as `/api/v1/metadata` reports them."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"
    SUMMARY = "summary"
    UNKNOWN = "unknown"


@dataclass(slots=True, frozen=True)
class MetricMetadata:
    metric: str
    type: str
    help: str = ""
    unit: str = ""


# --- write batches -------------------------------------------------------------------------


@dataclass(slots=True)
class SpanBatch:
    """Spans of one export request, column by column.

    `resources[i]` / `scopes[i]` are OTLP `Resource` / `InstrumentationScope` encodings,
    referenced by `resource_ref` / `scope_ref`. `payload[i]` is the OTLP `Span` encoding.
    """

    resources: list[bytes] = field(default_factory=list)
    scopes: list[bytes] = field(default_factory=list)
    trace_id: list[bytes] = field(default_factory=list)
    span_id: list[bytes] = field(default_factory=list)
    parent_span_id: list[bytes] = field(default_factory=list)
    service: list[str] = field(default_factory=list)
    name: list[str] = field(default_factory=list)
    kind: list[int] = field(default_factory=list)
    start_ns: list[int] = field(default_factory=list)
    end_ns: list[int] = field(default_factory=list)
    status_code: list[int] = field(default_factory=list)
    resource_ref: list[int] = field(default_factory=list)
    scope_ref: list[int] = field(default_factory=list)
    payload: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.span_id)


@dataclass(slots=True)
class LogBatch:
    """Log records of one export request, column by column.

    `body` is the body as searchable text; `payload` is the OTLP `LogRecord` encoding with the
    body left out (it is stored once, as text, unless it was not a string: then `body_json`
    marks that `body` holds the JSON form of a structured body and the payload keeps the
    original).
    """

    resources: list[bytes] = field(default_factory=list)
    scopes: list[bytes] = field(default_factory=list)
    time_ns: list[int] = field(default_factory=list)
    observed_ns: list[int] = field(default_factory=list)
    severity_number: list[int] = field(default_factory=list)
    severity_text: list[str] = field(default_factory=list)
    body: list[str] = field(default_factory=list)
    trace_id: list[bytes] = field(default_factory=list)
    span_id: list[bytes] = field(default_factory=list)
    service: list[str] = field(default_factory=list)
    resource_ref: list[int] = field(default_factory=list)
    scope_ref: list[int] = field(default_factory=list)
    payload: list[bytes] = field(default_factory=list)
    # Audit records of the batch, for the tamper-evident chain: (time ns, canonical JSON).
    audit: list[tuple[int, bytes]] = field(default_factory=list)
    # Where the store put the rows, filled at commit: (partition set, partition key, block,
    # batch rows in block order or None for all), so later findings (template ids) can be
    # attached to the stored records.
    placed: list[tuple[str, int, int, list[int] | None]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.time_ns)


def series_key(labels: Labels) -> str:
    """The canonical text of a label set: the series' identity in the store (and its key in
    dicts, where a str's hash is computed once while a tuple's is recomputed on every lookup)."""
    return orjson.dumps(labels).decode()


@dataclass(slots=True)
class SampleBatch:
    """Metric samples of one export request, column by column.

    `series` / `series_key` hold each distinct label set once; `ref[i]` says which one sample
    `i` belongs to, so the store resolves a series once per batch, not once per sample.
    """

    series: list[Labels] = field(default_factory=list)
    series_key: list[str] = field(default_factory=list)
    ref: list[int] = field(default_factory=list)
    timestamp_ms: list[int] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    metadata: dict[str, MetricMetadata] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.value)

    def add_series(self, labels: Labels, key: str | None = None) -> int:
        """The position of a label set in `series`, adding it if new."""
        key = series_key(labels) if key is None else key
        ref = self._index.get(key)
        if ref is None:
            ref = self._index[key] = len(self.series)
            self.series.append(labels)
            self.series_key.append(key)
        return ref

    def add_new_series(self, labels: Labels, key: str) -> int:
        """Add a label set the caller knows is not in the batch yet (no duplicate check)."""
        ref = self._index[key] = len(self.series)
        self.series.append(labels)
        self.series_key.append(key)
        return ref

    def add_new_series_many(self, labels: Iterable[Labels], keys: Iterable[str]) -> int:
        """Add label sets the caller knows are not in the batch yet, in one go (the anomaly
        engine adds four score series for each of thousands of series per evaluation); returns
        the ref of the first, the others following in order."""
        first = len(self.series)
        self.series.extend(labels)
        self.series_key.extend(keys)
        self._index.update(zip(self.series_key[first:], range(first, len(self.series_key)), strict=True))
        return first

    def append(self, labels: Labels, timestamp_ms: int, value: float) -> None:
        self.ref.append(self.add_series(labels))
        self.timestamp_ms.append(timestamp_ms)
        self.value.append(value)

    def labels_at(self, i: int) -> Labels:
        return self.series[self.ref[i]]


# --- helpers -------------------------------------------------------------------------------


def service_name_of(resource_attributes: Mapping[str, AttrValue]) -> str:
    """`service.name`, or the SDK default `unknown_service` when a resource has none."""
    name = resource_attributes.get("service.name")
    return str(name) if name not in (None, "") else "unknown_service"


def hex_id(raw: bytes) -> str:
    return raw.hex() if raw else ""


SEVERITY_TEXT_BY_NUMBER = {
    1: "TRACE", 5: "DEBUG", 9: "INFO", 13: "WARN", 17: "ERROR", 21: "FATAL",
}


def severity_text_for(number: int) -> str:
    """The OpenTelemetry short name of a severity number (TRACE..FATAL, with 2-4 suffixes)."""
    if number <= 0:
        return ""
    base = ((number - 1) // 4) * 4 + 1
    name = SEVERITY_TEXT_BY_NUMBER.get(base, "FATAL")
    step = number - base
    return name if step == 0 else f"{name}{step + 1}"


def log_stream_labels(resource_attributes: Mapping[str, AttrValue], severity_text: str) -> Labels:
    """The labels of the log stream a record belongs to, as Loki's OTLP ingestion names them:
    `service_name`, the resource attributes with dots as underscores, and `severity_text`."""
    from pantau.otlp.prometheus import label_name
    from pantau.otlp.values import as_text

    pairs: dict[str, str] = {}
    for key, value in resource_attributes.items():
        name = label_name(key)
        if name and value not in (None, ""):
            pairs[name] = as_text(value)
    pairs["service_name"] = service_name_of(resource_attributes)
    if severity_text:
        pairs["severity_text"] = severity_text
    return tuple(sorted(pairs.items()))
