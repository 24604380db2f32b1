"""`/api/pantau/log-patterns`: the mined templates with their counts, first/last seen and
examples, and the events the miner and detectors raised."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Query

from pantau.logs.patterns import Pattern
from pantau.logs.service import LogPatternService
from pantau.store.base import EventQuery


def _time(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat().replace("+00:00", "Z")


def _pattern(p: Pattern, buckets: bool) -> dict:
    out = {"id": p.id, "service": p.service, "template": p.template, "count": p.count,
           "first_seen": _time(p.first_seen_ns), "last_seen": _time(p.last_seen_ns),
           "first_seen_ns": p.first_seen_ns, "last_seen_ns": p.last_seen_ns, "examples": p.examples}
    if buckets:
        out["buckets"] = [{"start_ns": start, "count": count} for start, count in p.buckets]
    return out


def create_router(service: LogPatternService) -> APIRouter:
    router = APIRouter(tags=["log patterns"])

    @router.get("/api/pantau/log-patterns", summary="Log templates mined per service")
    def list_patterns(
        service_name: str | None = Query(None, alias="service", description="only this service"),
        q: str | None = Query(None, description="only templates containing this text (case-insensitive)"),
        limit: int = Query(100, ge=1, le=10_000),
        buckets: bool = Query(False, description="include counts per time bucket"),
    ) -> dict:
        patterns = service.miner.patterns(service_name)
        if q:
            needle = q.lower()
            patterns = [p for p in patterns if needle in p.template.lower()]
        return {"patterns": [_pattern(p, buckets) for p in patterns[:limit]], "total": len(patterns),
                "services": service.miner.services()}

    @router.get("/api/pantau/log-patterns/events", summary="New patterns, surges and detector findings")
    def list_events(
        service_name: str | None = Query(None, alias="service"),
        kind: list[str] = Query(["log_pattern", "security"]),
        limit: int = Query(100, ge=1, le=10_000),
    ) -> dict:
        query = EventQuery(kinds=kind, limit=limit, labels={"service": service_name} if service_name else {})
        return {"events": [{"id": e.id, "kind": e.kind, "start_ns": e.start_ns, "end_ns": e.end_ns,
                            "severity": e.severity, "title": e.title, "labels": e.labels, "data": e.data}
                           for e in service.store.find_events(query)]}

    @router.get("/api/pantau/log-patterns/{pattern_id}", summary="One template, with its counts per bucket")
    def get_pattern(pattern_id: str) -> dict:
        for p in service.miner.patterns():
            if p.id == pattern_id:
                return _pattern(p, True)
        raise HTTPException(404, f"no log pattern {pattern_id!r}")

    return router
