"""`pantau.init(prometheus_port=...)`: the app's metrics at `/metrics` for a Prometheus to scrape.

OpenTelemetry's Prometheus reader serves the SDK's instruments; this subclass adds pantau's
business metrics (kept outside the SDK, see `business.py`) to each collection, so a scrape
and an OTLP export show the same series.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.resources import Resource

from pantau.sdk import business


class BusinessPrometheusReader(PrometheusMetricReader):
    def __init__(self, resource: Resource, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._pantau_resource = resource

    def _receive_metrics(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        super()._receive_metrics(business.extend(metrics_data, self._pantau_resource), timeout_millis, **kwargs)


def serve(port: int, addr: str = "0.0.0.0") -> Any:
    """prometheus_client's HTTP server on `addr:port`; returns it (so `shutdown` can stop it)."""
    from prometheus_client import start_http_server

    try:
        server, _thread = start_http_server(port, addr=addr)
    except OSError as e:
        raise OSError(f"pantau: cannot serve Prometheus metrics on {addr}:{port}: {e}") from e
    return server
