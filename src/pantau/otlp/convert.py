"""Stored OTLP encodings back into pantau's read models."""

from __future__ import annotations

from functools import lru_cache

from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as PbSpan

from pantau.model import (
    LogRecord,
    Resource,
    Scope,
    Span,
    SpanEvent,
    SpanKind,
    SpanLink,
    StatusCode,
    hex_id,
)
from pantau.otlp.values import from_any, from_key_values


@lru_cache(maxsize=1024)
def resource_from_bytes(raw: bytes) -> Resource:
    pb = PbResource()
    pb.ParseFromString(raw)
    return Resource(from_key_values(pb.attributes), pb.dropped_attributes_count)


@lru_cache(maxsize=1024)
def scope_from_bytes(raw: bytes) -> Scope:
    pb = InstrumentationScope()
    pb.ParseFromString(raw)
    return Scope(pb.name, pb.version, from_key_values(pb.attributes))


def span_from_payload(payload: bytes, service: str, resource: Resource, scope: Scope) -> Span:
    pb = PbSpan()
    pb.ParseFromString(payload)
    return Span(
        trace_id=pb.trace_id.hex(),
        span_id=pb.span_id.hex(),
        parent_span_id=hex_id(pb.parent_span_id) if pb.parent_span_id != bytes(8) else "",
        service=service,
        name=pb.name,
        kind=SpanKind(pb.kind) if pb.kind in SpanKind._value2member_map_ else SpanKind.UNSPECIFIED,
        start_ns=pb.start_time_unix_nano,
        end_ns=pb.end_time_unix_nano,
        status_code=StatusCode(pb.status.code) if pb.status.code in (0, 1, 2) else StatusCode.UNSET,
        status_message=pb.status.message,
        attributes=from_key_values(pb.attributes),
        events=[SpanEvent(e.name, e.time_unix_nano, from_key_values(e.attributes),
                          e.dropped_attributes_count) for e in pb.events],
        links=[SpanLink(hex_id(lk.trace_id), hex_id(lk.span_id), lk.trace_state,
                        from_key_values(lk.attributes), lk.flags) for lk in pb.links],
        resource=resource,
        scope=scope,
        trace_state=pb.trace_state,
        flags=pb.flags,
        dropped_attributes_count=pb.dropped_attributes_count,
        dropped_events_count=pb.dropped_events_count,
        dropped_links_count=pb.dropped_links_count,
    )


def span_attributes(payload: bytes) -> dict:
    pb = PbSpan()
    pb.ParseFromString(payload)
    return from_key_values(pb.attributes)


def log_from_payload(payload: bytes, body_text: str, service: str, resource: Resource,
                     scope: Scope, record_id: str = "") -> LogRecord:
    pb = PbLogRecord()
    pb.ParseFromString(payload)
    body = from_any(pb.body) if pb.HasField("body") else body_text
    return LogRecord(
        time_ns=pb.time_unix_nano,
        observed_time_ns=pb.observed_time_unix_nano,
        severity_number=pb.severity_number,
        severity_text=pb.severity_text,
        body=body,
        service=service,
        attributes=from_key_values(pb.attributes),
        resource=resource,
        scope=scope,
        trace_id=hex_id(pb.trace_id) if pb.trace_id != bytes(16) else "",
        span_id=hex_id(pb.span_id) if pb.span_id != bytes(8) else "",
        flags=pb.flags,
        event_name=pb.event_name,
        dropped_attributes_count=pb.dropped_attributes_count,
        id=record_id,
    )


def log_attributes(payload: bytes) -> dict:
    pb = PbLogRecord()
    pb.ParseFromString(payload)
    return from_key_values(pb.attributes)
