"""Flat rows for exported logs and spans, and the paged walk over a search result.

The columns follow OpenTelemetry's field names, so an export reads the same in a notebook,
a spreadsheet or a data warehouse; attributes and resource stay whole (JSON text where the
format has no nested values).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from typing import Any

from pantau.exporting.formats import Sink
from pantau.model import LogRecord, Span
from pantau.otlp.values import json_safe
from pantau.store.base import LogQuery, Store

LOG_COLUMNS: list[tuple[str, str]] = [
    ("timestamp", "timestamp"),
    ("observed_timestamp", "timestamp"),
    ("severity_number", "int"),
    ("severity_text", "string"),
    ("service", "string"),
    ("body", "json"),
    ("trace_id", "string"),
    ("span_id", "string"),
    ("event_name", "string"),
    ("attributes", "json"),
    ("resource", "json"),
    ("scope", "string"),
    ("template_id", "string"),
]

SPAN_COLUMNS: list[tuple[str, str]] = [
    ("trace_id", "string"),
    ("span_id", "string"),
    ("parent_span_id", "string"),
    ("service", "string"),
    ("name", "string"),
    ("kind", "string"),
    ("start", "timestamp"),
    ("end", "timestamp"),
    ("duration_ns", "int"),
    ("status_code", "string"),
    ("status_message", "string"),
    ("attributes", "json"),
    ("events", "json"),
    ("resource", "json"),
    ("scope", "string"),
]

PAGE = 2000


def log_row(r: LogRecord) -> dict[str, Any]:
    return {
        "timestamp": r.timestamp_ns,
        "observed_timestamp": r.observed_time_ns or None,
        "severity_number": r.severity_number,
        "severity_text": r.severity_text,
        "service": r.service,
        "body": json_safe(r.body),
        "trace_id": r.trace_id,
        "span_id": r.span_id,
        "event_name": r.event_name,
        "attributes": json_safe(r.attributes),
        "resource": json_safe(r.resource.attributes),
        "scope": r.scope.name,
        "template_id": r.template_id,
    }


def span_row(s: Span) -> dict[str, Any]:
    return {
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "service": s.service,
        "name": s.name,
        "kind": s.kind.name,
        "start": s.start_ns,
        "end": s.end_ns,
        "duration_ns": s.duration_ns,
        "status_code": s.status_code.name,
        "status_message": s.status_message,
        "attributes": json_safe(s.attributes),
        "events": [json_safe({"name": e.name, "time_unix_nano": e.time_ns, "attributes": e.attributes})
                   for e in s.events],
        "resource": json_safe(s.resource.attributes),
        "scope": s.scope.name,
    }


def log_pages(store: Store, query: LogQuery, max_records: int | None = None) -> Iterator[list[LogRecord]]:
    """Every record the query matches, a page at a time, following the store's cursor."""
    q = dataclasses.replace(query, limit=PAGE, cursor=None)
    left = max_records
    while True:
        if left is not None:
            q.limit = min(PAGE, left)
            if q.limit <= 0:
                return
        page = store.search_logs(q)
        if page.records:
            yield page.records
        if left is not None:
            left -= len(page.records)
        if not page.next_cursor:
            return
        q.cursor = page.next_cursor


def encode(sink: Sink, pages: Iterator[Sequence[Any]], to_row) -> Iterator[bytes]:
    """The sink's bytes for each page, then its trailer (Parquet's footer)."""
    for page in pages:
        chunk = sink.write([to_row(item) for item in page])
        if chunk:
            yield chunk
    tail = sink.close()
    if tail:
        yield tail
