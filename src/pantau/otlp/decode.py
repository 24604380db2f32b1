"""OTLP export requests (protobuf or JSON) into pantau's write batches.

Decoding validates each item, rejects the invalid ones (reported back through OTLP's
`partial_success`) and keeps the rest in their original encoding; see `pantau.model`.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, TypeVar

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError as ProtobufDecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from pantau.model import LogBatch, SampleBatch, SpanBatch, service_name_of
from pantau.otlp import shadow
from pantau.otlp.metrics import MetricsTranslator
from pantau.otlp.values import as_text, from_any, from_key_values

if TYPE_CHECKING:
    from pantau.logs.redact_ingest import IngestRedactor

NS_PER_DAY = 86_400 * 1_000_000_000
_ZERO_TRACE = bytes(16)
_ZERO_SPAN = bytes(8)
_MAX_MESSAGES = 5


class DecodeError(ValueError):
    """The request body is not a valid OTLP message; answered with 400 / INVALID_ARGUMENT."""


@dataclass(slots=True)
class Limits:
    """Limits applied while decoding. Values over them are truncated, as Tempo and Loki do,
    and the truncation is reported as a warning in `partial_success`."""

    max_attribute_value_bytes: int = 64 * 1024
    max_log_body_bytes: int = 256 * 1024
    # Items older than this (relative to now) are rejected: retention would drop them at once.
    max_age_ns: int = 30 * NS_PER_DAY
    # Items further in the future than this are rejected (a clock that is badly off).
    max_future_ns: int = NS_PER_DAY


B = TypeVar("B", SpanBatch, LogBatch, SampleBatch)
M = TypeVar("M")


@dataclass(slots=True)
class Decoded(Generic[B]):
    batch: B
    rejected: int = 0
    messages: list[str] = field(default_factory=list)

    def reject(self, message: str, count: int = 1) -> None:
        self.rejected += count
        self.note(message)

    def note(self, message: str) -> None:
        if message not in self.messages and len(self.messages) < _MAX_MESSAGES:
            self.messages.append(message)

    @property
    def error_message(self) -> str:
        return "; ".join(self.messages)


class ServiceNames:
    """`service.name` of a resource encoding, remembered (resources repeat on every export)."""

    def __init__(self, capacity: int = 4096) -> None:
        self._cache: dict[bytes, str] = {}
        self._capacity = capacity

    def __call__(self, resource: bytes) -> str:
        name = self._cache.get(resource)
        if name is None:
            pb = PbResource()
            pb.ParseFromString(resource)
            name = service_name_of(from_key_values(pb.attributes))
            if len(self._cache) >= self._capacity:
                self._cache.clear()
            self._cache[resource] = name
        return name


class OtlpDecoder:
    def __init__(self, limits: Limits | None = None, clock: Callable[[], int] = time.time_ns,
                 redactor: IngestRedactor | None = None) -> None:
        self.limits = limits or Limits()
        # PII redaction of log bodies and attributes before anything is stored (None: off)
        self.redactor = redactor
        self.clock = clock
        self.service_name = ServiceNames()
        self.translator = MetricsTranslator()

    # --- traces ------------------------------------------------------------------------

    def traces(self, body: bytes) -> Decoded[SpanBatch]:
        request = _parse(shadow.TraceRequest, body, "ExportTraceServiceRequest")
        out: Decoded[SpanBatch] = Decoded(SpanBatch())
        batch = out.batch
        now = self.clock()
        oldest, newest = now - self.limits.max_age_ns, now + self.limits.max_future_ns
        max_bytes = self.limits.max_attribute_value_bytes
        resource_index: dict[bytes, int] = {}
        scope_index: dict[bytes, int] = {}
        append_trace, append_span, append_parent = (
            batch.trace_id.append, batch.span_id.append, batch.parent_span_id.append)
        for rs in request.resource_spans:
            resource = rs.resource
            service = self.service_name(resource)
            r_ref = _intern(resource, resource_index, batch.resources)
            for ss in rs.scope_spans:
                s_ref = _intern(ss.scope, scope_index, batch.scopes)
                for span in ss.spans:
                    trace_id, span_id, parent = span.trace_id, span.span_id, span.parent_span_id
                    start, end = span.start, span.end
                    problem = _span_problem(trace_id, span_id, parent, start, end, oldest, newest)
                    if problem:
                        out.reject(problem)
                        continue
                    payload = span.SerializeToString()
                    if len(payload) > max_bytes:
                        payload, truncated = _truncate_span(payload, max_bytes)
                        if truncated:
                            out.note(f"{truncated} attribute value(s) longer than {max_bytes} bytes "
                                     "were truncated")
                    append_trace(trace_id)
                    append_span(span_id)
                    append_parent(b"" if parent == _ZERO_SPAN else parent)
                    batch.service.append(service)
                    batch.name.append(span.name)
                    batch.kind.append(span.kind)
                    batch.start_ns.append(start)
                    batch.end_ns.append(end)
                    batch.status_code.append(span.status.code)
                    batch.resource_ref.append(r_ref)
                    batch.scope_ref.append(s_ref)
                    batch.payload.append(payload)
        return out

    # --- logs --------------------------------------------------------------------------

    def logs(self, body: bytes) -> Decoded[LogBatch]:
        request = _parse(shadow.LogsRequest, body, "ExportLogsServiceRequest")
        out: Decoded[LogBatch] = Decoded(LogBatch())
        batch = out.batch
        now = self.clock()
        oldest, newest = now - self.limits.max_age_ns, now + self.limits.max_future_ns
        max_body = self.limits.max_log_body_bytes
        max_attr = self.limits.max_attribute_value_bytes
        resource_index: dict[bytes, int] = {}
        scope_index: dict[bytes, int] = {}
        maybe_audit: list[int] = []
        for rl in request.resource_logs:
            resource = rl.resource
            service = self.service_name(resource)
            r_ref = _intern(resource, resource_index, batch.resources)
            for sl in rl.scope_logs:
                s_ref = _intern(sl.scope, scope_index, batch.scopes)
                for record in sl.log_records:
                    trace_id, span_id = record.trace_id, record.span_id
                    if trace_id and (len(trace_id) != 16):
                        out.reject(f"invalid trace_id: {len(trace_id)} bytes, expected 16")
                        continue
                    if span_id and len(span_id) != 8:
                        out.reject(f"invalid span_id: {len(span_id)} bytes, expected 8")
                        continue
                    observed = record.observed_time
                    ts = record.time or observed
                    if ts == 0:
                        observed = ts = now
                        record.observed_time = now
                    if not oldest <= ts <= newest:
                        out.reject(_window_message(ts, oldest, newest))
                        continue
                    severity = record.severity_number
                    if not 0 <= severity <= 24:
                        out.reject(f"invalid severity_number {severity}: must be 0..24")
                        continue
                    if record.HasField("body"):
                        body_value = record.body
                        if body_value.HasField("string_value"):
                            text = body_value.string_value
                            record.ClearField("body")
                            payload = record.SerializeToString()
                        else:
                            payload = record.SerializeToString()
                            text = _structured_body_text(payload) or ""
                    else:
                        text = ""
                        payload = record.SerializeToString()
                    if len(text) > max_body:
                        text = text[:max_body]
                        out.note(f"log bodies longer than {max_body} bytes were truncated")
                    if len(payload) > max_attr:
                        payload, truncated = _truncate_log(payload, max_attr)
                        if truncated:
                            out.note(f"{truncated} attribute value(s) longer than {max_attr} bytes "
                                     "were truncated")
                    if b"audit" in payload:  # cheap test first: decode only likely audit records
                        maybe_audit.append(len(batch.payload))
                    batch.time_ns.append(ts)
                    batch.observed_ns.append(observed)
                    batch.severity_number.append(severity)
                    batch.severity_text.append(record.severity_text)
                    batch.body.append(text)
                    batch.trace_id.append(b"" if trace_id == _ZERO_TRACE else trace_id)
                    batch.span_id.append(b"" if span_id == _ZERO_SPAN else span_id)
                    batch.service.append(service)
                    batch.resource_ref.append(r_ref)
                    batch.scope_ref.append(s_ref)
                    batch.payload.append(payload)
        if self.redactor is not None:
            for i in self.redactor.redact_batch(batch.body, batch.payload):
                text = _structured_body_text(batch.payload[i])  # a structured body follows its payload
                if text is not None:
                    batch.body[i] = text[:max_body]
        for i in maybe_audit:  # after redaction: the chain holds what is stored
            resource = batch.resources[batch.resource_ref[i]]
            entry = _audit_entry(batch.payload[i], batch.body[i], batch.time_ns[i], batch.service[i], resource)
            if entry is not None:
                batch.audit.append((batch.time_ns[i], entry))
        return out

    # --- metrics -----------------------------------------------------------------------

    def metrics(self, body: bytes) -> Decoded[SampleBatch]:
        request = _parse(shadow.MetricsRequest, body, "ExportMetricsServiceRequest")
        out: Decoded[SampleBatch] = Decoded(SampleBatch())
        now = self.clock()
        self.translator.translate(
            request, out, now_ns=now,
            oldest_ms=(now - self.limits.max_age_ns) // 1_000_000,
            newest_ms=(now + self.limits.max_future_ns) // 1_000_000,
        )
        return out


# --- JSON ---------------------------------------------------------------------------------

_ID_KEYS = {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
_JSON_REQUESTS = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


def json_to_protobuf(signal: str, body: bytes) -> bytes:
    """An OTLP/JSON request re-encoded as protobuf, so both encodings share one decoder.

    OTLP/JSON differs from protobuf's canonical JSON in one way that matters: trace and span
    ids are hex strings, not base64.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("malformed OTLP/JSON: the request must be a JSON object")
    _hex_ids_to_base64(doc)
    message = _JSON_REQUESTS[signal]()
    try:
        json_format.ParseDict(doc, message, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError) as exc:
        raise DecodeError(f"malformed OTLP/JSON {type(message).__name__}: {exc}") from None
    return message.SerializeToString()


def _hex_ids_to_base64(node: object) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _ID_KEYS and isinstance(value, str):
                try:
                    raw = bytes.fromhex(value)
                except ValueError:
                    raw = b"\xff"  # not hex: keep it invalid so validation rejects the item
                node[key] = base64.b64encode(raw).decode()
            else:
                _hex_ids_to_base64(value)
    elif isinstance(node, list):
        for item in node:
            _hex_ids_to_base64(item)


# --- helpers ------------------------------------------------------------------------------


def _parse(cls: type[M], body: bytes, name: str) -> M:
    message = cls()
    try:
        message.ParseFromString(body)  # type: ignore[attr-defined]
    except (ProtobufDecodeError, RuntimeError, ValueError) as exc:
        raise DecodeError(f"malformed protobuf {name}: {exc}") from None
    return message


def _intern(value: bytes, index: dict[bytes, int], table: list[bytes]) -> int:
    ref = index.get(value)
    if ref is None:
        ref = index[value] = len(table)
        table.append(value)
    return ref


def _span_problem(trace_id: bytes, span_id: bytes, parent: bytes, start: int, end: int,
                  oldest: int, newest: int) -> str:
    if len(trace_id) != 16 or trace_id == _ZERO_TRACE:
        return (f"invalid trace_id: {len(trace_id)} bytes, expected 16 non-zero bytes"
                if len(trace_id) != 16 else "invalid trace_id: all zeros")
    if len(span_id) != 8 or span_id == _ZERO_SPAN:
        return (f"invalid span_id: {len(span_id)} bytes, expected 8 non-zero bytes"
                if len(span_id) != 8 else "invalid span_id: all zeros")
    if parent and len(parent) != 8:
        return f"invalid parent_span_id: {len(parent)} bytes, expected 8"
    if end < start:
        return "invalid span: end_time_unix_nano is before start_time_unix_nano"
    if not oldest <= start <= newest:
        return _window_message(start, oldest, newest)
    return ""


def _window_message(ts: int, oldest: int, newest: int) -> str:
    side = "older than the retention period" if ts < oldest else "too far in the future"
    return f"timestamp {ts} is {side} (accepted: {oldest}..{newest} ns)"


def _truncate_values(key_values, limit: int) -> int:
    count = 0
    for kv in key_values:
        value = kv.value
        kind = value.WhichOneof("value")
        if kind == "string_value" and len(value.string_value.encode()) > limit:
            value.string_value = value.string_value.encode()[:limit].decode("utf-8", "ignore")
            count += 1
        elif kind == "bytes_value" and len(value.bytes_value) > limit:
            value.bytes_value = value.bytes_value[:limit]
            count += 1
    return count


def _truncate_span(payload: bytes, limit: int) -> tuple[bytes, int]:
    span = PbSpan()
    span.ParseFromString(payload)
    count = _truncate_values(span.attributes, limit)
    for event in span.events:
        count += _truncate_values(event.attributes, limit)
    for link in span.links:
        count += _truncate_values(link.attributes, limit)
    return (span.SerializeToString(), count) if count else (payload, 0)


def _truncate_log(payload: bytes, limit: int) -> tuple[bytes, int]:
    record = PbLogRecord()
    record.ParseFromString(payload)
    count = _truncate_values(record.attributes, limit)
    return (record.SerializeToString(), count) if count else (payload, 0)


def _audit_entry(payload: bytes, body: str, ts: int, service: str, resource: bytes) -> bytes | None:
    from pantau.logs.audit import canonical, is_audit
    from pantau.otlp.convert import resource_from_bytes
    from pantau.otlp.values import json_safe

    record = PbLogRecord()
    record.ParseFromString(payload)
    attributes = from_key_values(record.attributes)
    if not is_audit(attributes, record.event_name):
        return None
    return canonical({
        "time_unix_nano": ts, "service": service, "severity_number": record.severity_number,
        "severity_text": record.severity_text, "body": body, "attributes": json_safe(attributes),
        "resource": json_safe(resource_from_bytes(resource).attributes),
        "trace_id": record.trace_id.hex(), "span_id": record.span_id.hex()})


def _structured_body_text(payload: bytes) -> str | None:
    """The text of a body kept in the payload (not a string), or None when it has none."""
    record = PbLogRecord()
    record.ParseFromString(payload)
    return as_text(from_any(record.body)) if record.HasField("body") else None
