"""`pantau.init()` and `pantau.shutdown()`: providers, exporters, propagation, logging.

Precedence for every setting: an argument to `init` > the standard `OTEL_*` environment
variable > pantau's default. Where the OpenTelemetry SDK reads an environment variable
itself (per-signal endpoints, headers, timeouts, the sampler, resource attributes), pantau
passes nothing and lets it, so every documented variable keeps working.

`init` is idempotent: a second call while running returns the running setup unchanged (and
says so once at debug level). After `shutdown`, `init` sets everything up afresh.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from pantau.redaction import Redactor
from pantau.sdk import business, export, stats
from pantau.sdk import metrics as metric_helpers
from pantau.sdk import tracing as tracing_helpers

log = logging.getLogger("pantau.sdk")

PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_ENDPOINTS = {"http/protobuf": "http://localhost:4318", "grpc": "http://localhost:4317"}


class ConfigError(ValueError):
    """A setting pantau cannot work with; the message says which and why."""


@dataclass
class Telemetry:
    """What `init` set up (returned by it; `pantau.telemetry()` gives the live one)."""

    service_name: str
    protocol: str
    endpoint: str | None
    tracer_provider: Any
    meter_provider: Any
    logger_provider: Any
    redactor: Redactor | None
    instrumented: list[str] = field(default_factory=list)
    prometheus_server: Any = None
    handler: logging.Handler | None = None
    batchers: list[export.Batcher] = field(default_factory=list)


_lock = threading.RLock()
_current: Telemetry | None = None
_atexit_registered = False


def _env(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def _protocol(protocol: str | None) -> str:
    """The argument must be valid (a clear error at the call); a bad environment value, perhaps
    set for services in other languages, is reported and replaced so the app still starts."""
    from_env = protocol is None
    value = (protocol or _env("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf").lower()
    problem = None
    if value == "http/json":
        problem = ("protocol http/json: the OpenTelemetry Python SDK has no OTLP/HTTP JSON exporter; "
                   "use http/protobuf (pantau's hub accepts both) or grpc")
    elif value not in PROTOCOLS:
        problem = f"unknown OTLP protocol {value!r}; use one of {', '.join(PROTOCOLS)}"
    if problem is None:
        return value
    if not from_env:
        raise ConfigError(problem)
    log.error("pantau: OTEL_EXPORTER_OTLP_PROTOCOL: %s; using http/protobuf", problem)
    return "http/protobuf"


def _exporters(protocol: str, endpoint: str | None, headers: dict[str, str] | None,
               timeout: float | None) -> tuple[Any, Any, Any]:
    if endpoint == "none":  # keep everything in process (tests, benchmarks)
        from opentelemetry.sdk._logs.export import LogRecordExportResult
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExportResult
        from opentelemetry.sdk.trace.export import SpanExportResult

        class _NoMetrics(ConsoleMetricExporter):
            def export(self, *args: Any, **kwargs: Any) -> MetricExportResult:
                return MetricExportResult.SUCCESS

        return (export.DropExporter(SpanExportResult.SUCCESS), _NoMetrics(),
                export.DropExporter(LogRecordExportResult.SUCCESS))
    kw: dict[str, Any] = {"headers": headers, "timeout": timeout}
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        if endpoint is not None:
            kw["endpoint"] = endpoint
            kw["insecure"] = not endpoint.startswith("https://")
        return OTLPSpanExporter(**kw), OTLPMetricExporter(**kw), OTLPLogExporter(**kw)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    base = endpoint.rstrip("/") if endpoint is not None else None

    def url(path: str) -> str | None:
        return f"{base}/{path}" if base is not None else None

    return (OTLPSpanExporter(endpoint=url("v1/traces"), **kw), OTLPMetricExporter(endpoint=url("v1/metrics"), **kw),
            OTLPLogExporter(endpoint=url("v1/logs"), **kw))


def _sampler(sample_ratio: float | None) -> Any:
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    if sample_ratio is None:
        if _env("OTEL_TRACES_SAMPLER"):
            return None  # the SDK reads OTEL_TRACES_SAMPLER / _ARG itself
        return ParentBased(ALWAYS_ON)
    if not 0.0 <= sample_ratio <= 1.0:
        raise ConfigError(f"sample_ratio must be between 0 and 1, not {sample_ratio}")
    return ParentBased(TraceIdRatioBased(sample_ratio))


def _exemplar_filter() -> Any:
    """Exemplars off unless OTEL_METRICS_EXEMPLAR_FILTER asks for them (they cost ~1 µs a point)."""
    if _env("OTEL_METRICS_EXEMPLAR_FILTER"):
        return None
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter

    return AlwaysOffExemplarFilter()


def _set_globals(tracer_provider: Any, meter_provider: Any, logger_provider: Any) -> None:
    """Install the providers globally; OpenTelemetry allows that once per process, so after a
    `shutdown` pantau re-arms its set-once guards (the same thing OpenTelemetry's tests do)."""
    from opentelemetry import _logs, metrics, trace
    from opentelemetry._logs import _internal as logs_internal
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.util._once import Once

    for module, attr in ((trace, "_TRACER_PROVIDER_SET_ONCE"), (metrics_internal, "_METER_PROVIDER_SET_ONCE"),
                         (logs_internal, "_LOGGER_PROVIDER_SET_ONCE")):
        if getattr(module, attr, None) is not None and getattr(module, attr)._done:
            setattr(module, attr, Once())
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(meter_provider)
    _logs.set_logger_provider(logger_provider)


def _clear_globals() -> None:
    """After `shutdown`, OpenTelemetry's globals are unset again (as before `init`): code that
    asks for a tracer gets a no-op one, and another setup may install its providers."""
    from opentelemetry import trace
    from opentelemetry._logs import _internal as logs_internal
    from opentelemetry.metrics import _internal as metrics_internal
    from opentelemetry.util._once import Once

    for module, once, provider in ((trace, "_TRACER_PROVIDER_SET_ONCE", "_TRACER_PROVIDER"),
                                   (metrics_internal, "_METER_PROVIDER_SET_ONCE", "_METER_PROVIDER"),
                                   (logs_internal, "_LOGGER_PROVIDER_SET_ONCE", "_LOGGER_PROVIDER")):
        if hasattr(module, once) and hasattr(module, provider):
            setattr(module, once, Once())
            setattr(module, provider, None)


def _set_propagators() -> None:
    from opentelemetry import propagate
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    from pantau.sdk.correlate import CorrelationPropagator

    if _env("OTEL_PROPAGATORS"):
        base = propagate.get_global_textmap()  # built from OTEL_PROPAGATORS at import
        if isinstance(base, CompositePropagator) and any(
                isinstance(p, CorrelationPropagator) for p in base._propagators):
            return
        propagators = [base]
    else:
        propagators = [TraceContextTextMapPropagator(), W3CBaggagePropagator()]
    propagate.set_global_textmap(CompositePropagator([*propagators, CorrelationPropagator()]))


def _quiet_exporter_loggers() -> None:
    """The OTLP exporters log every failed attempt; pantau warns once a minute instead."""
    for name in ("opentelemetry.exporter.otlp.proto.http", "opentelemetry.exporter.otlp.proto.grpc",
                 "opentelemetry.exporter.otlp.proto.http._common", "opentelemetry.sdk._shared_internal",
                 "opentelemetry.exporter.otlp.proto.grpc.exporter"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _float_env(name: str, default: float) -> float:
    value = _env(name)
    if value is None:
        return default
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a number") from None


def _self_metrics(meter_provider: Any, counters: stats.Stats) -> None:
    """`pantau.sdk.items.dropped{signal}`: what the SDK lost, visible once the hub is back.

    It also guarantees that every collection has data, so business metrics (added at export,
    see `business.py`) are exported even by an app that creates no instrument of its own.
    """
    from opentelemetry.metrics import Observation

    def observe(_options: Any) -> list[Observation]:
        return [Observation(s.dropped, {"signal": s.name})
                for s in (counters.spans, counters.logs, counters.metrics)]

    meter_provider.get_meter("pantau.sdk").create_observable_counter(
        "pantau.sdk.items.dropped", callbacks=[observe], unit="{item}",
        description="Telemetry items pantau's SDK dropped (queue full, export failed, hub unreachable).")


def init(service_name: str | None = None, *, endpoint: str | None = None, protocol: str | None = None,
         environment: str | None = None, version: str | None = None, sample_ratio: float | None = None,
         redact: bool | Redactor = True, prometheus_port: int | None = None, prometheus_addr: str = "0.0.0.0",
         headers: dict[str, str] | None = None, resource_attributes: dict[str, Any] | None = None,
         auto_instrument: bool | list[str] = False, log_level: int | str = logging.INFO,
         logging_handler: bool = True, metrics_interval_s: float | None = None,
         timeout_s: float | None = None, max_queue_size: int | None = None,
         exporters: tuple[Any, Any, Any] | None = None) -> Telemetry:
    """Set up traces, metrics and logs for this process, exported over OTLP.

    `endpoint`: the OTLP base URL (`http://hub:4318` for http/protobuf, `http://hub:4317` for
    grpc); `"none"` keeps everything in the process. `redact`: True for the default rules, a
    `Redactor` for custom ones, False for none. `prometheus_port`: also serve the metrics at
    `http://<prometheus_addr>:<port>/metrics`. `auto_instrument`: True for every installed
    instrumentation, or a list of names (fastapi, requests, httpx, sqlite3). `exporters`: a
    (span, metric, log) triple of OpenTelemetry exporters to use instead of OTLP (console or
    in-memory exporters, say); pantau's batching, counting and redaction still apply.
    """
    global _current, _atexit_registered
    with _lock:
        if _current is not None:
            log.debug("pantau.init called again while running; keeping the running setup")
            return _current
        proto = _protocol(protocol)
        if (_env("OTEL_SDK_DISABLED") or "").lower() == "true":
            log.info("pantau: OTEL_SDK_DISABLED=true, telemetry is off (the helpers still work, as no-ops)")
            _current = Telemetry(service_name or _env("OTEL_SERVICE_NAME") or "unknown_service", proto, None,
                                 None, None, None, None)
            return _current
        if endpoint is None and not (_env("OTEL_EXPORTER_OTLP_ENDPOINT") or _env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
            endpoint = DEFAULT_ENDPOINTS[proto]

        from opentelemetry.sdk._logs import LoggerProvider
        from opentelemetry.sdk._logs.export import LogRecordExportResult
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SpanExportResult

        attrs: dict[str, Any] = dict(resource_attributes or {})
        if service_name:
            attrs["service.name"] = service_name
        if version:
            attrs["service.version"] = version
        if environment:
            attrs["deployment.environment.name"] = environment
        resource = Resource.create(attrs)
        name = str(resource.attributes.get("service.name", "unknown_service"))

        redactor: Redactor | None = redact if isinstance(redact, Redactor) else (Redactor() if redact else None)
        counters = stats.reset()
        counters.redactor = redactor
        business.reset()

        span_exp, metric_exp, log_exp = exporters or _exporters(proto, endpoint, headers, timeout_s)
        queue = max_queue_size or int(_float_env("OTEL_BSP_MAX_QUEUE_SIZE", 2048))
        batch = int(_float_env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512))
        span_batcher = export.Batcher(
            export.ExportGuard(span_exp, counters.spans, SpanExportResult.SUCCESS, export.prepare_spans(redactor)),
            max_queue=queue, batch_size=min(batch, queue),
            delay_s=_float_env("OTEL_BSP_SCHEDULE_DELAY", 1000) / 1000, name="pantau-spans")
        log_queue = max_queue_size or int(_float_env("OTEL_BLRP_MAX_QUEUE_SIZE", 2048))
        log_batcher = export.Batcher(
            export.ExportGuard(log_exp, counters.logs, LogRecordExportResult.SUCCESS, export.prepare_logs(redactor)),
            max_queue=log_queue, batch_size=min(int(_float_env("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", 512)), log_queue),
            delay_s=_float_env("OTEL_BLRP_SCHEDULE_DELAY", 1000) / 1000, name="pantau-logs")
        counters.queue_sizes = {"spans": span_batcher.queued, "logs": log_batcher.queued}

        tracer_provider = TracerProvider(resource=resource, sampler=_sampler(sample_ratio))
        tracer_provider.add_span_processor(export.SpanBatchProcessor(span_batcher))

        def extend(data: Any) -> Any:
            return business.extend(data, resource)

        interval_ms = metrics_interval_s * 1000 if metrics_interval_s is not None else None
        readers: list[Any] = [PeriodicExportingMetricReader(
            export.GuardedMetricExporter(metric_exp, counters.metrics, extend), export_interval_millis=interval_ms)]
        prometheus_server = None
        if prometheus_port is not None:
            from pantau.sdk.prometheus import BusinessPrometheusReader, serve

            readers.append(BusinessPrometheusReader(resource))
            prometheus_server = serve(prometheus_port, prometheus_addr)
        meter_provider = MeterProvider(resource=resource, metric_readers=readers, exemplar_filter=_exemplar_filter())

        logger_provider = LoggerProvider(resource=resource)
        logger_provider.add_log_record_processor(export.LogBatchProcessor(log_batcher))

        _set_globals(tracer_provider, meter_provider, logger_provider)
        _set_propagators()
        _quiet_exporter_loggers()
        tracing_helpers.set_tracer(tracer_provider.get_tracer("pantau"))
        metric_helpers.reset(meter_provider.get_meter("pantau"))
        _self_metrics(meter_provider, counters)

        handler = None
        if logging_handler:
            from pantau.sdk.logs import PantauHandler, configure_structlog

            level = logging.getLevelName(log_level.upper()) if isinstance(log_level, str) else log_level
            handler = PantauHandler(logger_provider, level)
            root = logging.getLogger()
            root.addHandler(handler)
            if root.level > level:  # records below the root level would never reach the handler
                root.setLevel(level)
            configure_structlog()

        instrumented: list[str] = []
        if auto_instrument:
            from pantau.sdk.instrument import auto_instrument as do_instrument

            instrumented = do_instrument(None if auto_instrument is True else auto_instrument)

        _current = Telemetry(name, proto, endpoint, tracer_provider, meter_provider, logger_provider, redactor,
                             instrumented, prometheus_server, handler, [span_batcher, log_batcher])
        if not _atexit_registered:
            atexit.register(shutdown)
            _atexit_registered = True
        return _current


def telemetry() -> Telemetry | None:
    """The running setup, or None before `init` / after `shutdown`."""
    return _current


def flush(timeout_s: float = 10.0) -> bool:
    """Export everything recorded so far (spans, logs, metrics, business metrics) now."""
    t = _current
    if t is None or t.tracer_provider is None:
        return False
    ok = t.tracer_provider.force_flush(int(timeout_s * 1000))
    ok = t.logger_provider.force_flush(int(timeout_s * 1000)) and ok
    return t.meter_provider.force_flush(int(timeout_s * 1000)) and ok


def shutdown(timeout_s: float = 10.0) -> None:
    """Flush and stop everything `init` started; safe to call twice. Returns promptly when the
    hub is unreachable (what is still queued is counted as dropped)."""
    global _current
    with _lock:
        t, _current = _current, None
        if t is None or t.tracer_provider is None:
            return
        if t.handler is not None:
            logging.getLogger().removeHandler(t.handler)
        if t.instrumented:
            from pantau.sdk.instrument import uninstrument_all

            uninstrument_all()
        for provider in (t.tracer_provider, t.logger_provider):
            try:
                provider.shutdown()
            except Exception as e:
                log.warning("pantau: shutdown of %s failed: %s", type(provider).__name__, e)
        try:
            t.meter_provider.shutdown(timeout_millis=timeout_s * 1000)
        except Exception as e:
            log.warning("pantau: shutdown of the meter provider failed: %s", e)
        if t.prometheus_server is not None:
            t.prometheus_server.shutdown()
            t.prometheus_server.server_close()
        _clear_globals()
        tracing_helpers.set_tracer(None)
        metric_helpers.reset(None)
