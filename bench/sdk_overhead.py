"""SDK overhead: what `pantau.trace`, business metrics and logging cost the application.

    python bench/sdk_overhead.py              # about 3 minutes
    python bench/sdk_overhead.py --n 20000 --memory-ops 100000   # quick look

Every figure is process CPU time per operation (`time.process_time`, so the export threads'
work counts too, each block ends with a flush), with exporters that accept and drop
everything: the cost measured is the SDK's, not the network's. The variants compared run in
one process, in interleaved blocks (this machine is shared and noisy: separate runs differ by
up to 30%); a ratio is the median of per-block ratios against the neighbouring baseline block.

Baselines in the same run: an empty function; a bare OpenTelemetry span
(`tracer.start_as_current_span` with the SDK's BatchSpanProcessor); OpenTelemetry's own
`Counter.add` / `Histogram.record`; the same log call through OpenTelemetry's `LoggingHandler`
with its BatchLogRecordProcessor.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import time
import warnings

EMAIL_LINE = ("user %s signed document %s", "budi.santoso@merajutasa.id", "doc-7")
PLAIN_LINE = ("user %s signed document %s", "u-10293", "doc-7")


# --- the variants, each run in its own process ---


def _drop_exporters():
    from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
    from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

    class Spans(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    class Logs(LogRecordExporter):
        def export(self, batch):
            return LogRecordExportResult.SUCCESS

        def shutdown(self):
            pass

        def force_flush(self, timeout_millis=30_000):
            return True

    class Metrics(MetricExporter):
        def export(self, data, timeout_millis=10_000, **kw):
            return MetricExportResult.SUCCESS

        def force_flush(self, timeout_millis=10_000):
            return True

        def shutdown(self, timeout_millis=30_000, **kw):
            pass

    return Spans(), Metrics(), Logs()


def _bare_otel_tracer():
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(BatchSpanProcessor(_drop_exporters()[0]))
    return provider, provider.get_tracer("bench")


def _pantau():
    import pantau

    pantau.init("bench", exporters=_drop_exporters(), metrics_interval_s=3600)
    return pantau


def _bare_otel_logger():
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(_drop_exporters()[2]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        handler = LoggingHandler(logger_provider=provider)
    return provider, handler


def group(name: str) -> dict[str, tuple]:
    """{variant: (operation, flush)} for the variants measured side by side in one process.

    The bare OpenTelemetry baselines use their own providers (not the global ones) so that they
    can live next to `pantau.init` in the same process; then every block of one variant is
    followed by a block of the others, and noise from the shared machine hits them alike.
    """

    def work() -> int:
        return 1

    if name == "spans":
        provider, tracer = _bare_otel_tracer()

        def otel_span():
            with tracer.start_as_current_span("op"):
                return work()

        pantau = _pantau()

        def pantau_with():
            with pantau.trace("op"):
                return work()

        return {"empty": (work, lambda: None), "otel_span": (otel_span, provider.force_flush),
                "pantau_trace": (pantau.trace("op")(work), pantau.flush), "pantau_with": (pantau_with, pantau.flush)}
    if name == "metrics":
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader

        meter = MeterProvider(metric_readers=[InMemoryMetricReader()],
                              exemplar_filter=AlwaysOffExemplarFilter()).get_meter("bench")
        attrs = {"signing.operation": "sign", "signing.status": "success", "signing.algorithm": "ed25519"}
        c, h = meter.create_counter("c"), meter.create_histogram("h", unit="ms")
        pantau = _pantau()
        return {"signing": (lambda: pantau.record_signing_operation("sign", "success", "ed25519", 12.5), lambda: None),
                "otel_counter": (lambda: c.add(1, attrs), lambda: None),
                "otel_histogram": (lambda: h.record(12.5, attrs), lambda: None)}
    if name == "logs":
        otel_provider, otel_handler = _bare_otel_logger()
        otel_log = logging.getLogger("bench.otel")
        otel_log.propagate = False
        otel_log.addHandler(otel_handler)
        otel_log.setLevel(logging.INFO)
        pantau = _pantau()
        pantau_log = logging.getLogger("bench.pantau")
        return {"log_otel_plain": (lambda: otel_log.info(*PLAIN_LINE), otel_provider.force_flush),
                "log_pantau_plain": (lambda: pantau_log.info(*PLAIN_LINE), pantau.flush),
                "log_otel_email": (lambda: otel_log.info(*EMAIL_LINE), otel_provider.force_flush),
                "log_pantau_email": (lambda: pantau_log.info(*EMAIL_LINE), pantau.flush)}
    raise SystemExit(f"unknown group {name}")


def run_group(name: str, n: int, block: int) -> dict[str, list[float]]:
    """Per-block µs per operation for each variant of the group, blocks interleaved."""
    variants = group(name)
    for op, flush in variants.values():  # warm up
        for _ in range(min(block, 2000)):
            op()
        flush()
    times: dict[str, list[float]] = {v: [] for v in variants}
    order = list(variants)
    for i in range(max(1, n // block)):
        for v in order[i % len(order):] + order[:i % len(order)]:  # rotate who goes first
            op, flush = variants[v]
            t = time.process_time()
            for _ in range(block):
                op()
            flush()
            times[v].append((time.process_time() - t) / block * 1e6)
    return times


def run_memory(ops: int) -> dict:
    import psutil

    pantau = _pantau()
    log = logging.getLogger("bench")
    proc = psutil.Process()

    @pantau.trace("op")
    def op(i: int) -> None:
        pantau.record_signing_operation("sign", "success", "ed25519", 1.0)
        if i % 10 == 0:
            log.info(*EMAIL_LINE)

    marks = {}
    for i in range(ops):
        op(i)
        if i + 1 in (ops // 10, ops):
            pantau.flush()
            marks[i + 1] = proc.memory_info().rss
    pantau.shutdown()
    return {"ops": ops, "rss_at_10pct": marks[ops // 10], "rss_at_end": marks[ops], "stats": pantau.sdk_stats()}


# --- the driver ---

GROUPS = ("spans", "metrics", "logs")


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{args} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=200_000, help="operations per variant")
    p.add_argument("--block", type=int, default=5_000, help="operations per timed block")
    p.add_argument("--memory-ops", type=int, default=1_000_000)
    p.add_argument("--group", help=argparse.SUPPRESS)
    p.add_argument("--memory", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.group:
        print(json.dumps(run_group(a.group, a.n, a.block)))
        return
    if a.memory:
        print(json.dumps(run_memory(a.memory_ops)))
        return

    blocks: dict[str, list[float]] = {}
    for g in GROUPS:
        blocks.update(child(["--group", g, "--n", str(a.n), "--block", str(a.block)]))
    med = {v: statistics.median(xs) for v, xs in blocks.items()}

    def row(label: str, v: str, base: str | None = None, target: str = "") -> None:
        ratio = ""
        if base:  # median of the per-block ratios: each block against its neighbour of the baseline
            paired = statistics.median(x / y for x, y in zip(blocks[v], blocks[base], strict=True))
            ratio = f"{paired:.2f}x {base}"
        q = statistics.quantiles(blocks[v], n=4) if len(blocks[v]) > 1 else [med[v]] * 3
        print(f"  {label:<44} {med[v]:7.2f} µs  [{q[0]:6.2f}-{q[2]:6.2f}]  {ratio:<24} {target}")

    print(f"\nSDK overhead, CPU µs per operation: median of {len(blocks['empty'])} blocks of {a.block:,} "
          f"[interquartile range]")
    row("empty function", "empty")
    row("bare OpenTelemetry start_as_current_span", "otel_span")
    row("@pantau.trace", "pantau_trace", "otel_span", "target <= 1.15x, <= 30 µs")
    row("with pantau.trace(...)", "pantau_with", "otel_span")
    row("pantau.record_signing_operation", "signing", None, "target <= 5 µs")
    row("OpenTelemetry Counter.add (reference)", "otel_counter")
    row("OpenTelemetry Histogram.record (reference)", "otel_histogram")
    row("log.info, OpenTelemetry LoggingHandler", "log_otel_plain")
    row("log.info, pantau (redaction on)", "log_pantau_plain", "log_otel_plain", "target <= 1.3x")
    row("log.info with e-mail, OpenTelemetry", "log_otel_email")
    row("log.info with e-mail, pantau (redacted)", "log_pantau_email", "log_otel_email", "target <= 1.3x")

    mem = child(["--memory", "--memory-ops", str(a.memory_ops)])
    growth = (mem["rss_at_end"] - mem["rss_at_10pct"]) / 2**20
    print(f"\nmemory: {mem['ops']:,} traced operations (each with a signing metric, every 10th a log line): "
          f"RSS {mem['rss_at_10pct'] / 2**20:.1f} MiB at 10%, {mem['rss_at_end'] / 2**20:.1f} MiB at the end "
          f"({growth:+.1f} MiB); dropped spans {mem['stats']['spans']['dropped']}, "
          f"dropped logs {mem['stats']['logs']['dropped']}")


if __name__ == "__main__":
    main()
