"""Batching, redaction and export that never hurt the host application.

pantau uses its own small batch processor instead of OpenTelemetry's for three reasons:
every lost item must be counted (OpenTelemetry's queue drops the oldest item silently), the
correlation id and redaction are applied here on the export thread (not on the app's thread,
and without a second processor call per span), and an unreachable hub must cost almost
nothing: after a failed export the guard backs off (1 s doubling to 30 s) and drops batches
without trying, and warns at most once a minute.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from pantau.redaction import Redactor
from pantau.sdk import correlate
from pantau.sdk.stats import SignalStats

log = logging.getLogger("pantau.sdk")

WARN_EVERY_S = 60.0
BACKOFF_MIN_S, BACKOFF_MAX_S = 1.0, 30.0


class ExportGuard:
    """Wraps one exporter: prepares batches, counts outcomes, backs off while the peer is down."""

    def __init__(self, exporter: Any, stats: SignalStats, success: Any,
                 prepare: Callable[[list], list] | None = None) -> None:
        self.exporter = exporter
        self.stats = stats
        self._success = success
        self._prepare = prepare
        self._backoff = 0.0
        self._down_until = 0.0
        self._last_warning = -WARN_EVERY_S

    @property
    def down(self) -> bool:
        return time.monotonic() < self._down_until

    def export(self, batch: list) -> bool:
        n = len(batch)
        if self.down:
            self.stats.add_dropped(n)
            return False
        try:
            items = self._prepare(batch) if self._prepare else batch
        except Exception as e:  # a redaction or stamping bug: lose this batch, not the connection
            self.stats.add_dropped(n)
            self._warn(f"preparing the batch failed ({type(e).__name__}: {e})")
            return False
        try:
            ok = self.exporter.export(items) == self._success
            error = "" if ok else "the exporter reported a failure"
        except Exception as e:  # an exporter bug must not reach the app
            ok, error = False, f"{type(e).__name__}: {e}"
        if ok:
            self.stats.add_exported(n)
            self._backoff = 0.0
            return True
        self.failed(n, error)
        return False

    def failed(self, n: int, error: str) -> None:
        self.stats.add_dropped(n)
        self.stats.add_failure()
        self._backoff = min(BACKOFF_MAX_S, max(BACKOFF_MIN_S, self._backoff * 2))
        self._down_until = time.monotonic() + self._backoff
        self._warn(f"exporting {self.stats.name} failed ({error}); retrying in {self._backoff:.0f} s")

    def _warn(self, what: str) -> None:
        now = time.monotonic()
        if now - self._last_warning >= WARN_EVERY_S:
            self._last_warning = now
            log.warning("pantau: %s; %d %s dropped so far (this warning repeats at most once a minute)",
                        what, self.stats.dropped, self.stats.name)

    def shutdown(self) -> None:
        try:
            self.exporter.shutdown()
        except Exception:
            pass


class Batcher:
    """A bounded queue drained by one daemon thread into an `ExportGuard`.

    `add` is the only call on the app's thread: a length check and a deque append. A full
    queue drops the new item and counts it.
    """

    def __init__(self, guard: ExportGuard, max_queue: int = 2048, batch_size: int = 512,
                 delay_s: float = 1.0, name: str = "pantau-export") -> None:
        self.guard = guard
        self.stats = guard.stats
        self._queue: collections.deque = collections.deque()
        self._max_queue = max_queue
        self._batch_size = batch_size
        self._delay = delay_s
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._stopped = False
        self._name = name
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        if hasattr(os, "register_at_fork"):  # a forked worker (gunicorn --preload) needs its own thread
            ref = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (m := ref()) and m())

    def _after_fork(self) -> None:
        self._queue.clear()
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        if not self._stopped:
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def queued(self) -> int:
        return len(self._queue)

    def add(self, item: Any) -> None:
        queue = self._queue
        if self._stopped or len(queue) >= self._max_queue:
            self.stats.add_dropped(1)
            return
        queue.append(item)
        if len(queue) >= self._batch_size and not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait(self._delay)
            self._wake.clear()
            if not self._stopped:
                self._drain()

    def _drain(self) -> None:
        with self._export_lock:
            queue, size = self._queue, self._batch_size
            while queue:
                batch = [queue.popleft() for _ in range(min(size, len(queue)))]
                self.guard.export(batch)

    def flush(self, timeout_s: float = 30.0) -> bool:
        if self._stopped:
            return False
        if not self._export_lock.acquire(timeout=timeout_s):
            return False
        self._export_lock.release()
        self._drain()
        return True

    def shutdown(self, timeout_s: float = 30.0) -> None:
        """Export what is queued (unless the peer is known to be down), then stop; never hang."""
        if self._stopped:
            return
        self._stopped = True
        self._wake.set()
        if not self.guard.down:
            worker = threading.Thread(target=self._drain, daemon=True)
            worker.start()
            worker.join(timeout_s)
        self.guard.shutdown()  # interrupts an exporter's retry sleep
        self._thread.join(min(timeout_s, 5.0))
        left = len(self._queue)
        self._queue.clear()
        if left:
            self.stats.add_dropped(left)


# --- spans ---


def _with(attrs: Any, key: str, value: str) -> Any:
    """`attrs` plus one key. OpenTelemetry's BoundedAttributes of an ended span is read-only and
    carries the count of attributes dropped by limits (exported as such); pantau adds its key to
    the mapping underneath so that the count survives. Anything else is copied."""
    inner = getattr(attrs, "_dict", None)
    if isinstance(inner, dict):
        inner[key] = value
        return attrs
    out = dict(attrs) if attrs else {}
    out[key] = value
    return out


def prepare_spans(redactor: Redactor | None) -> Callable[[list], list]:
    """Stamp `correlation.id` and redact attributes, event attributes and status text.

    Runs on the export thread on spans that have ended: nothing reads them any more, so
    their attribute mappings are replaced in place (cheaper than copying every span).
    """

    def prepare(spans: list[ReadableSpan]) -> list[ReadableSpan]:
        for span in spans:
            attrs = span._attributes
            if redactor is not None:
                if attrs:
                    attrs = redactor.redact_attributes(attrs)
                for event in span._events:
                    if event.attributes:
                        new = redactor.redact_attributes(event.attributes)
                        if new is not event.attributes:
                            event._attributes = new
                status = span._status
                if status.description:
                    text = redactor.redact_text(status.description)
                    if text != status.description:
                        span._status = type(status)(status.status_code, text)
            # pantau's own value, added after redaction (a trace id must not be scanned for PII)
            if not attrs or correlate.ATTRIBUTE not in attrs:
                span._attributes = _with(attrs, correlate.ATTRIBUTE, f"{span.context.trace_id:032x}")
            elif attrs is not span._attributes:
                span._attributes = attrs
        return spans

    return prepare


class SpanBatchProcessor(SpanProcessor):
    """pantau's batch span processor.

    An explicit correlation id (from baggage) is set on the span at start: `on_end` gets a
    read-only copy of the span, so it cannot be remembered on the object. Without one, the
    trace id is stamped at export, which costs the app's thread nothing.
    """

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        cid = correlate.explicit_correlation_id(parent_context)
        if cid:
            span.set_attribute(correlate.ATTRIBUTE, cid)

    def on_end(self, span: ReadableSpan) -> None:
        if span.context.trace_flags.sampled:
            self.batcher.add(span)

    def shutdown(self) -> None:
        self.batcher.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.batcher.flush(timeout_millis / 1000)


# --- logs ---


def prepare_logs(redactor: Redactor | None) -> Callable[[list], list]:
    """Redact body and attributes, then stamp `correlation.id`: the one in the baggage of the
    context the record was emitted in, else its trace id. All on the export thread."""

    def prepare(records: list[Any]) -> list[Any]:
        for record in records:
            lr = record.log_record
            attrs = lr.attributes
            if redactor is not None:
                if attrs:
                    attrs = redactor.redact_attributes(attrs)
                if isinstance(lr.body, str):
                    lr.body = redactor.redact_text(lr.body)
            if not attrs or correlate.ATTRIBUTE not in attrs:
                ctx = getattr(lr, "context", None)
                cid = correlate.explicit_correlation_id(ctx) if ctx is not None else None
                if cid is None and lr.trace_id:
                    cid = f"{lr.trace_id:032x}"
                if cid:
                    attrs = _with(attrs, correlate.ATTRIBUTE, cid)
            if attrs is not lr.attributes:
                lr.attributes = attrs
        return records

    return prepare


class LogBatchProcessor:
    """pantau's batch log record processor (the OpenTelemetry LogRecordProcessor interface)."""

    def __init__(self, batcher: Batcher) -> None:
        self.batcher = batcher

    def on_emit(self, log_record: Any) -> None:
        self.batcher.add(log_record)

    emit = on_emit  # older SDKs call emit()

    def shutdown(self) -> None:
        self.batcher.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.batcher.flush(timeout_millis / 1000)


# --- metrics ---


def count_points(data: MetricsData) -> int:
    return sum(len(m.data.data_points) for rm in data.resource_metrics for sm in rm.scope_metrics
               for m in sm.metrics)


class GuardedMetricExporter(MetricExporter):
    """A metric exporter that adds pantau's business metrics, counts points, backs off."""

    def __init__(self, exporter: MetricExporter, stats: SignalStats,
                 extend: Callable[[MetricsData], MetricsData] | None = None) -> None:
        super().__init__(preferred_temporality=exporter._preferred_temporality,
                         preferred_aggregation=exporter._preferred_aggregation)
        self.inner = exporter
        self._extend = extend
        self.guard = ExportGuard(exporter, stats, MetricExportResult.SUCCESS)

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            if self._extend is not None:
                metrics_data = self._extend(metrics_data)
            n = count_points(metrics_data)
        except Exception as e:
            self.guard.failed(1, f"{type(e).__name__}: {e}")
            return MetricExportResult.FAILURE
        if self.guard.down:
            self.guard.stats.add_dropped(n)
            return MetricExportResult.FAILURE
        try:
            ok = self.inner.export(metrics_data, timeout_millis=timeout_millis) == MetricExportResult.SUCCESS
            error = "the exporter reported a failure"
        except Exception as e:
            ok, error = False, f"{type(e).__name__}: {e}"
        if ok:
            self.guard.stats.add_exported(n)
            self.guard._backoff = 0.0
            return MetricExportResult.SUCCESS
        self.guard.failed(n, error)
        return MetricExportResult.FAILURE

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.guard.shutdown()


class DropExporter:
    """Accepts everything and sends nothing (benchmarks; `endpoint="none"`)."""

    def __init__(self, result: Any) -> None:
        self._result = result

    def export(self, batch: Sequence[Any], *args: Any, **kwargs: Any) -> Any:
        return self._result

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        pass

    def force_flush(self, *args: Any, **kwargs: Any) -> bool:
        return True
