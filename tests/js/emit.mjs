// Emits one trace, two log records and three metrics with the real
// OpenTelemetry JS SDK over OTLP/HTTP (JSON encoding), then prints a JSON
// manifest of exactly what was exported, so a Python end-to-end test can read
// the data back from pantau and compare it field by field.
//
// Environment:
//   OTEL_EXPORTER_OTLP_ENDPOINT  base URL, e.g. http://127.0.0.1:4318
//                                (requests go to /v1/traces, /v1/metrics, /v1/logs)
//   PANTAU_JS_SERVICE            service.name (default "node-signer")
//   OTEL_EXPORTER_OTLP_COMPRESSION=gzip   optional, honoured by the exporters
//   OTEL_LOG_LEVEL               optional SDK diagnostic level (default "warn")
//
// stdout carries the manifest and nothing else; diagnostics go to stderr.
// Exit code 0 only if every export request succeeded and the exported data
// is what this script meant to send.

import {
  DiagLogLevel,
  SpanKind,
  SpanStatusCode,
  ValueType,
  diag,
  metrics,
  trace,
} from '@opentelemetry/api';
import { SeverityNumber, logs } from '@opentelemetry/api-logs';
import { NodeSDK, core } from '@opentelemetry/sdk-node';
import { AlwaysOnSampler, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { BatchLogRecordProcessor } from '@opentelemetry/sdk-logs';
import {
  AggregationType,
  DataPointType,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import {
  AggregationTemporalityPreference,
  OTLPMetricExporter,
} from '@opentelemetry/exporter-metrics-otlp-http';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';

const { ExportResultCode } = core;

const ENDPOINT = (process.env.OTEL_EXPORTER_OTLP_ENDPOINT || 'http://localhost:4318').replace(/\/+$/, '');
const SERVICE = process.env.PANTAU_JS_SERVICE || 'node-signer';
const SCOPE_NAME = 'pantau-e2e-emitter';
const SCOPE_VERSION = '1.0.0';
// Hard ceiling for the whole run, so a hung endpoint fails the test instead of hanging it.
const WATCHDOG_MS = 60_000;

// What this script intends to send; the exported data is checked against it.
const HISTOGRAM_BOUNDS = [5, 10, 50, 100];
const HISTOGRAM_VALUES = [3, 7, 7, 40, 250];
const EXPECTED_METRICS = {
  'signing.operations': { ok: 5, failed: 2 },
  'signing.duration': { count: 5, sum: 307, bounds: HISTOGRAM_BOUNDS, bucket_counts: [1, 2, 1, 0, 1] },
  'chain.integrity': 0.97,
};

// ---------------------------------------------------------------------------
// Failure tracking. The SDK's batch processors swallow export errors (they only
// report them through diag / the global error handler), so failures are caught
// in two places: the export result callbacks (CheckedExporter below) and any
// diag error or partial-success warning.
// ---------------------------------------------------------------------------
const failures = [];
function fail(msg) {
  failures.push(msg);
}
function describe(err) {
  if (err instanceof Error) return err.message || String(err);
  if (typeof err === 'string') {
    // The global error handler passes errors to diag as JSON strings.
    try {
      const parsed = JSON.parse(err);
      if (parsed && typeof parsed.message === 'string') return parsed.message;
    } catch {
      // not JSON: use as is
    }
    return err;
  }
  return safeJson(err);
}

function stderrLine(level, msg, args) {
  const extra = args.map((a) => (a instanceof Error ? a.stack || a.message : typeof a === 'string' ? a : safeJson(a)));
  process.stderr.write(`[otel ${level}] ${[msg, ...extra].join(' ')}\n`);
}
function safeJson(v) {
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

// DiagConsoleLogger would send info/debug to stdout (console.info/console.debug),
// which would corrupt the manifest, so every level goes to stderr here.
const diagLogger = {
  error: (msg, ...args) => {
    fail(`SDK error: ${[msg, ...args].map(describe).join(' ')}`.slice(0, 500));
    stderrLine('error', msg, args);
  },
  warn: (msg, ...args) => {
    // The OTLP exporters report a rejected partial success only as a warning
    // and still call the export a success; for this test that is a failure.
    if (/partial success/i.test(msg)) fail(`OTLP partial success: ${args.map(describe).join(' ')}`);
    stderrLine('warn', msg, args);
  },
  info: (msg, ...args) => stderrLine('info', msg, args),
  debug: (msg, ...args) => stderrLine('debug', msg, args),
  verbose: (msg, ...args) => stderrLine('verbose', msg, args),
};
function diagLevel() {
  const name = (process.env.OTEL_LOG_LEVEL || 'warn').trim().toUpperCase();
  return DiagLogLevel[name] ?? DiagLogLevel.WARN;
}

// Installed before any SDK object exists. OTEL_LOG_LEVEL is consumed here and
// removed, because NodeSDK's constructor would otherwise replace this logger
// with DiagConsoleLogger, whose info/debug output lands on stdout.
diag.setLogger(diagLogger, { logLevel: diagLevel(), suppressOverrideMessage: true });
delete process.env.OTEL_LOG_LEVEL;

// ---------------------------------------------------------------------------
// CheckedExporter wraps a real OTLP exporter. It forwards everything unchanged
// and keeps the items of every export whose result was SUCCESS, so the
// manifest is built from exactly the objects the OTLP exporter serialized and
// the endpoint acknowledged.
// ---------------------------------------------------------------------------
class CheckedExporter {
  constructor(signal, inner) {
    this.signal = signal;
    this.inner = inner;
    this.exported = []; // one entry per successful export call
    this.requests = 0;
  }

  export(items, resultCallback) {
    this.requests += 1;
    this.inner.export(items, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        this.exported.push(items);
      } else {
        const why = result.error ? result.error.message || String(result.error) : 'unknown error';
        // OTLPExporterError.code is the HTTP status; network errors carry an errno string.
        const code = result.error && result.error.code;
        const status = typeof code === 'number' ? ` (HTTP ${code})` : code ? ` (${code})` : '';
        fail(`${this.signal} export to ${ENDPOINT} failed${status}: ${why}`);
      }
      resultCallback(result);
    });
  }

  forceFlush() {
    return this.inner.forceFlush ? this.inner.forceFlush() : Promise.resolve();
  }

  shutdown() {
    return this.inner.shutdown();
  }

  // The metric reader asks its exporter which temporality/aggregation to use;
  // without these delegations the cumulative preference would be lost.
  selectAggregationTemporality(instrumentType) {
    return this.inner.selectAggregationTemporality(instrumentType);
  }

  selectAggregation(instrumentType) {
    return this.inner.selectAggregation(instrumentType);
  }
}

// ---------------------------------------------------------------------------
// Conversions for the manifest.
// ---------------------------------------------------------------------------

// HrTime is [seconds, nanoseconds]; Number cannot hold epoch nanoseconds
// exactly, so go through BigInt. Math.trunc mirrors the OTLP transformer, so
// the string equals the timeUnixNano on the wire.
function hrToNs(hr) {
  return (BigInt(Math.trunc(hr[0])) * 1_000_000_000n + BigInt(Math.trunc(hr[1]))).toString();
}

function plainAttributes(attrs) {
  return JSON.parse(JSON.stringify(attrs ?? {}));
}

function spanToManifest(span) {
  const ctx = span.spanContext();
  return {
    trace_id: ctx.traceId,
    span_id: ctx.spanId,
    parent_span_id: span.parentSpanContext?.spanId ?? '',
    name: span.name,
    kind: SpanKind[span.kind],
    start_ns: hrToNs(span.startTime),
    end_ns: hrToNs(span.endTime),
    status_code: SpanStatusCode[span.status.code],
    status_message: span.status.message ?? '',
    attributes: plainAttributes(span.attributes),
    events: span.events.map((e) => ({
      name: e.name,
      time_ns: hrToNs(e.time),
      attributes: plainAttributes(e.attributes),
    })),
  };
}

function logToManifest(rec) {
  return {
    body: rec.body,
    severity_number: rec.severityNumber,
    severity_text: rec.severityText ?? '',
    attributes: plainAttributes(rec.attributes),
    trace_id: rec.spanContext?.traceId ?? '',
    span_id: rec.spanContext?.spanId ?? '',
    time_ns: hrToNs(rec.hrTime),
    observed_time_ns: hrToNs(rec.hrTimeObserved),
  };
}

// Cumulative temporality: the last successful export holds the totals.
function metricsToManifest(resourceMetricsList) {
  const last = resourceMetricsList[resourceMetricsList.length - 1];
  const out = {};
  if (!last) return out;
  for (const sm of last.scopeMetrics) {
    for (const m of sm.metrics) {
      const name = m.descriptor.name;
      if (m.dataPointType === DataPointType.SUM) {
        out[name] = Object.fromEntries(m.dataPoints.map((dp) => [dp.attributes.status, dp.value]));
      } else if (m.dataPointType === DataPointType.HISTOGRAM) {
        const v = m.dataPoints[0].value;
        out[name] = {
          count: v.count,
          sum: v.sum,
          bounds: v.buckets.boundaries,
          bucket_counts: v.buckets.counts,
        };
      } else if (m.dataPointType === DataPointType.GAUGE) {
        out[name] = m.dataPoints[0].value;
      }
    }
  }
  return out;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// SDK setup.
// ---------------------------------------------------------------------------
const traceExporter = new CheckedExporter(
  'traces',
  new OTLPTraceExporter({ url: `${ENDPOINT}/v1/traces` }),
);
const metricExporter = new CheckedExporter(
  'metrics',
  new OTLPMetricExporter({
    url: `${ENDPOINT}/v1/metrics`,
    // Explicit, so OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE cannot change it.
    temporalityPreference: AggregationTemporalityPreference.CUMULATIVE,
  }),
);
const logExporter = new CheckedExporter(
  'logs',
  new OTLPLogExporter({ url: `${ENDPOINT}/v1/logs` }),
);

const spanProcessor = new BatchSpanProcessor(traceExporter);
const logProcessor = new BatchLogRecordProcessor({ exporter: logExporter });
const metricReader = new PeriodicExportingMetricReader({
  exporter: metricExporter,
  // Short interval, as the test wants; the SDK requires timeout <= interval.
  // Final values are sent by the explicit flush/shutdown, not by the timer.
  exportIntervalMillis: 2_000,
  exportTimeoutMillis: 2_000,
});

// defaultResource() adds telemetry.sdk.*, as a real Node service would send.
// Resource detectors are off so host/process/env attributes (and
// OTEL_RESOURCE_ATTRIBUTES) cannot make the resource differ between machines.
const resource = defaultResource().merge(
  resourceFromAttributes({
    [ATTR_SERVICE_NAME]: SERVICE,
    [ATTR_SERVICE_VERSION]: '2.0.0',
    // The older, still widely sent key (newer semconv: deployment.environment.name).
    'deployment.environment': 'test',
  }),
);

const sdk = new NodeSDK({
  resource,
  autoDetectResources: false,
  sampler: new AlwaysOnSampler(),
  textMapPropagator: null,
  instrumentations: [],
  spanProcessors: [spanProcessor],
  logRecordProcessors: [logProcessor],
  metricReaders: [metricReader],
  views: [
    {
      instrumentName: 'signing.duration',
      aggregation: {
        type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
        options: { boundaries: HISTOGRAM_BOUNDS },
      },
    },
  ],
});

// ---------------------------------------------------------------------------
// The workload.
// ---------------------------------------------------------------------------
async function emitTelemetry() {
  const tracer = trace.getTracer(SCOPE_NAME, SCOPE_VERSION);
  const meter = metrics.getMeter(SCOPE_NAME, SCOPE_VERSION);
  const logger = logs.getLogger(SCOPE_NAME, SCOPE_VERSION);

  // Metrics are recorded first and synchronously, so even the first periodic
  // export already carries the final cumulative totals.
  const operations = meter.createCounter('signing.operations', {
    unit: '{operation}',
    description: 'Document signing operations',
    // INT so the points go out as asInt, not asDouble (the SDK default).
    valueType: ValueType.INT,
  });
  for (let i = 0; i < 5; i++) operations.add(1, { status: 'ok' });
  for (let i = 0; i < 2; i++) operations.add(1, { status: 'failed' });

  const duration = meter.createHistogram('signing.duration', {
    unit: 'ms',
    description: 'Time to sign one document',
  });
  for (const v of HISTOGRAM_VALUES) duration.record(v);

  const integrity = meter.createObservableGauge('chain.integrity', {
    unit: '1',
    description: 'Fraction of the signature chain that verified',
  });
  integrity.addCallback((result) => result.observe(0.97));

  // One trace: SERVER root with an INTERNAL and a CLIENT child.
  await tracer.startActiveSpan(
    'POST /documents/sign',
    {
      kind: SpanKind.SERVER,
      attributes: {
        'http.request.method': 'POST',
        'url.path': '/documents/sign',
        'http.route': '/documents/sign',
        'server.port': 8080,
        'user_agent.original': 'pantau-e2e/1.0',
      },
    },
    async (server) => {
      await tracer.startActiveSpan('sign document', { kind: SpanKind.INTERNAL }, async (internal) => {
        internal.setAttributes({
          'document.id': 'doc-42',
          'document.pages': 12, // int
          'document.size_kb': 48.5, // double (non-integral, so it stays doubleValue)
          'signature.valid': true, // boolean
          'signature.algorithms': ['RS256', 'ES256'], // string array
        });
        await sleep(5);
        internal.addEvent('document.hashed', {
          'hash.algorithm': 'sha256',
          'hash.bytes': 2048,
          'hash.cached': false,
          'hash.ratio': 0.25,
        });
        // The active context is the internal span's, so the SDK stamps this
        // record with its trace_id/span_id.
        logger.emit({
          severityNumber: SeverityNumber.INFO,
          severityText: 'INFO',
          body: 'document signed doc-42',
          attributes: { 'document.id': 'doc-42', signer: 'alice' },
        });
        await sleep(5);
        internal.end();
      });

      const client = tracer.startSpan('GET /chain/verify', {
        kind: SpanKind.CLIENT,
        attributes: {
          'http.request.method': 'GET',
          'server.address': 'chain.example.internal',
          'server.port': 8443,
          'http.response.status_code': 503,
          'http.request.resend_count': 2,
        },
      });
      await sleep(10);
      client.setStatus({ code: SpanStatusCode.ERROR, message: 'chain verifier unavailable (503)' });
      client.end();

      server.setAttribute('http.response.status_code', 200);
      server.setStatus({ code: SpanStatusCode.OK });
      server.end();
    },
  );

  // Emitted outside any span: this record has no trace context.
  logger.emit({
    severityNumber: SeverityNumber.ERROR,
    severityText: 'ERROR',
    body: 'chain verification failed',
    attributes: { attempt: 3 },
  });
}

// JSON with object keys sorted, so comparison ignores the SDK's key order.
function canonicalJson(v) {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

function checkExported(manifest) {
  if (manifest.spans.length !== 3) fail(`expected 3 exported spans, got ${manifest.spans.length}`);
  if (manifest.logs.length !== 2) fail(`expected 2 exported log records, got ${manifest.logs.length}`);
  const got = canonicalJson(manifest.metrics);
  const want = canonicalJson(EXPECTED_METRICS);
  if (got !== want) fail(`exported metrics differ from intended: got ${got}, want ${want}`);
  const traceIds = new Set(manifest.spans.map((s) => s.trace_id));
  if (traceIds.size !== 1) fail(`expected one trace, got trace ids ${[...traceIds].join(',')}`);
}

async function main() {
  const watchdog = setTimeout(() => {
    process.stderr.write(`emit.mjs: timed out after ${WATCHDOG_MS} ms exporting to ${ENDPOINT}\n`);
    process.exit(2);
  }, WATCHDOG_MS);
  watchdog.unref();

  sdk.start();

  // Each step is guarded on its own so a failing flush still gets a shutdown.
  try {
    await emitTelemetry();
  } catch (err) {
    fail(`emitting telemetry threw: ${describe(err)}`);
  }
  try {
    await Promise.all([spanProcessor.forceFlush(), logProcessor.forceFlush(), metricReader.forceFlush()]);
  } catch (err) {
    fail(`force flush failed: ${describe(err)}`);
  }
  try {
    // Flushes once more and stops the metric reader's timer and HTTP agents.
    await sdk.shutdown();
  } catch (err) {
    fail(`SDK shutdown failed: ${describe(err)}`);
  }

  const spans = traceExporter.exported.flat();
  const manifest = {
    service: SERVICE,
    endpoint: ENDPOINT,
    scope: { name: SCOPE_NAME, version: SCOPE_VERSION },
    resource: plainAttributes(spans[0]?.resource.attributes ?? resource.attributes),
    spans: spans.map(spanToManifest),
    logs: logExporter.exported.flat().map(logToManifest),
    metrics: metricsToManifest(metricExporter.exported),
    export_requests: {
      traces: traceExporter.requests,
      metrics: metricExporter.requests,
      logs: logExporter.requests,
    },
  };
  checkExported(manifest);

  if (failures.length > 0) {
    process.stderr.write(`emit.mjs: FAILED (${failures.length} problem(s)):\n`);
    for (const f of failures) process.stderr.write(`  - ${f}\n`);
    process.stderr.write(`partial manifest: ${JSON.stringify(manifest)}\n`);
    // Exit explicitly: after a failed shutdown the metric reader's timer may
    // still be alive and would keep the process running.
    process.exit(1);
  }
  // Exit only once the manifest is fully written to stdout.
  process.stdout.write(`${JSON.stringify(manifest)}\n`, () => process.exit(0));
}

await main();
