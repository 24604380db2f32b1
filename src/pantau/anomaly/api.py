"""`/api/pantau/anomalies`: the anomalies found, and what is needed to draw one.

* `GET /api/pantau/anomalies` lists anomaly events, newest first, filtered by `watch`, `rule`,
  `type` (statistical | business), `severity`, `open=true`, a time range (`start`, `end`:
  RFC 3339 or unix seconds) and any series label (`label=job:checkout`, repeatable);
* `GET /api/pantau/anomalies/series` lists the watched series with what each has learned;
* `GET /api/pantau/anomalies/{id}` returns one event with, for statistical anomalies, the
  series around it and its baseline band (expected, lower, upper) and score at the same steps.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from pantau.anomaly.engine import OUTPUT_METRICS, AnomalyEngine, output_labels
from pantau.store.base import Event, EventQuery, Matcher, Store


def _time_ns(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    from pantau.web.prometheus import ApiError, parse_time

    try:
        return parse_time(text, name) * 1_000_000
    except ApiError as exc:
        raise HTTPException(400, str(exc)) from None


def event_json(e: Event) -> dict[str, Any]:
    return {"id": e.id, "start_ns": e.start_ns, "end_ns": e.end_ns, "open": e.end_ns is None,
            "severity": e.severity, "title": e.title, "labels": e.labels,
            "type": e.data.get("type"), "reason": e.data.get("reason", e.title),
            "score": e.data.get("max_score", e.data.get("score")), "data": e.data}


def _finite(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in values]


def create_router(store: Store, engine: AnomalyEngine | None) -> APIRouter:
    router = APIRouter(prefix="/api/pantau/anomalies", tags=["anomalies"])

    @router.get("", summary="Anomaly events, newest first")
    async def list_anomalies(
        watch: str | None = None, rule: str | None = None, type: str | None = None,
        severity: str | None = None, open: bool = False, start: str | None = None, end: str | None = None,
        label: Annotated[list[str] | None, Query(description="name:value, repeatable")] = None,
        limit: int = Query(100, ge=1, le=10_000),
    ) -> dict:
        labels: dict[str, str] = {}
        for item in label or []:
            name, sep, value = item.partition(":")
            if not sep:
                raise HTTPException(400, f"label filter {item!r} must be name:value")
            labels[name] = value
        if watch:
            labels["anomaly_watch"] = watch
        if rule:
            labels["anomaly_rule"] = rule
        if type:
            if type not in ("statistical", "business"):
                raise HTTPException(400, "type must be statistical or business")
            labels["anomaly_type"] = type
        q = EventQuery(kinds=["anomaly"], start_ns=_time_ns(start, "start"), end_ns=_time_ns(end, "end"),
                       labels=labels, open_only=open, limit=limit if not severity else 10_000)
        events = await run_in_threadpool(store.find_events, q)
        if severity:
            events = [e for e in events if e.severity == severity][:limit]
        return {"anomalies": [event_json(e) for e in events]}

    @router.get("/series", summary="Watched series and what each has learned")
    async def watched() -> dict:
        if engine is None:
            return {"series": [], "enabled": False}
        out = []
        for st in list(engine.series.values()):
            out.append({"watch": st.watch, "labels": dict(st.labels), "points_seen": st.model.seen,
                        "last_timestamp_ms": st.model.last_t, "baseline_from": st.source,
                        "score": st.last_score, "open_anomaly": st.open.id if st.open else None})
        stats = engine.last_stats
        return {"enabled": True, "series": out,
                "last_evaluation": {"series": stats.series, "points": stats.points, "seconds": stats.seconds}}

    @router.get("/{anomaly_id}", summary="One anomaly with its series and baseline band")
    async def one(anomaly_id: str, before: float = Query(3600, description="seconds of context before"),
                  after: float = Query(600, description="seconds of context after")) -> dict:
        event = await run_in_threadpool(store.get_event, anomaly_id)
        if event is None or event.kind != "anomaly":
            raise HTTPException(404, f"no anomaly {anomaly_id!r}")
        out = event_json(event)
        if event.data.get("type") != "statistical":
            return out
        start_ms = event.start_ns // 1_000_000 - int(before * 1000)
        end_ms = (event.end_ns // 1_000_000 if event.end_ns else event.start_ns // 1_000_000) + int(after * 1000)
        watch = event.data.get("watch", "")
        series_labels = event.data.get("series", {})
        base = output_labels(watch, tuple(sorted(series_labels.items())))

        def read() -> dict:
            curves: dict[str, Any] = {}
            for name in OUTPUT_METRICS:
                matchers = [Matcher("__name__", "=", name)] + [Matcher(k, "=", v) for k, v in base.items()]
                found = [s for s in store.select_samples(matchers, start_ms, end_ms)
                         if len(s.labels) == len(base) + 1]
                if found:
                    s = found[0]
                    curves[name.removeprefix("pantau_anomaly_")] = {
                        "timestamps_ms": s.timestamps_ms.tolist(), "values": _finite(s.values)}
            # the watched series itself, at the engine's steps
            series = None
            expr = event.data.get("expr")
            if expr and engine is not None:
                step = engine.step_ms
                lo, hi = start_ms - start_ms % step, end_ms - end_ms % step
                res = engine.promql.range(expr, lo, hi, step, max_resolution_ms=0)
                want = tuple(sorted(series_labels.items()))
                for i, lab in enumerate(res.labels):
                    if tuple(lab) == want:
                        steps = np.arange(lo, hi + 1, step, dtype=np.int64)
                        keep = res.present[i]
                        series = {"timestamps_ms": steps[keep].tolist(), "values": _finite(res.values[i][keep])}
            return {"series": series, "band": curves}

        out.update(await run_in_threadpool(read))
        return out

    return router
