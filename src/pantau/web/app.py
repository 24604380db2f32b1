"""The FastAPI application on the hub's main port (3000 by default)."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from pantau import __version__
from pantau.bus import Bus
from pantau.selfmon import SelfMetrics
from pantau.store.base import Store
from pantau.web import jaeger, logs, loki, prometheus, traces


def create_app(store: Store, metrics: SelfMetrics, ready: Callable[[], bool], bus: Bus | None = None) -> FastAPI:
    app = FastAPI(
        title="pantau",
        version=__version__,
        description="Observability hub: Jaeger, Prometheus and pantau APIs over one store.",
    )
    app.include_router(jaeger.create_router(store))
    app.include_router(prometheus.create_router(store))
    app.include_router(logs.create_router(store))
    app.include_router(traces.create_router(store))
    app.include_router(loki.create_router(store, bus))

    @app.get("/metrics", tags=["self"], summary="pantau's own metrics (Prometheus format)")
    def self_metrics() -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", tags=["self"], summary="Liveness: the process is serving")
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok\n")

    @app.get("/readyz", tags=["self"], summary="Readiness: storage is open and writing")
    def readyz() -> PlainTextResponse:
        if ready():
            return PlainTextResponse("ready\n")
        return PlainTextResponse("not ready\n", status_code=503)

    return app
