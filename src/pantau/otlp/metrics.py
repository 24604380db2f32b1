"""OTLP metrics into Prometheus samples, the way Prometheus's own OTLP receiver maps them.

* gauges and non-monotonic sums: one series named after the metric (unit suffix added);
* monotonic sums: `_total`;
* histograms: `_bucket{le=...}` (cumulative, ending with `le="+Inf"`), `_sum`, `_count`;
* exponential histograms: Prometheus stores them as native histograms; pantau stores classic
  buckets at the exponential boundaries (`le` = base^(index+1)), plus `_sum` and `_count`;
* summaries: `{quantile=...}`, `_sum`, `_count`;
* resource attributes: `service.namespace`/`service.name` become `job`, `service.instance.id`
  becomes `instance`, the rest go to a `target_info` series;
* a data point flagged "no recorded value" becomes Prometheus's staleness marker;
* delta temporality (which Prometheus rejects by default) is accumulated into cumulative
  values, as the Collector's `deltatocumulative` processor does.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource

from pantau.model import METRIC_NAME, Labels, MetricMetadata, MetricType, series_key, stale_marker
from pantau.otlp.prometheus import MetricKind, format_float, label_name, metric_name, unit_name
from pantau.otlp.shadow import NumberDataPoint
from pantau.otlp.values import as_text, from_any

if TYPE_CHECKING:
    from pantau.otlp.decode import Decoded

_NO_RECORDED_VALUE = 1
_DELTA = 1
_IDENTIFYING = {"service.name", "service.namespace", "service.instance.id"}
_CACHE_LIMIT = 100_000
_STALE = stale_marker()
_U64 = struct.Struct("<Q").unpack_from
_I64 = struct.Struct("<q").unpack_from
_F64 = struct.Struct("<d").unpack_from


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field7(attribute: bytes) -> bytes:
    """One `attributes` entry (field 7, length-delimited) as it appears on the wire."""
    return b"\x3a" + _varint(len(attribute)) + attribute


@dataclass(slots=True)
class _ResourceLabels:
    base: tuple[tuple[str, str], ...]  # job / instance
    target_info: int | None  # series id of its target_info series


def _sanitized(attributes: list[tuple[str, Any]]) -> dict[str, str]:
    """Attribute pairs as label pairs; keys that collide after sanitising join their values with ';'."""
    out: dict[str, str] = {}
    for key, value in sorted(attributes, key=lambda kv: kv[0]):
        name = label_name(key)
        if not name:
            continue
        text = as_text(value)
        out[name] = f"{out[name]};{text}" if name in out else text
    return out


class MetricsTranslator:
    """Translates metric requests, remembering label sets between requests.

    Every final label set gets a small integer id (never reused), and the per-request work is
    keyed by raw attribute encodings and those ids: a series seen before costs a couple of
    dict lookups, no label decoding, no tuple hashing.
    """

    def __init__(self) -> None:
        self._resources: dict[bytes, _ResourceLabels] = {}
        self._bases: dict[tuple[bytes, tuple[bytes, ...]], tuple[int, dict[str, str]]] = {}
        self._final: dict[tuple, int] = {}
        self._numbers: dict[tuple, int] = {}
        self._series: dict[int, tuple[Labels, str]] = {}
        self._ids: dict[str, int] = {}
        self._next_id = 0
        self._delta_totals: dict[int, float] = {}
        self._batch: object = None
        self._local: dict[int, int] = {}

    def _forget(self) -> None:
        """Bound memory: drop every cache (series ids stay unique: the counter goes on)."""
        for cache in (self._resources, self._bases, self._final, self._numbers, self._series, self._ids):
            cache.clear()

    # --- label sets ----------------------------------------------------------------------

    def _intern(self, labels: Labels) -> int:
        key = series_key(labels)
        sid = self._ids.get(key)
        if sid is None:
            if len(self._series) >= _CACHE_LIMIT:
                self._forget()
            sid = self._ids[key] = self._next_id
            self._series[sid] = (labels, key)
            self._next_id += 1
        return sid

    def _resource(self, raw: bytes) -> _ResourceLabels:
        cached = self._resources.get(raw)
        if cached is not None:
            return cached
        pb = PbResource()
        pb.ParseFromString(raw)
        attrs = {kv.key: from_any(kv.value) for kv in pb.attributes}
        base: dict[str, str] = {}
        name, namespace = attrs.get("service.name"), attrs.get("service.namespace")
        if name:
            base["job"] = f"{namespace}/{name}" if namespace else str(name)
        if attrs.get("service.instance.id"):
            base["instance"] = as_text(attrs["service.instance.id"])
        rest = [(k, v) for k, v in attrs.items() if k not in _IDENTIFYING]
        target_info = None
        if rest:
            pairs = _sanitized(rest)
            pairs.update(base)
            pairs[METRIC_NAME] = "target_info"
            target_info = self._intern(tuple(sorted(pairs.items())))
        cached = _ResourceLabels(tuple(sorted(base.items())), target_info)
        self._resources[raw] = cached
        return cached

    def _base(self, key: tuple[bytes, tuple[bytes, ...]], resource: _ResourceLabels) -> tuple[int, dict[str, str]]:
        """A data point's labels without the metric name: resource identity plus attributes."""
        hit = self._bases.get(key)
        if hit is not None:
            return hit
        pairs: list[tuple[str, Any]] = []
        for raw in key[1]:
            kv = KeyValue()
            kv.ParseFromString(raw)
            pairs.append((kv.key, from_any(kv.value)))
        labels = _sanitized(pairs)
        labels.update(dict(resource.base))  # resource identity wins over a same-named attribute
        hit = self._bases[key] = (len(self._bases), labels)
        return hit

    def _sid(self, base: tuple[int, dict[str, str]], name: str, extra: tuple[str, str] | None) -> int:
        key = (base[0], name, extra)
        sid = self._final.get(key)
        if sid is None:
            pairs = dict(base[1])
            pairs[METRIC_NAME] = name
            if extra is not None:
                pairs[extra[0]] = extra[1]
            sid = self._final[key] = self._intern(tuple(sorted(pairs.items())))
        return sid

    def _ref(self, batch, sid: int) -> int:
        """The position of series `sid` in this batch's `series`."""
        if self._batch is not batch:
            self._batch, self._local = batch, {}
        ref = self._local.get(sid)
        if ref is None:
            labels, key = self._series[sid]
            ref = self._local[sid] = batch.add_new_series(labels, key)
        return ref

    # --- translation ---------------------------------------------------------------------

    def translate(self, request, out: Decoded, now_ns: int, oldest_ms: int, newest_ms: int) -> None:
        batch = out.batch
        try:
            for rm in request.resource_metrics:
                resource_raw = rm.resource
                resource = self._resource(resource_raw)
                latest = 0
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        latest = max(latest, self._metric(metric, resource_raw, resource, out,
                                                          now_ns, oldest_ms, newest_ms))
                if resource.target_info is not None and latest:
                    self._emit(batch, resource.target_info, latest, 1.0)
        finally:
            self._batch, self._local = None, {}

    def _emit(self, batch, sid: int, ts: int, value: float) -> None:
        batch.ref.append(self._ref(batch, sid))
        batch.timestamp_ms.append(ts)
        batch.value.append(value)

    def _metric(self, metric, resource_raw: bytes, resource: _ResourceLabels, out: Decoded,
                now_ns: int, oldest_ms: int, newest_ms: int) -> int:
        if metric.HasField("gauge"):
            kind, points, delta = MetricKind.GAUGE, metric.gauge.data_points, False
        elif metric.HasField("sum"):
            s = metric.sum
            kind = MetricKind.MONOTONIC_COUNTER if s.is_monotonic else MetricKind.NON_MONOTONIC_COUNTER
            points, delta = s.data_points, s.aggregation_temporality == _DELTA
        elif metric.HasField("histogram"):
            h = metric.histogram
            kind, points, delta = MetricKind.HISTOGRAM, h.data_points, h.aggregation_temporality == _DELTA
        elif metric.HasField("exponential_histogram"):
            h = metric.exponential_histogram
            kind, points, delta = "exponential", h.data_points, h.aggregation_temporality == _DELTA
        elif metric.HasField("summary"):
            kind, points, delta = MetricKind.SUMMARY, metric.summary.data_points, False
        else:
            out.note(f"metric {metric.name!r} has no data (no gauge, sum, histogram or summary)")
            return 0
        if not points:
            return 0
        name_kind = MetricKind.HISTOGRAM if kind == "exponential" else kind
        name = metric_name(metric.name, metric.unit, name_kind)
        if not name:
            out.reject(f"metric name {metric.name!r} is empty after normalisation", len(points))
            return 0
        out.batch.metadata[name] = MetricMetadata(
            name, _PROM_TYPE[kind], metric.description, unit_name(metric.unit))
        if kind in (MetricKind.GAUGE, MetricKind.MONOTONIC_COUNTER, MetricKind.NON_MONOTONIC_COUNTER):
            return self._number_points(points, name, resource_raw, resource, out, now_ns, oldest_ms, newest_ms,
                                       delta)
        emit = self._emitter(out.batch, delta)
        latest = 0
        for point in points:
            ts = point.time // 1_000_000 if point.time else now_ns // 1_000_000
            if not oldest_ms <= ts <= newest_ms:
                out.reject(f"data point timestamp {ts} ms is outside the accepted window "
                           f"{oldest_ms}..{newest_ms} ms")
                continue
            latest = max(latest, ts)
            stale = bool(point.flags & _NO_RECORDED_VALUE)
            base = self._base((resource_raw, tuple(point.attributes)), resource)
            if kind == MetricKind.HISTOGRAM:
                self._histogram(point, base, name, ts, stale, emit)
            elif kind == "exponential":
                self._exponential(point, base, name, ts, stale, emit)
            else:
                for q in point.quantile_values:
                    emit(self._sid(base, name, ("quantile", format_float(q.quantile))),
                         ts, _STALE if stale else q.value)
                emit(self._sid(base, name + "_sum", None), ts, _STALE if stale else point.sum)
                emit(self._sid(base, name + "_count", None), ts, _STALE if stale else float(point.count))
        return latest

    def _number_points(self, points, name: str, resource_raw: bytes, resource: _ResourceLabels, out: Decoded,
                       now_ns: int, oldest_ms: int, newest_ms: int, delta: bool = False) -> int:
        """Gauge and sum points, the bulk of metric traffic, read straight from their encoding.

        Encoders write fields in field-number order, so a point is its fixed-size fields
        (start time, time, value) followed by its attributes and flags. The fixed fields are
        read with `struct`; the remaining bytes key a cache of series ids. A point that looks
        any different (flags set, exemplars, a new series) takes the general path.
        """
        batch = out.batch
        add_ref, add_ts, add_value = batch.ref.append, batch.timestamp_ms.append, batch.value.append
        cache = self._numbers
        if self._batch is not batch:
            self._batch, self._local = batch, {}
        local, series = self._local, self._series
        add_series = batch.add_new_series
        totals = self._delta_totals if delta else None
        now_ms = now_ns // 1_000_000
        first = len(batch.timestamp_ms)
        for raw in points:
            pos, end, t, value = 0, len(raw), 0, None
            while pos < end:
                tag = raw[pos]
                if tag == 0x11:  # start_time_unix_nano
                    pos += 9
                elif tag == 0x19:  # time_unix_nano
                    t = _U64(raw, pos + 1)[0]
                    pos += 9
                elif tag == 0x21:  # as_double
                    value = _F64(raw, pos + 1)[0]
                    pos += 9
                elif tag == 0x31:  # as_int
                    value = float(_I64(raw, pos + 1)[0])
                    pos += 9
                else:
                    break
            sid = cache.get((resource_raw, name, raw[pos:])) if value is not None else None
            if sid is None:
                t, value, sid = self._number_point_slowly(raw, pos, resource_raw, resource, name)
            ts = t // 1_000_000 if t else now_ms
            if ts < oldest_ms or ts > newest_ms:
                out.reject(f"data point timestamp {ts} ms is outside the accepted window "
                           f"{oldest_ms}..{newest_ms} ms")
                continue
            if totals is not None and value == value:  # not NaN: accumulate deltas
                value = totals[sid] = totals.get(sid, 0.0) + value
            ref = local.get(sid)
            if ref is None:
                ref = local[sid] = add_series(*series[sid])
            add_ref(ref)
            add_ts(ts)
            add_value(value)
        stamps = batch.timestamp_ms
        return max(stamps[first:]) if len(stamps) > first else 0

    def _number_point_slowly(self, raw: bytes, pos: int, resource_raw: bytes, resource: _ResourceLabels,
                             name: str) -> tuple[int, float, int]:
        point = NumberDataPoint()
        point.ParseFromString(raw)
        attributes = tuple(point.attributes)
        sid = self._sid(self._base((resource_raw, attributes), resource), name, None)
        if point.flags & _NO_RECORDED_VALUE:
            return point.time, _STALE, sid
        value = point.as_double if point.HasField("as_double") else float(point.as_int)
        rest = raw[pos:]
        if rest == b"".join(_field7(a) for a in attributes):
            self._numbers[(resource_raw, name, rest)] = sid  # only plain points enter the cache
        return point.time, value, sid

    def _emitter(self, batch, delta: bool):
        if not delta:
            return lambda sid, ts, value: self._emit(batch, sid, ts, value)
        totals = self._delta_totals

        def accumulate(sid: int, ts: int, value: float) -> None:
            if not math.isnan(value):
                value = totals[sid] = totals.get(sid, 0.0) + value
            self._emit(batch, sid, ts, value)

        return accumulate

    def _histogram(self, point, base, name, ts, stale, emit) -> None:
        sid = self._sid
        bucket = name + "_bucket"
        counts = point.bucket_counts
        cumulative = 0
        for i, bound in enumerate(point.explicit_bounds):
            cumulative += counts[i] if i < len(counts) else 0
            emit(sid(base, bucket, ("le", format_float(bound))), ts, _STALE if stale else float(cumulative))
        emit(sid(base, bucket, ("le", "+Inf")), ts, _STALE if stale else float(point.count))
        if point.HasField("sum"):
            emit(sid(base, name + "_sum", None), ts, _STALE if stale else point.sum)
        emit(sid(base, name + "_count", None), ts, _STALE if stale else float(point.count))

    def _exponential(self, point, base, name, ts, stale, emit) -> None:
        sid = self._sid
        bucket = name + "_bucket"
        factor = 2.0 ** (2.0 ** -point.scale)
        cumulative = 0
        bounds: list[tuple[float, int]] = []
        negative = point.negative
        # negative buckets, most negative first: index i covers [-factor^(i+1), -factor^i)
        for k in range(len(negative.bucket_counts) - 1, -1, -1):
            bounds.append((-(factor ** (negative.offset + k)), negative.bucket_counts[k]))
        bounds.append((point.zero_threshold, point.zero_count))
        positive = point.positive
        for k, count in enumerate(positive.bucket_counts):
            bounds.append((factor ** (positive.offset + k + 1), count))
        for upper, count in bounds:
            cumulative += count
            if math.isinf(upper):
                continue
            emit(sid(base, bucket, ("le", format_float(upper))), ts, _STALE if stale else float(cumulative))
        emit(sid(base, bucket, ("le", "+Inf")), ts, _STALE if stale else float(point.count))
        if point.HasField("sum"):
            emit(sid(base, name + "_sum", None), ts, _STALE if stale else point.sum)
        emit(sid(base, name + "_count", None), ts, _STALE if stale else float(point.count))


_PROM_TYPE = {
    MetricKind.GAUGE: MetricType.GAUGE,
    MetricKind.MONOTONIC_COUNTER: MetricType.COUNTER,
    MetricKind.NON_MONOTONIC_COUNTER: MetricType.GAUGE,
    MetricKind.HISTOGRAM: MetricType.HISTOGRAM,
    "exponential": MetricType.HISTOGRAM,
    MetricKind.SUMMARY: MetricType.SUMMARY,
}
