"""The Loki HTTP API, so Grafana's Loki data source works with pantau unchanged.

`/loki/api/v1/query_range`, `/query`, `/labels`, `/label/<name>/values`, `/series`, and live
tail over WebSocket at `/loki/api/v1/tail`. Errors are answered as Loki answers them: HTTP
400 with the message as plain text.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from pantau.bus import Bus
from pantau.config import parse_duration
from pantau.query.logql import LogQLEngine, LogQLError, parse
from pantau.query.logql.evaluate import format_number
from pantau.query.logql.parser import LogSelector
from pantau.store.base import Store
from pantau.web.logs import parse_time_ns
from pantau.web.prometheus import format_timestamp

DEFAULT_LOOKBACK_NS = 3600 * 10**9
TAIL_POLL_S = 1.0


def _ok(data: Any) -> Response:
    return Response(orjson.dumps({"status": "success", "data": data}), media_type="application/json")


def _bad(message: str, status: int = 400) -> Response:
    return PlainTextResponse(message, status_code=status)


def _range(params, default_back: int = DEFAULT_LOOKBACK_NS) -> tuple[int, int]:
    end = parse_time_ns(params["end"], "end") if params.get("end") else time.time_ns()
    start = parse_time_ns(params["start"], "start") if params.get("start") else end - default_back
    if end < start:
        raise ValueError("end timestamp must not be before or equal to start time")
    return start, end


def _step_ns(params, start: int, end: int) -> int:
    text = params.get("step")
    if not text:
        # Loki's default: the range split into about 250 steps, at least one second
        return max(1_000_000_000, ((end - start) // 250 // 1_000_000_000) * 1_000_000_000)
    try:
        seconds = float(text)
    except ValueError:
        seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError("zero or negative query resolution step widths are not accepted. Try a positive integer")
    return int(seconds * 1e9)


def _streams_json(streams, forward: bool) -> list[dict]:
    out = []
    for s in streams:
        entries = sorted(s.entries, reverse=not forward)
        out.append({"stream": s.labels, "values": [[str(t), line] for t, line in entries]})
    return out


def _matrix_json(series, steps) -> list[dict]:
    out = []
    for s in series:
        values = [[format_timestamp(int(steps[i] // 1_000_000)), format_number(float(s.values[i]))]
                  for i in range(len(steps)) if s.present[i]]
        if values:
            out.append({"metric": dict(s.labels), "values": values})
    return out


def create_router(store: Store, bus: Bus | None = None) -> APIRouter:
    router = APIRouter(tags=["loki"])
    engine = LogQLEngine(store)

    @router.get("/loki/api/v1/query_range", summary="LogQL over a time range (logs or metrics)")
    async def query_range(request: Request) -> Response:
        params = request.query_params
        query = params.get("query", "")
        try:
            start, end = _range(params)
            limit = int(params.get("limit", "100"))
            forward = params.get("direction", "backward").lower() == "forward"
            node = parse(query)
            if isinstance(node, LogSelector):
                streams = await run_in_threadpool(engine.select_logs, query, start, end, limit, forward)
                data = {"resultType": "streams", "result": _streams_json(streams, forward), "stats": {}}
            else:
                step = _step_ns(params, start, end)
                if (end - start) // step > 11_000:
                    raise ValueError("exceeded maximum resolution of 11,000 points per timeseries. "
                                     "Try decreasing the query resolution (?step=XX)")
                import numpy as np

                steps = np.arange(start, end + 1, step, dtype=np.int64)
                series = await run_in_threadpool(engine.range, query, start, end, step)
                data = {"resultType": "matrix", "result": _matrix_json(series, steps), "stats": {}}
        except (LogQLError, ValueError) as exc:
            return _bad(str(exc))
        return _ok(data)

    @router.get("/loki/api/v1/query", summary="LogQL metric query at one instant")
    async def query_instant(request: Request) -> Response:
        params = request.query_params
        try:
            t = parse_time_ns(params["time"], "time") if params.get("time") else time.time_ns()
            result = await run_in_threadpool(engine.instant, params.get("query", ""), t)
        except (LogQLError, ValueError) as exc:
            return _bad(str(exc))
        stamp = format_timestamp(t // 1_000_000)
        if isinstance(result, float):
            return _ok({"resultType": "scalar", "result": [stamp, format_number(result)], "stats": {}})
        vector = [{"metric": dict(s.labels), "value": [stamp, format_number(float(s.values[0]))]} for s in result]
        return _ok({"resultType": "vector", "result": vector, "stats": {}})

    def _streams(params) -> list:
        start, end = _range(params, 6 * 3600 * 10**9)
        selectors = params.getlist("match[]") or params.getlist("match")
        matchers: list = []
        if selectors:
            found: dict = {}
            for text in selectors:
                node = parse(text)
                if not isinstance(node, LogSelector):
                    raise LogQLError(f"invalid match[] {text!r}: expected a stream selector")
                for labels in store.log_streams(node.matchers, start, end):
                    found[labels] = None
            return list(found)
        return store.log_streams(matchers, start, end)

    @router.get("/loki/api/v1/labels", summary="Stream label names")
    async def labels(request: Request) -> Response:
        try:
            streams = await run_in_threadpool(_streams, request.query_params)
        except (LogQLError, ValueError) as exc:
            return _bad(str(exc))
        return _ok(sorted({k for s in streams for k, _ in s}))

    @router.get("/loki/api/v1/label/{name}/values", summary="Values of a stream label")
    async def label_values(name: str, request: Request) -> Response:
        try:
            streams = await run_in_threadpool(_streams, request.query_params)
        except (LogQLError, ValueError) as exc:
            return _bad(str(exc))
        return _ok(sorted({v for s in streams for k, v in s if k == name}))

    @router.get("/loki/api/v1/series", summary="Streams matching selectors")
    async def series(request: Request) -> Response:
        if not (request.query_params.getlist("match[]") or request.query_params.getlist("match")):
            return _bad("at least one match[] argument is required")
        try:
            streams = await run_in_threadpool(_streams, request.query_params)
        except (LogQLError, ValueError) as exc:
            return _bad(str(exc))
        return _ok([dict(s) for s in streams])

    @router.websocket("/loki/api/v1/tail")
    async def tail(websocket: WebSocket) -> None:
        """Live tail: records matching a log query, pushed as they are stored."""
        await websocket.accept()
        params = websocket.query_params
        query = params.get("query", "")
        try:
            node = parse(query)
            if not isinstance(node, LogSelector):
                raise LogQLError("tail needs a log query")
            limit = int(params.get("limit", "100"))
            since = parse_time_ns(params["start"], "start") if params.get("start") else time.time_ns() - 3600 * 10**9
        except (LogQLError, ValueError) as exc:
            await websocket.close(code=1008, reason=str(exc)[:120])
            return
        wake = asyncio.Event()
        unsubscribe = None
        if bus is not None:
            loop = asyncio.get_running_loop()
            unsubscribe = bus.subscribe("data.log", lambda _t, _p: loop.call_soon_threadsafe(wake.set))
        seen_at_since: set[tuple[int, str]] = set()
        try:
            first = True
            while True:
                now = time.time_ns()
                streams = await run_in_threadpool(engine.select_logs, query, since, now + 10**9,
                                                  limit if first else 5000, True)
                first = False
                fresh = []
                newest = since
                for s in streams:
                    entries = [(t, line) for t, line in s.entries if (t, line) not in seen_at_since]
                    if entries:
                        fresh.append({"stream": s.labels, "values": [[str(t), line] for t, line in entries]})
                        newest = max(newest, max(t for t, _ in entries))
                if fresh:
                    await websocket.send_text(orjson.dumps({"streams": fresh, "dropped_entries": None}).decode())
                    if newest > since:
                        since, seen_at_since = newest, set()
                    for s in fresh:
                        seen_at_since.update((int(t), line) for t, line in s["values"] if int(t) == since)
                wake.clear()
                try:
                    await asyncio.wait_for(wake.wait(), TAIL_POLL_S)
                except TimeoutError:
                    pass
        except WebSocketDisconnect:
            pass
        finally:
            if unsubscribe:
                unsubscribe()

    return router
