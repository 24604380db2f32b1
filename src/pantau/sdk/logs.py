"""stdlib `logging` (and structlog) into OpenTelemetry log records, plus audit/security helpers.

`PantauHandler` turns a `logging.LogRecord` into an OpenTelemetry log record carrying the
current trace and span ids; the correlation id and redaction are added later, on the export
thread (see `export.py`). `extra={...}` keys become attributes; values of types OTLP cannot
carry are turned into text rather than dropped. A failure inside the handler never reaches
the application: the record is counted as dropped.

`pantau.audit(...)` writes records the hub recognises as audit records (`log.type=audit`,
event name `pantau.audit`, `audit.*` attributes) and keeps in its tamper-evident chain.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry._logs import LogRecord, SeverityNumber

from pantau.sdk import correlate, stats

_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
_SKIP_PREFIXES = ("opentelemetry", "pantau.sdk", "urllib3", "grpc")
_PRIMITIVE = (str, int, float, bool)
_OTEL_SEVERITY_TEXT = {"WARNING": "WARN", "CRITICAL": "FATAL"}

AUDIT_LOGGER = logging.getLogger("pantau.audit")
SECURITY_LOGGER = logging.getLogger("pantau.security")
ACCESS_LOGGER = logging.getLogger("pantau.access")
PERFORMANCE_LOGGER = logging.getLogger("pantau.performance")


_LEVELS = {10: SeverityNumber.DEBUG, 20: SeverityNumber.INFO, 30: SeverityNumber.WARN,
           40: SeverityNumber.ERROR, 50: SeverityNumber.FATAL}


def _nearest(levelno: int) -> SeverityNumber:
    """Python level to OpenTelemetry severity, as OpenTelemetry's own handler maps it."""
    if levelno < 10:
        return SeverityNumber.UNSPECIFIED
    base = max(k for k in _LEVELS if k <= levelno)
    return SeverityNumber(min(_LEVELS[base].value + min(levelno - base, 3), 24))


def _value(v: Any) -> Any:
    if isinstance(v, _PRIMITIVE):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, _PRIMITIVE) for x in v):
        return list(v)
    return str(v)


class PantauHandler(logging.Handler):
    """A `logging.Handler` that emits OpenTelemetry log records to pantau's logger provider."""

    def __init__(self, logger_provider: Any, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._provider = logger_provider
        self._loggers: dict[str, Any] = {}
        self._stats = stats.current()

    def _logger(self, name: str) -> Any:
        logger = self._loggers.get(name)
        if logger is None:
            logger = self._loggers[name] = self._provider.get_logger(name)
        return logger

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SKIP_PREFIXES):
            return
        try:
            attributes = {k: _value(v) for k, v in record.__dict__.items() if k not in _RESERVED}
            attributes["code.file.path"] = record.pathname
            attributes["code.function.name"] = record.funcName
            attributes["code.line.number"] = record.lineno
            if record.exc_info and record.exc_info[0] is not None:
                etype, evalue, tb = record.exc_info
                attributes["exception.type"] = etype.__name__
                attributes["exception.message"] = str(evalue)
                attributes["exception.stacktrace"] = "".join(traceback.format_exception(etype, evalue, tb))
            event_name = attributes.get("otel.event.name")
            self._logger(record.name).emit(LogRecord(
                timestamp=int(record.created * 1e9),
                observed_timestamp=time.time_ns(),
                context=otel_context.get_current(),
                severity_text=_OTEL_SEVERITY_TEXT.get(record.levelname, record.levelname),
                severity_number=_LEVELS.get(record.levelno) or _nearest(record.levelno),
                body=record.getMessage(),
                attributes=attributes,
                event_name=event_name if isinstance(event_name, str) else None,
            ))
        except Exception:
            self._stats.logs.add_dropped(1)

    def flush(self) -> None:
        pass


def _prefixed(prefix: str, details: dict[str, Any]) -> dict[str, Any]:
    return {(k if "." in k else f"{prefix}.{k}"): v for k, v in details.items()}


def audit(action: str, actor: str, resource: str, outcome: str = "success", message: str | None = None,
          **details: Any) -> None:
    """An audit record: who (`actor`) did what (`action`) to which `resource`, and the `outcome`.

    Extra keyword arguments become `audit.<key>` attributes (keys with a dot are kept as they are).
    """
    extra = {"log.type": "audit", "otel.event.name": "pantau.audit", "audit.action": action,
             "audit.actor": actor, "audit.resource": resource, "audit.outcome": outcome,
             **_prefixed("audit", details)}
    AUDIT_LOGGER.info(message or "%s %s %s: %s", *(() if message else (actor, action, resource, outcome)),
                      extra=extra, stacklevel=2)


_SEVERITY_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "low": logging.INFO, "warning": logging.WARNING,
                    "medium": logging.WARNING, "error": logging.ERROR, "high": logging.ERROR,
                    "critical": logging.CRITICAL}


def security_event(event: str, severity: str = "warning", actor: str | None = None, message: str | None = None,
                   **details: Any) -> None:
    """A security event (failed login, permission denied, token reuse...); `severity` sets the level."""
    level = _SEVERITY_LEVELS.get(severity.lower())
    if level is None:
        raise ValueError(f"unknown severity {severity!r}; use one of {', '.join(_SEVERITY_LEVELS)}")
    extra = {"log.type": "security", "security.event": event, "security.severity": severity.lower(),
             **({"security.actor": actor} if actor else {}), **_prefixed("security", details)}
    SECURITY_LOGGER.log(level, message or "security event: %s", *(() if message else (event,)), extra=extra,
                        stacklevel=2)


def access_log(method: str, path: str, status: int, duration_ms: float, **details: Any) -> None:
    """One request served, with OpenTelemetry's HTTP attribute names."""
    extra = {"log.type": "access", "http.request.method": method, "url.path": path,
             "http.response.status_code": int(status), "duration_ms": float(duration_ms), **details}
    level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
    ACCESS_LOGGER.log(level, "%s %s %d %.1fms", method, path, status, duration_ms, extra=extra, stacklevel=2)


def performance_log(operation: str, duration_ms: float, threshold_ms: float | None = None, **details: Any) -> None:
    """How long an operation took; a warning when it exceeded `threshold_ms`."""
    slow = threshold_ms is not None and duration_ms > threshold_ms
    extra = {"log.type": "performance", "performance.operation": operation,
             "performance.duration_ms": float(duration_ms), "performance.slow": slow,
             **({"performance.threshold_ms": float(threshold_ms)} if threshold_ms is not None else {}),
             **_prefixed("performance", details)}
    PERFORMANCE_LOGGER.log(logging.WARNING if slow else logging.INFO, "%s took %.1fms", operation, duration_ms,
                           extra=extra, stacklevel=2)


def structlog_processor(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor adding `trace_id`, `span_id` and `correlation_id` to every event."""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", f"{ctx.trace_id:032x}")
        event_dict.setdefault("span_id", f"{ctx.span_id:016x}")
    cid = correlate.correlation_id()
    if cid:
        event_dict.setdefault("correlation_id", cid)
    return event_dict


def configure_structlog() -> bool:
    """Route structlog through stdlib logging (so through pantau), unless the app configured it."""
    try:
        import structlog
    except ImportError:
        return False
    if structlog.is_configured():
        return False
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level, structlog_processor,
                    structlog.stdlib.render_to_log_kwargs],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return True
