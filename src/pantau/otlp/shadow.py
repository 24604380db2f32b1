"""Wire-compatible "shadow" views of the OTLP export requests.

Each shadow message has the field numbers of the real OTLP message, but declares the parts
pantau does not index as `bytes`. Parsing with them is plain upb (C) work, and hands back the
original encoding of each span, log record, resource and scope untouched, so the store keeps
exactly what the client sent while Python only touches the handful of indexed fields.

Data point attributes are declared as `repeated bytes`: their raw encodings form a hashable
series key, so repeated exports of the same series are resolved with one dict lookup instead
of decoding every label again.

The file is declared proto2 so every optional field reports presence (`HasField`), which
OTLP's `optional double sum` needs.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

_F = descriptor_pb2.FieldDescriptorProto
_PKG = "pantau.shadow"

# short names for the field types used below
BYTES, STRING, MSG = _F.TYPE_BYTES, _F.TYPE_STRING, _F.TYPE_MESSAGE
I32, U32, S32, F64, FX64, DBL, BOOL = (
    _F.TYPE_INT32, _F.TYPE_UINT32, _F.TYPE_SINT32, _F.TYPE_FIXED64, _F.TYPE_FIXED64,
    _F.TYPE_DOUBLE, _F.TYPE_BOOL,
)
U64 = _F.TYPE_UINT64
# repeated marker
R = "repeated"

_SCHEMA: dict[str, list[tuple]] = {
    # --- traces ---
    "TraceRequest": [("resource_spans", 1, MSG, R, "ResourceSpans")],
    "ResourceSpans": [("resource", 1, BYTES), ("scope_spans", 2, MSG, R, "ScopeSpans")],
    "ScopeSpans": [("scope", 1, BYTES), ("spans", 2, MSG, R, "SpanHead")],
    "SpanHead": [
        ("trace_id", 1, BYTES), ("span_id", 2, BYTES), ("parent_span_id", 4, BYTES),
        ("name", 5, STRING), ("kind", 6, I32), ("start", 7, FX64), ("end", 8, FX64),
        ("status", 15, MSG, None, "Status"),
    ],
    "Status": [("message", 2, STRING), ("code", 3, I32)],
    # --- logs ---
    "LogsRequest": [("resource_logs", 1, MSG, R, "ResourceLogs")],
    "ResourceLogs": [("resource", 1, BYTES), ("scope_logs", 2, MSG, R, "ScopeLogs")],
    "ScopeLogs": [("scope", 1, BYTES), ("log_records", 2, MSG, R, "LogHead")],
    "LogHead": [
        ("time", 1, FX64), ("observed_time", 11, FX64), ("severity_number", 2, I32),
        ("severity_text", 3, STRING), ("body", 5, MSG, None, "AnyValueHead"),
        ("trace_id", 9, BYTES), ("span_id", 10, BYTES),
    ],
    # A string body is decoded; any other kind stays as the raw AnyValue encoding in `other`'s
    # stead (the field numbers 2..7 are kept as unknown fields and detected by `HasField`).
    "AnyValueHead": [("string_value", 1, STRING)],
    # --- metrics ---
    "MetricsRequest": [("resource_metrics", 1, MSG, R, "ResourceMetrics")],
    "ResourceMetrics": [("resource", 1, BYTES), ("scope_metrics", 2, MSG, R, "ScopeMetrics")],
    "ScopeMetrics": [("scope", 1, BYTES), ("metrics", 2, MSG, R, "Metric")],
    "Metric": [
        ("name", 1, STRING), ("description", 2, STRING), ("unit", 3, STRING),
        ("gauge", 5, MSG, None, "Gauge"), ("sum", 7, MSG, None, "Sum"),
        ("histogram", 9, MSG, None, "Histogram"),
        ("exponential_histogram", 10, MSG, None, "ExponentialHistogram"),
        ("summary", 11, MSG, None, "Summary"),
    ],
    # Number points stay raw: `pantau.otlp.metrics` reads their few fixed-size fields
    # directly and uses the rest (the attributes) as the series' cache key.
    "Gauge": [("data_points", 1, BYTES, R)],
    "Sum": [
        ("data_points", 1, BYTES, R), ("aggregation_temporality", 2, I32),
        ("is_monotonic", 3, BOOL),
    ],
    "Histogram": [
        ("data_points", 1, MSG, R, "HistogramDataPoint"), ("aggregation_temporality", 2, I32),
    ],
    "ExponentialHistogram": [
        ("data_points", 1, MSG, R, "ExponentialHistogramDataPoint"),
        ("aggregation_temporality", 2, I32),
    ],
    "Summary": [("data_points", 1, MSG, R, "SummaryDataPoint")],
    "NumberDataPoint": [
        ("attributes", 7, BYTES, R), ("start_time", 2, FX64), ("time", 3, FX64),
        ("as_double", 4, DBL), ("as_int", 6, _F.TYPE_SFIXED64), ("flags", 8, U32),
    ],
    "HistogramDataPoint": [
        ("attributes", 9, BYTES, R), ("start_time", 2, FX64), ("time", 3, FX64),
        ("count", 4, FX64), ("sum", 5, DBL), ("bucket_counts", 6, FX64, R),
        ("explicit_bounds", 7, DBL, R), ("flags", 10, U32), ("min", 11, DBL), ("max", 12, DBL),
    ],
    "ExponentialHistogramDataPoint": [
        ("attributes", 1, BYTES, R), ("start_time", 2, FX64), ("time", 3, FX64),
        ("count", 4, FX64), ("sum", 5, DBL), ("scale", 6, S32), ("zero_count", 7, FX64),
        ("positive", 8, MSG, None, "Buckets"), ("negative", 9, MSG, None, "Buckets"),
        ("flags", 10, U32), ("min", 12, DBL), ("max", 13, DBL), ("zero_threshold", 14, DBL),
    ],
    "Buckets": [("offset", 1, S32), ("bucket_counts", 2, U64, R)],
    "SummaryDataPoint": [
        ("attributes", 7, BYTES, R), ("start_time", 2, FX64), ("time", 3, FX64),
        ("count", 4, FX64), ("sum", 5, DBL), ("quantile_values", 6, MSG, R, "Quantile"),
        ("flags", 8, U32),
    ],
    "Quantile": [("quantile", 1, DBL), ("value", 2, DBL)],
    # A KeyValueList-compatible envelope: repeated raw KeyValue encodings.
    "RawKeyValues": [("values", 1, BYTES, R)],
}


def _build() -> dict[str, type[Message]]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="pantau/otlp/shadow.proto", package=_PKG, syntax="proto2"
    )
    for message_name, fields in _SCHEMA.items():
        message = fdp.message_type.add(name=message_name)
        for spec in fields:
            name, number, type_ = spec[0], spec[1], spec[2]
            repeated = len(spec) > 3 and spec[3] == R
            field = message.field.add(
                name=name, number=number, type=type_,
                label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
            )
            if type_ == MSG:
                field.type_name = f".{_PKG}.{spec[4]}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.{name}"))
        for name in _SCHEMA
    }


_CLASSES = _build()

TraceRequest = _CLASSES["TraceRequest"]
NumberDataPoint = _CLASSES["NumberDataPoint"]
LogsRequest = _CLASSES["LogsRequest"]
MetricsRequest = _CLASSES["MetricsRequest"]
RawKeyValues = _CLASSES["RawKeyValues"]
