"""Generic metric helpers: OpenTelemetry instruments by name, created once and cached.

`pantau.counter("orders.created", unit="{order}").add(1, {"channel": "web"})`. The cache is
emptied by `init` and `shutdown`, so instruments always belong to the live meter provider.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry import metrics as metrics_api

_instruments: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()
_meter: metrics_api.Meter | None = None


def meter() -> metrics_api.Meter:
    global _meter
    if _meter is None:
        _meter = metrics_api.get_meter("pantau")
    return _meter


def reset(m: metrics_api.Meter | None = None) -> None:
    global _meter
    with _lock:
        _instruments.clear()
        _meter = m


def _get(kind: str, name: str, unit: str, description: str) -> Any:
    inst = _instruments.get((kind, name))
    if inst is None:
        with _lock:
            inst = _instruments.get((kind, name))
            if inst is None:
                create = getattr(meter(), f"create_{kind}")
                inst = _instruments[(kind, name)] = create(name, unit=unit, description=description)
    return inst


def counter(name: str, unit: str = "", description: str = "") -> metrics_api.Counter:
    """A monotonic counter (`.add(n, attributes)`); Prometheus name gets `_total`."""
    return _get("counter", name, unit, description)


def up_down_counter(name: str, unit: str = "", description: str = "") -> metrics_api.UpDownCounter:
    """A counter that may go down (`.add(-1)`), e.g. items in a queue."""
    return _get("up_down_counter", name, unit, description)


def histogram(name: str, unit: str = "ms", description: str = "") -> metrics_api.Histogram:
    """A distribution (`.record(value, attributes)`), e.g. latencies."""
    return _get("histogram", name, unit, description)


def gauge(name: str, unit: str = "", description: str = "") -> Any:
    """A value set from time to time (`.set(value, attributes)`), e.g. a temperature."""
    return _get("gauge", name, unit, description)
