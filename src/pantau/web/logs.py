"""`/api/pantau/logs`: log search with full-text terms, filters and cursor pagination."""

from __future__ import annotations

import itertools
import math
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from pantau.exporting.formats import EXTENSIONS, FORMATS, MEDIA_TYPES, make_sink, rfc3339
from pantau.exporting.records import LOG_COLUMNS, encode, log_pages, log_row
from pantau.model import LogRecord
from pantau.otlp.values import json_safe
from pantau.query.logsearch import SearchSyntaxError, parse_hex_id, parse_search, severity_range
from pantau.store.base import LogQuery, Store

MAX_LIMIT = 5000


def parse_time_ns(text: str, name: str) -> int:
    """Nanoseconds from unix nanoseconds (Loki's habit), unix seconds, or RFC 3339."""
    t = text.strip()
    if t.lstrip("-").isdigit():
        n = int(t)
        return n if abs(n) >= 10**15 else n * 1_000_000_000
    try:
        seconds = float(t)
        if math.isfinite(seconds):
            return int(seconds * 1e9)
    except ValueError:
        pass
    try:
        return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        raise SearchSyntaxError(
            f"invalid {name} {text!r}: use RFC 3339, unix seconds or nanoseconds") from None


def record_json(r: LogRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "timestamp": rfc3339(r.timestamp_ns),
        "time_unix_nano": str(r.time_ns),
        "observed_time_unix_nano": str(r.observed_time_ns),
        "severity_number": r.severity_number,
        "severity_text": r.severity_text,
        "body": json_safe(r.body),
        "service": r.service,
        "attributes": json_safe(r.attributes),
        "resource": json_safe(r.resource.attributes),
        "scope": {"name": r.scope.name, "version": r.scope.version},
        "trace_id": r.trace_id,
        "span_id": r.span_id,
        "flags": r.flags,
        "event_name": r.event_name,
        "template_id": r.template_id,
    }


def create_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["pantau"])

    @router.get("/api/pantau/logs", summary="Search logs")
    def search_logs(
        q: str = Query("", description='Search: words, "phrases", -excluded, service:, level:, '
                                       "trace_id:, key:value attribute filters; AND, OR, NOT, ( )"),
        service: list[str] = Query([], description="Only these services"),
        severity: str | None = Query(None, description="Exactly this severity (error, warn, ...)"),
        min_severity: str | None = Query(None, description="At least this severity"),
        trace_id: str | None = None,
        span_id: str | None = None,
        start: str | None = Query(None, description="RFC 3339, unix seconds or nanoseconds"),
        end: str | None = None,
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
        cursor: str | None = Query(None, description="next_cursor of the previous page"),
        direction: str = Query("backward", pattern="^(backward|forward)$",
                               description="backward: newest first"),
    ) -> Response:
        try:
            query = log_query(q, service, severity, min_severity, trace_id, span_id, start, end, direction)
            query.limit, query.cursor = limit, cursor
            page = store.search_logs(query)
        except (SearchSyntaxError, ValueError) as exc:
            return bad_request(str(exc))
        body = {"data": [record_json(r) for r in page.records], "next_cursor": page.next_cursor}
        return Response(orjson.dumps(body), media_type="application/json")

    @router.get("/api/pantau/logs/export", summary="Export every record a search matches")
    def export_logs(
        q: str = Query("", description="The search, as for /api/pantau/logs"),
        service: list[str] = Query([]),
        severity: str | None = None,
        min_severity: str | None = None,
        trace_id: str | None = None,
        span_id: str | None = None,
        start: str | None = None,
        end: str | None = None,
        direction: str = Query("forward", pattern="^(backward|forward)$"),
        format: str = Query("jsonl", description="jsonl, csv or parquet"),
        max_records: int | None = Query(None, ge=1, description="Stop after this many records"),
    ) -> Response:
        """Streamed: the response starts with the first page and never holds the whole result."""
        if format not in FORMATS:
            return bad_request(f"unknown format {format!r}: use one of {', '.join(FORMATS)}")
        try:
            query = log_query(q, service, severity, min_severity, trace_id, span_id, start, end, direction)
            pages = log_pages(store, query, max_records)
            first = next(pages, None)  # errors in the query surface here, before the 200 is sent
        except (SearchSyntaxError, ValueError) as exc:
            return bad_request(str(exc))
        all_pages = itertools.chain([first] if first else [], pages)
        body = encode(make_sink(format, LOG_COLUMNS), all_pages, log_row)
        return StreamingResponse(body, media_type=MEDIA_TYPES[format], headers={
            "Content-Disposition": f'attachment; filename="pantau-logs{EXTENSIONS[format]}"'})

    return router


def bad_request(message: str) -> Response:
    return Response(orjson.dumps({"error": message}), status_code=400, media_type="application/json")


def log_query(q: str, service: list[str], severity: str | None, min_severity: str | None,
              trace_id: str | None, span_id: str | None, start: str | None, end: str | None,
              direction: str) -> LogQuery:
    """The store query for the search parameters shared by search and export."""
    query = LogQuery(newest_first=direction == "backward")
    parse_search(q, query)
    query.services.extend(service)
    if severity:
        query.severity_ranges.append(severity_range(severity))
    if min_severity:
        query.min_severity = severity_range(min_severity)[0]
    if trace_id:
        query.trace_id = parse_hex_id(trace_id, 16, "trace id")
    if span_id:
        query.span_id = parse_hex_id(span_id, 8, "span id")
    if start:
        query.start_ns = parse_time_ns(start, "start")
    if end:
        query.end_ns = parse_time_ns(end, "end")
    if query.start_ns is not None and query.end_ns is not None and query.end_ns < query.start_ns:
        raise SearchSyntaxError("end must not be before start")
    return query
