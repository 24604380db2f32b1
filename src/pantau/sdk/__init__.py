"""pantau's SDK: a thin, friendly layer over the OpenTelemetry Python SDK.

Everything here is re-exported at `pantau` (lazily, so `import pantau` stays light).
"""

from __future__ import annotations

from pantau.sdk.business import (
    record_chain_operation,
    record_equity_score,
    record_governance_event,
    record_signing_operation,
)
from pantau.sdk.context import continue_trace, extract_context, inject_headers, submit, wrap
from pantau.sdk.correlate import correlation, correlation_id
from pantau.sdk.instrument import asgi_middleware, auto_instrument, instrument_app, wsgi_middleware
from pantau.sdk.logs import access_log, audit, performance_log, security_event, structlog_processor
from pantau.sdk.metrics import counter, gauge, histogram, up_down_counter
from pantau.sdk.setup import ConfigError, Telemetry, flush, init, shutdown, telemetry
from pantau.sdk.stats import sdk_stats
from pantau.sdk.tracing import add_event, current_span, set_attributes, trace

__all__ = [
    "ConfigError", "Telemetry", "access_log", "add_event", "asgi_middleware", "audit", "auto_instrument",
    "continue_trace",
    "correlation", "correlation_id", "counter", "current_span", "extract_context", "flush", "gauge", "histogram",
    "init", "inject_headers", "instrument_app", "performance_log", "record_chain_operation", "record_equity_score",
    "record_governance_event", "record_signing_operation", "sdk_stats", "security_event", "set_attributes",
    "shutdown", "structlog_processor", "submit", "telemetry", "trace", "up_down_counter", "wrap", "wsgi_middleware",
]
