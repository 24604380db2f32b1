"""The Prometheus HTTP API, with Prometheus's response and error shapes.

Numbers are written as Prometheus writes them: sample values as strings in Go's shortest
'f' format (`"1000000"`, `"NaN"`, `"+Inf"`), timestamps as seconds with millisecond digits.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import datetime
from typing import Any

import numpy as np
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from pantau import __version__
from pantau.query.promql import Engine, Matrix, PromQLError, Vector, parse_selector
from pantau.store.base import Matcher, Store

log = logging.getLogger("pantau.web.prometheus")
MIN_TIME_MS = -9223372036854775 // 1000 * 1000
MAX_TIME_MS = 9223372036854775
_MAX_POINTS = 11_000


class ApiError(Exception):
    def __init__(self, message: str, error_type: str = "bad_data", status: int = 400) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.status = status


def _ok(data: Any, warnings: list[str] | None = None) -> Response:
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    return Response(orjson.dumps(body), media_type="application/json")


def _fail(exc: ApiError) -> Response:
    return Response(orjson.dumps({"status": "error", "errorType": exc.error_type, "error": str(exc)}),
                    status_code=exc.status, media_type="application/json")


def format_value(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return np.format_float_positional(v, trim="-")


def format_timestamp(ms: int) -> orjson.Fragment:
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    whole, frac = divmod(ms, 1000)
    text = f"{sign}{whole}" + (f".{frac:03d}" if frac else "")
    return orjson.Fragment(text.encode())


def parse_time(text: str, name: str) -> int:
    """A Prometheus time parameter (unix seconds, possibly fractional, or RFC 3339) in ms."""
    try:
        seconds = float(text)
        if math.isfinite(seconds):
            return round(seconds * 1000)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return int(dt.timestamp() * 1000)
    except ValueError:
        raise ApiError(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp') from None


def parse_step(text: str) -> int:
    from pantau.config import parse_duration

    try:
        seconds = float(text)
    except ValueError:
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise ApiError(f'invalid parameter "step": cannot parse "{text}" to a valid duration') from None
    if seconds <= 0:
        raise ApiError("zero or negative query resolution step widths are not accepted. "
                       "Try a positive integer")
    return round(seconds * 1000)


async def _params(request: Request) -> dict[str, list[str]]:
    """Query string and, for POST, form fields (Prometheus accepts both)."""
    params: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        params.setdefault(k, []).append(v)
    if request.method == "POST":
        form = await request.form()
        for k, v in form.multi_items():
            params.setdefault(k, []).append(str(v))
    return params


def _matchers(params: dict[str, list[str]], required: bool) -> list[list[Matcher]]:
    selectors = params.get("match[]", [])
    if required and not selectors:
        raise ApiError("no match[] parameter provided")
    try:
        return [parse_selector(s) for s in selectors]
    except PromQLError as exc:
        raise ApiError(str(exc)) from None


def _range(params: dict[str, list[str]]) -> tuple[int | None, int | None]:
    start = parse_time(params["start"][0], "start") if params.get("start") else None
    end = parse_time(params["end"][0], "end") if params.get("end") else None
    if start is not None and end is not None and end < start:
        raise ApiError('invalid parameter "end": end timestamp must not be before start time')
    return start, end


def _series_json(labels) -> dict[str, str]:
    return dict(labels)


def _max_resolution(text: str) -> int | None:
    """Thanos's `max_source_resolution`: `raw` (or 0s), `1m`, `1h`, or `auto` (the default)."""
    value = text.strip().lower()
    if value in ("auto", ""):
        return None
    if value in ("raw", "0", "0s"):
        return 0
    from pantau.config import parse_duration

    try:
        return int(parse_duration(value) * 1000)
    except ValueError:
        raise ApiError(f'invalid parameter "max_source_resolution": {text!r} (use raw, 1m, 1h or auto)') from None


def _api_error(exc: PromQLError) -> ApiError:
    status = {"bad_data": 400, "execution": 422, "timeout": 503}.get(exc.error_type, 400)
    return ApiError(str(exc), exc.error_type, status)


def _vector_json(vec: Vector, t_ms: int) -> list[dict]:
    stamp = format_timestamp(t_ms)
    return [{"metric": _series_json(labels), "value": [stamp, format_value(float(vec.values[i, 0]))]}
            for i, labels in enumerate(vec.labels) if vec.present[i, 0]]


def _matrix_json(matrix: Matrix) -> list[dict]:
    t = int(matrix.eval_times[0])
    out = []
    for s in sorted(matrix.series, key=lambda s: s.labels):
        keep = (s.timestamps >= t - matrix.range_ms) & (s.timestamps <= t)
        if keep.any():
            out.append({"metric": _series_json(s.labels),
                        "values": [[format_timestamp(int(ts)), format_value(float(v))]
                                   for ts, v in zip(s.timestamps[keep], s.values[keep], strict=True)]})
    return out


def create_router(store: Store) -> APIRouter:
    router = APIRouter(tags=["prometheus"])
    engine = Engine(store)

    async def series(request: Request) -> Response:
        try:
            params = await _params(request)
            selectors = _matchers(params, required=True)
            start, end = _range(params)
        except ApiError as exc:
            return _fail(exc)

        def run() -> list:
            seen: dict[tuple, None] = {}
            for matchers in selectors:
                for found in store.select_series(matchers, start, end):
                    seen[found] = None
            return [_series_json(lab) for lab in sorted(seen)]

        return _ok(await run_in_threadpool(run))

    async def labels(request: Request) -> Response:
        try:
            params = await _params(request)
            selectors = _matchers(params, required=False)
            start, end = _range(params)
        except ApiError as exc:
            return _fail(exc)

        def run() -> list[str]:
            names: set[str] = set()
            for matchers in selectors or [[]]:
                names.update(store.label_names(matchers, start, end))
            return sorted(names)

        return _ok(await run_in_threadpool(run))

    async def label_values(name: str, request: Request) -> Response:
        try:
            params = await _params(request)
            selectors = _matchers(params, required=False)
            start, end = _range(params)
        except ApiError as exc:
            return _fail(exc)

        def run() -> list[str]:
            values: set[str] = set()
            for matchers in selectors or [[]]:
                values.update(store.label_values(name, matchers, start, end))
            return sorted(values)

        return _ok(await run_in_threadpool(run))

    async def metadata(request: Request) -> Response:
        metric = request.query_params.get("metric") or None
        items = store.metadata(metric)
        limit = request.query_params.get("limit")
        data = {name: [{"type": m.type, "help": m.help, "unit": m.unit} for m in ms]
                for name, ms in sorted(items.items())}
        if limit and limit.isdigit() and int(limit) > 0:
            data = dict(list(data.items())[: int(limit)])
        return _ok(data)

    async def query(request: Request) -> Response:
        try:
            params = await _params(request)
            if not params.get("query"):
                raise ApiError('invalid parameter "query": query must not be empty')
            t = parse_time(params["time"][0], "time") if params.get("time") else time.time_ns() // 1_000_000
            result = await run_in_threadpool(engine.instant, params["query"][0], t)
        except ApiError as exc:
            return _fail(exc)
        except PromQLError as exc:
            return _fail(_api_error(exc))
        except Exception as exc:  # a bug must still answer in Prometheus's shape
            log.exception("query %r failed", params.get("query"))
            return _fail(ApiError(f"internal error: {exc}", "internal", 500))
        if result.kind == "vector":
            data = _vector_json(result.value, result.time_ms)
        elif result.kind == "matrix":
            data = _matrix_json(result.value)
        elif result.kind == "scalar":
            data = [format_timestamp(result.time_ms), format_value(result.value)]
        else:
            data = [format_timestamp(result.time_ms), result.value]
        return _ok({"resultType": result.kind, "result": data})

    async def query_range(request: Request) -> Response:
        try:
            params = await _params(request)
            for required in ("query", "start", "end", "step"):
                if not params.get(required):
                    raise ApiError(f'invalid parameter "{required}": missing')
            start = parse_time(params["start"][0], "start")
            end = parse_time(params["end"][0], "end")
            if end < start:
                raise ApiError('invalid parameter "end": end timestamp must not be before start time')
            step = parse_step(params["step"][0])
            if (end - start) // step + 1 > _MAX_POINTS:
                raise ApiError("exceeded maximum resolution of 11,000 points per timeseries. "
                               "Try decreasing the query resolution (?step=XX)")
            max_resolution = _max_resolution(params.get("max_source_resolution", ["auto"])[0])
            result = await run_in_threadpool(engine.range, params["query"][0], start, end, step, max_resolution)
        except ApiError as exc:
            return _fail(exc)
        except PromQLError as exc:
            return _fail(_api_error(exc))
        except Exception as exc:
            log.exception("range query %r failed", params.get("query"))
            return _fail(ApiError(f"internal error: {exc}", "internal", 500))
        steps = np.arange(start, end + 1, step, dtype=np.int64)
        data = []
        for i, labels in enumerate(result.labels):
            idx = np.flatnonzero(result.present[i])
            data.append({"metric": _series_json(labels),
                         "values": [[format_timestamp(int(steps[k])), format_value(float(result.values[i, k]))]
                                    for k in idx.tolist()]})
        return _ok({"resultType": "matrix", "result": data})

    async def buildinfo() -> Response:
        return _ok({"version": __version__, "revision": "", "branch": "", "buildUser": "",
                    "buildDate": "", "goVersion": "python", "application": "pantau"})

    for path, endpoint, summary in (
        ("/api/v1/series", series, "Series matching selectors"),
        ("/api/v1/labels", labels, "Label names"),
        ("/api/v1/query", query, "Instant query (PromQL)"),
        ("/api/v1/query_range", query_range, "Range query (PromQL)"),
    ):
        router.add_api_route(path, endpoint, methods=["GET", "POST"], summary=summary)
    router.add_api_route("/api/v1/label/{name}/values", label_values, methods=["GET"],
                         summary="Values of a label")
    router.add_api_route("/api/v1/metadata", metadata, methods=["GET"], summary="Metric metadata")
    router.add_api_route("/api/v1/status/buildinfo", buildinfo, methods=["GET"], summary="Build information")
    return router
