"""`/api/pantau/traces/{id}`: a trace with OTLP fidelity (nanoseconds, resource, scope, links).

The Jaeger API is what Grafana reads; this one loses nothing OTLP carried.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from pantau.model import Span
from pantau.otlp.values import json_safe
from pantau.store.base import Store
from pantau.web.jaeger import JaegerError, parse_trace_id


def span_json(s: Span) -> dict[str, Any]:
    return {
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "service": s.service,
        "name": s.name,
        "kind": s.kind.name,
        "start_time_unix_nano": str(s.start_ns),
        "end_time_unix_nano": str(s.end_ns),
        "duration_ns": s.duration_ns,
        "status": {"code": s.status_code.name, "message": s.status_message},
        "attributes": json_safe(s.attributes),
        "events": [{"name": e.name, "time_unix_nano": str(e.time_ns), "attributes": json_safe(e.attributes)}
                   for e in s.events],
        "links": [{"trace_id": link.trace_id, "span_id": link.span_id, "trace_state": link.trace_state,
                   "attributes": json_safe(link.attributes)} for link in s.links],
        "resource": json_safe(s.resource.attributes),
        "scope": {"name": s.scope.name, "version": s.scope.version},
        "trace_state": s.trace_state,
        "flags": s.flags,
    }


def create_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["pantau"])

    @router.get("/api/pantau/traces/{trace_id}", summary="One trace, every OTLP field kept")
    def get_trace(trace_id: str) -> Response:
        try:
            tid = parse_trace_id(trace_id)
        except JaegerError as exc:
            return Response(orjson.dumps({"error": str(exc)}), status_code=400, media_type="application/json")
        spans = store.get_trace(tid)
        if not spans:
            return Response(orjson.dumps({"error": "trace not found"}), status_code=404,
                            media_type="application/json")
        return Response(orjson.dumps({"trace_id": tid.hex(), "spans": [span_json(s) for s in spans]}),
                        media_type="application/json")

    return router
