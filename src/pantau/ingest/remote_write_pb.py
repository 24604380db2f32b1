"""Prometheus remote-write 1.0 protobuf messages, built at run time (no protoc, no generated code).

Two families, both wire-compatible with Prometheus's `prompb` (`remote.proto`, `types.proto`):

* the **full** messages (`WriteRequest`, `TimeSeries`, `Label`, `Sample`, `MetricMetadata`),
  for senders (tests, benchmarks) and for decoding a label set the receiver has not seen yet;
* the receiver's views: `RawWriteRequest` keeps each series as its raw encoding (a label set
  seen before is then found by one slice and one dict lookup, see `remote_write`), and
  `ShadowTimeSeries` parses one series with its labels left as raw `Label` encodings, so only
  label sets never seen before are decoded name by name. The parsing is upb's (C) work.

Label names and values are declared `bytes`, not `string`: upb would check UTF-8 for proto3
strings and fail the whole message with an unhelpful error; the receiver decodes them itself
and names the offending label set. The file is proto3 like Prometheus's (so a zero value is
simply absent on the wire, as Go's encoder writes it).
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message

_F = descriptor_pb2.FieldDescriptorProto
_PKG = "pantau.remote_write"
BYTES, STRING, MSG, DBL, I64, ENUM = _F.TYPE_BYTES, _F.TYPE_STRING, _F.TYPE_MESSAGE, _F.TYPE_DOUBLE, _F.TYPE_INT64, \
    _F.TYPE_INT32
R = "repeated"

# MetricMetadata.MetricType: the enum's numbers, as Prometheus's types.proto defines them.
METRIC_TYPES = {0: "unknown", 1: "counter", 2: "gauge", 3: "histogram", 4: "gaugehistogram", 5: "summary",
                6: "info", 7: "stateset"}

_SCHEMA: dict[str, list[tuple]] = {
    # --- full messages (prometheus.WriteRequest and friends) ---
    "WriteRequest": [("timeseries", 1, MSG, R, "TimeSeries"), ("metadata", 3, MSG, R, "MetricMetadata")],
    "TimeSeries": [
        ("labels", 1, MSG, R, "Label"), ("samples", 2, MSG, R, "Sample"),
        ("exemplars", 3, BYTES, R), ("histograms", 4, BYTES, R),
    ],
    "Label": [("name", 1, BYTES), ("value", 2, BYTES)],
    "Sample": [("value", 1, DBL), ("timestamp", 2, I64)],
    # `type` is an enum in types.proto; an int32 has the same encoding (varint) and needs no enum type.
    "MetricMetadata": [("type", 1, ENUM), ("metric_family_name", 2, STRING), ("help", 4, STRING),
                       ("unit", 5, STRING)],
    # --- the receiver's view: each series as its raw encoding, then one series' parts ---
    "RawWriteRequest": [("timeseries", 1, BYTES, R), ("metadata", 3, MSG, R, "MetricMetadata")],
    "ShadowTimeSeries": [
        ("labels", 1, BYTES, R), ("samples", 2, MSG, R, "Sample"), ("histograms", 4, BYTES, R),
    ],
}


def _build() -> dict[str, type[Message]]:
    fdp = descriptor_pb2.FileDescriptorProto(name="pantau/remote_write.proto", package=_PKG, syntax="proto3")
    for message_name, fields in _SCHEMA.items():
        message = fdp.message_type.add(name=message_name)
        for spec in fields:
            name, number, type_ = spec[0], spec[1], spec[2]
            repeated = len(spec) > 3 and spec[3] == R
            field = message.field.add(name=name, number=number, type=type_,
                                      label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if type_ == MSG:
                field.type_name = f".{_PKG}.{spec[4]}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PKG}.{name}"))
            for name in _SCHEMA}


_CLASSES = _build()

WriteRequest = _CLASSES["WriteRequest"]
TimeSeries = _CLASSES["TimeSeries"]
Label = _CLASSES["Label"]
Sample = _CLASSES["Sample"]
MetricMetadata = _CLASSES["MetricMetadata"]
RawWriteRequest = _CLASSES["RawWriteRequest"]
ShadowTimeSeries = _CLASSES["ShadowTimeSeries"]


def encode_write_request(series, metadata=()) -> bytes:
    """A `WriteRequest` encoding (not yet snappy-compressed), as Prometheus's sender writes it.

    `series`: iterable of (label pairs, timestamps in ms, values); `metadata`: iterable of
    (metric family name, type name such as "counter", help, unit). For tests, benchmarks and
    loading data into Prometheus; the receiver never builds full messages.
    """
    types = {v: k for k, v in METRIC_TYPES.items()}
    request = WriteRequest()
    for labels, stamps, values in series:
        ts = request.timeseries.add()
        for name, value in labels:
            ts.labels.add(name=name.encode(), value=value.encode())
        for t, v in zip(stamps, values, strict=True):
            ts.samples.add(value=v, timestamp=t)
    for name, type_, help_, unit in metadata:
        request.metadata.add(type=types.get(type_, 0), metric_family_name=name, help=help_, unit=unit)
    return request.SerializeToString()
