"""pantau: all-in-one observability on OpenTelemetry.

The SDK half (`pantau.init`, `pantau.trace`, ...) runs inside your service; the hub half
(`pantau serve`) receives, stores, queries and watches the telemetry.

The SDK names are re-exported here lazily: `import pantau` loads neither the OpenTelemetry
SDK nor the hub; the first use of `pantau.init` (or any other SDK name) imports `pantau.sdk`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SDK_NAMES = frozenset({
    "ConfigError", "Telemetry", "access_log", "add_event", "asgi_middleware", "audit", "auto_instrument",
    "continue_trace",
    "correlation", "correlation_id", "counter", "current_span", "extract_context", "flush", "gauge", "histogram",
    "init", "inject_headers", "instrument_app", "performance_log", "record_chain_operation", "record_equity_score",
    "record_governance_event", "record_signing_operation", "sdk_stats", "security_event", "set_attributes",
    "shutdown", "structlog_processor", "submit", "telemetry", "trace", "up_down_counter", "wrap", "wsgi_middleware",
})

if TYPE_CHECKING:
    from pantau.sdk import *  # noqa: F403


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        import pantau.sdk as sdk

        value = getattr(sdk, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pantau' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SDK_NAMES})
