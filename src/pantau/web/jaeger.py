"""The Jaeger query API (the JSON the Jaeger UI and Grafana's Jaeger data source read).

Spans are translated from OTLP the way Jaeger's own OTLP receiver does: kind, status and
scope become the tags `span.kind`, `otel.status_code`, `error`, `otel.scope.name`; events
become logs; links become FOLLOWS_FROM references; resource attributes become process tags.
"""

from __future__ import annotations

import base64
import math
import re
import time
from typing import Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from pantau.model import Span, SpanKind, StatusCode
from pantau.store.base import Store, TraceQuery

_KIND = {SpanKind.INTERNAL: "internal", SpanKind.SERVER: "server", SpanKind.CLIENT: "client",
         SpanKind.PRODUCER: "producer", SpanKind.CONSUMER: "consumer"}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)\s*$")
_DURATION_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                "m": 60_000_000_000, "h": 3_600_000_000_000}


class JaegerError(ValueError):
    def __init__(self, message: str, code: int = 400) -> None:
        super().__init__(message)
        self.code = code


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(exc: JaegerError) -> Response:
    return _json({"data": None, "total": 0, "limit": 0, "offset": 0,
                  "errors": [{"code": exc.code, "msg": str(exc)}]}, exc.code)


def _tag(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"key": key, "type": "bool", "value": value}
    if isinstance(value, int):
        return {"key": key, "type": "int64", "value": value}
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"key": key, "type": "string", "value": str(value)}
        return {"key": key, "type": "float64", "value": value}
    if isinstance(value, bytes):
        return {"key": key, "type": "binary", "value": base64.b64encode(value).decode()}
    if isinstance(value, str):
        return {"key": key, "type": "string", "value": value}
    return {"key": key, "type": "string", "value": orjson.dumps(value, default=str).decode()}


def _tags(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    return [_tag(k, v) for k, v in attributes.items()]


def span_to_jaeger(span: Span, process_id: str) -> dict[str, Any]:
    tags = _tags(span.attributes)
    if span.kind in _KIND:
        tags.append(_tag("span.kind", _KIND[span.kind]))
    if span.status_code == StatusCode.ERROR:
        tags.append(_tag("otel.status_code", "ERROR"))
        tags.append(_tag("error", True))
        if span.status_message:
            tags.append(_tag("otel.status_description", span.status_message))
    elif span.status_code == StatusCode.OK:
        tags.append(_tag("otel.status_code", "OK"))
    if span.scope.name:
        tags.append(_tag("otel.scope.name", span.scope.name))
    if span.scope.version:
        tags.append(_tag("otel.scope.version", span.scope.version))
    if span.trace_state:
        tags.append(_tag("w3c.tracestate", span.trace_state))
    references = []
    if span.parent_span_id:
        references.append({"refType": "CHILD_OF", "traceID": span.trace_id, "spanID": span.parent_span_id})
    for link in span.links:
        references.append({"refType": "FOLLOWS_FROM", "traceID": link.trace_id, "spanID": link.span_id})
    logs = [{"timestamp": e.time_ns // 1000,
             "fields": [_tag("event", e.name), *_tags(e.attributes)]} for e in span.events]
    return {
        "traceID": span.trace_id,
        "spanID": span.span_id,
        "operationName": span.name,
        "references": references,
        "startTime": span.start_ns // 1000,
        "duration": max(0, span.end_ns - span.start_ns) // 1000,
        "tags": tags,
        "logs": logs,
        "processID": process_id,
        "warnings": None,
        "flags": span.flags & 0xFF or 1,
    }


def trace_to_jaeger(spans: list[Span]) -> dict[str, Any]:
    processes: dict[str, dict[str, Any]] = {}
    keys: dict[tuple, str] = {}
    out_spans = []
    for span in spans:
        tags = {k: v for k, v in span.resource.attributes.items() if k != "service.name"}
        key = (span.service, orjson.dumps(tags, option=orjson.OPT_SORT_KEYS, default=str))
        pid = keys.get(key)
        if pid is None:
            pid = keys[key] = f"p{len(keys) + 1}"
            processes[pid] = {"serviceName": span.service, "tags": _tags(tags)}
        out_spans.append(span_to_jaeger(span, pid))
    return {"traceID": spans[0].trace_id if spans else "", "spans": out_spans,
            "processes": processes, "warnings": None}


def parse_trace_id(text: str) -> bytes:
    t = text.strip().lower()
    if not t or len(t) > 32 or any(c not in "0123456789abcdef" for c in t):
        raise JaegerError(f"invalid trace id {text!r}: expected up to 32 hex digits")
    return bytes.fromhex(t.rjust(32, "0"))


def parse_duration_ns(text: str | None, name: str) -> int | None:
    """Jaeger/Go durations: `1.2ms`, `100us`, `2s`."""
    if text is None or text == "":
        return None
    m = _DURATION.match(text)
    if not m:
        raise JaegerError(f"invalid {name} {text!r}: use a duration such as 1.2ms, 500us or 2s")
    return int(float(m.group(1)) * _DURATION_NS[m.group(2)])


def _int_param(text: str | None, name: str) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise JaegerError(f"invalid {name} {text!r}: expected an integer") from None


def create_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["jaeger"])

    @router.get("/api/services", summary="Services that sent spans")
    def services() -> Response:
        names = store.services()
        return _json({"data": names, "total": len(names), "limit": 0, "offset": 0, "errors": None})

    @router.get("/api/services/{service}/operations", summary="Operation names of a service")
    def service_operations(service: str) -> Response:
        names = sorted({op.name for op in store.operations(service)})
        return _json({"data": names, "total": len(names), "limit": 0, "offset": 0, "errors": None})

    @router.get("/api/operations", summary="Operations of a service with their span kinds")
    def operations(service: str, spanKind: str | None = None) -> Response:
        kind = None
        if spanKind:
            lookup = {v: k for k, v in _KIND.items()}
            if spanKind not in lookup:
                return _error(JaegerError(f"invalid spanKind {spanKind!r}"))
            kind = int(lookup[spanKind])
        ops = store.operations(service, kind)
        data = [{"name": o.name, "spanKind": _KIND.get(SpanKind(o.span_kind), "")} for o in ops]
        return _json({"data": data, "total": len(data), "limit": 0, "offset": 0, "errors": None})

    @router.get("/api/traces", summary="Search traces")
    def find_traces(
        request: Request,
        service: str | None = None,
        operation: str | None = None,
        tags: str | None = None,
        minDuration: str | None = None,
        maxDuration: str | None = None,
        start: str | None = Query(None, description="microseconds since the epoch"),
        end: str | None = Query(None, description="microseconds since the epoch"),
        lookback: str | None = None,
        limit: str | None = None,
    ) -> Response:
        try:
            ids = request.query_params.getlist("traceID")
            if ids:
                wanted = [parse_trace_id(t) for t in ids]
                data = [trace_to_jaeger(s) for s in (store.get_trace(t) for t in wanted) if s]
                return _json({"data": data, "total": len(data), "limit": 0, "offset": 0, "errors": None})
            attributes: dict[str, str] = {}
            if tags:
                try:
                    parsed = orjson.loads(tags)
                except orjson.JSONDecodeError:
                    raise JaegerError(f"malformed tags parameter {tags!r}: expected a JSON object") from None
                if not isinstance(parsed, dict):
                    raise JaegerError("malformed tags parameter: expected a JSON object")
                attributes = {str(k): v if isinstance(v, str) else orjson.dumps(v).decode()
                              for k, v in parsed.items()}
            for key in request.query_params.getlist("tag"):
                k, sep, v = key.partition(":")
                if not sep:
                    raise JaegerError(f"malformed tag {key!r}: expected key:value")
                attributes[k] = v
            end_us = _int_param(end, "end")
            start_us = _int_param(start, "start")
            if end_us is None:
                end_us = time.time_ns() // 1000
            if start_us is None:
                back = parse_duration_ns(lookback, "lookback") if lookback and lookback != "custom" else None
                start_us = end_us - (back // 1000 if back else 3_600_000_000 * 48)
            if start_us > end_us:
                raise JaegerError("start must not be after end")
            query = TraceQuery(
                service=service or None, operation=operation or None, attributes=attributes,
                min_duration_ns=parse_duration_ns(minDuration, "minDuration"),
                max_duration_ns=parse_duration_ns(maxDuration, "maxDuration"),
                start_ns=start_us * 1000, end_ns=end_us * 1000 + 999,
                limit=_int_param(limit, "limit") or 20,
            )
            if query.limit <= 0:
                raise JaegerError("limit must be positive")
        except JaegerError as exc:
            return _error(exc)
        data = []
        for trace_id in store.find_trace_ids(query):
            spans = store.get_trace(trace_id)
            if spans:
                data.append(trace_to_jaeger(spans))
        return _json({"data": data, "total": len(data), "limit": 0, "offset": 0, "errors": None})

    @router.get("/api/traces/{trace_id}", summary="One trace by id")
    def get_trace(trace_id: str, start: str | None = None, end: str | None = None) -> Response:
        try:
            tid = parse_trace_id(trace_id)
            s, e = _int_param(start, "start"), _int_param(end, "end")
        except JaegerError as exc:
            return _error(exc)
        spans = store.get_trace(tid, None if s is None else s * 1000, None if e is None else e * 1000)
        if not spans:
            return _error(JaegerError("trace not found", 404))
        return _json({"data": [trace_to_jaeger(spans)], "total": 1, "limit": 0, "offset": 0, "errors": None})

    @router.get("/api/dependencies", summary="Service dependency map (calls between services)")
    def dependencies(endTs: str | None = None, lookback: str | None = None) -> Response:
        try:
            end_ms = _int_param(endTs, "endTs") or time.time_ns() // 1_000_000
            back_ms = _int_param(lookback, "lookback") or 86_400_000
        except JaegerError as exc:
            return _error(exc)
        links = store.dependencies((end_ms - back_ms) * 1_000_000, end_ms * 1_000_000 + 999_999)
        data = [{"parent": link.parent, "child": link.child, "callCount": link.call_count} for link in links]
        return _json({"data": data, "total": len(data), "limit": 0, "offset": 0, "errors": None})

    return router
