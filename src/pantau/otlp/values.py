"""Conversions between OTLP `AnyValue`/`KeyValue` messages and plain Python values."""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue, KeyValueList

from pantau.otlp.prometheus import format_float


def from_any(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        return value.double_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "bytes_value":
        return value.bytes_value
    if kind == "array_value":
        return [from_any(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: from_any(kv.value) for kv in value.kvlist_value.values}
    return None


def from_key_values(key_values: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: from_any(kv.value) for kv in key_values}


def from_raw_key_values(raw: bytes) -> dict[str, Any]:
    """Attributes from a `KeyValueList` encoding (how the store keeps raw attribute lists)."""
    if not raw:
        return {}
    kvl = KeyValueList()
    kvl.ParseFromString(raw)
    return from_key_values(kvl.values)


def to_any(value: Any, out: AnyValue | None = None) -> AnyValue:
    out = AnyValue() if out is None else out
    if isinstance(value, str):
        out.string_value = value
    elif isinstance(value, bool):
        out.bool_value = value
    elif isinstance(value, int):
        out.int_value = value
    elif isinstance(value, float):
        out.double_value = value
    elif isinstance(value, bytes | bytearray):
        out.bytes_value = bytes(value)
    elif isinstance(value, Mapping):
        to_key_values(value, out.kvlist_value.values)
    elif isinstance(value, list | tuple):
        for item in value:
            to_any(item, out.array_value.values.add())
    elif value is not None:
        out.string_value = str(value)
    return out


def to_key_values(attributes: Mapping[str, Any], target: Any) -> None:
    """Append `attributes` to a repeated `KeyValue` field."""
    for key, value in attributes.items():
        kv = target.add()
        kv.key = key
        to_any(value, kv.value)


def json_safe(value: Any) -> Any:
    """A value JSON can carry: bytes as base64, non-finite floats as their Prometheus spelling."""
    if isinstance(value, float) and not math.isfinite(value):
        return format_float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    return value


def as_text(value: Any) -> str:
    """A value as a string, the way the OpenTelemetry Collector's `AsString` renders it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if value is None:
        return ""
    return orjson.dumps(json_safe(value)).decode()
