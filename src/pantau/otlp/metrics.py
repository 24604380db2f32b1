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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as PbResource

from pantau.model import METRIC_NAME, Labels, MetricMetadata, MetricType, stale_marker
from pantau.otlp.prometheus import MetricKind, format_float, label_name, metric_name, unit_name
from pantau.otlp.values import as_text, from_any

if TYPE_CHECKING:
    from pantau.otlp.decode import Decoded

_NO_RECORDED_VALUE = 1
_DELTA = 1
_IDENTIFYING = {"service.name", "service.namespace", "service.instance.id"}
_CACHE_LIMIT = 100_000
_STALE = stale_marker()


@dataclass(slots=True)
class _ResourceLabels:
    base: tuple[tuple[str, str], ...]  # job / instance
    target_info: Labels | None


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
    def __init__(self) -> None:
        self._resources: dict[bytes, _ResourceLabels] = {}
        self._series: dict[tuple, tuple[int, tuple[tuple[str, str], ...]]] = {}
        self._final: dict[tuple, Labels] = {}
        self._number_labels: dict[tuple, int] = {}
        self._gids: dict[Labels, int] = {}
        self._interned: dict[int, Labels] = {}
        self._next_gid = 0
        self._refs_batch: object = None
        self._refs: dict[int, int] = {}
        self._delta_totals: dict[Labels, float] = {}

    # --- label sets ----------------------------------------------------------------------

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
            target_info = tuple(sorted(pairs.items()))
        cached = _ResourceLabels(tuple(sorted(base.items())), target_info)
        if len(self._resources) >= 4096:
            self._resources.clear()
        self._resources[raw] = cached
        return cached

    def _base(self, key: tuple[bytes, tuple[bytes, ...]], resource: _ResourceLabels) -> int:
        """A small id for a data point's label set (resource identity plus attributes), keyed
        by the raw attribute encodings so a known series costs one dict lookup."""
        hit = self._series.get(key)
        if hit is not None:
            return hit[0]
        pairs: list[tuple[str, Any]] = []
        for raw in key[1]:
            kv = KeyValue()
            kv.ParseFromString(raw)
            pairs.append((kv.key, from_any(kv.value)))
        labels = _sanitized(pairs)
        labels.update(dict(resource.base))  # resource identity wins over a same-named attribute
        if len(self._series) >= _CACHE_LIMIT:
            self._series.clear()
            self._final.clear()
            self._number_labels.clear()
        ident = len(self._series)
        self._series[key] = (ident, tuple(sorted(labels.items())))
        return ident

    def _labels(self, base_key: tuple, base_id: int, name: str, extra: tuple[str, str] | None) -> Labels:
        key = (base_id, name, extra)
        labels = self._final.get(key)
        if labels is None:
            pairs = dict(self._series[base_key][1])
            pairs[METRIC_NAME] = name
            if extra is not None:
                pairs[extra[0]] = extra[1]
            labels = self._final[key] = tuple(sorted(pairs.items()))
        return labels

    # --- translation ---------------------------------------------------------------------

    def translate(self, request, out: Decoded, now_ns: int, oldest_ms: int, newest_ms: int) -> None:
        batch = out.batch
        for rm in request.resource_metrics:
            resource_raw = rm.resource
            resource = self._resource(resource_raw)
            latest = 0
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    latest = max(latest, self._metric(metric, resource_raw, resource, out,
                                                      now_ns, oldest_ms, newest_ms))
            if resource.target_info is not None and latest:
                batch.append(resource.target_info, latest, 1.0)
        self._refs_batch, self._refs = None, {}

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
        if kind in (MetricKind.GAUGE, MetricKind.MONOTONIC_COUNTER, MetricKind.NON_MONOTONIC_COUNTER) \
                and not delta:
            return self._numbers(points, name, resource_raw, resource, out, now_ns, oldest_ms, newest_ms)
        emit = self._emitter(out, delta)
        latest = 0
        for point in points:
            ts = point.time // 1_000_000 if point.time else now_ns // 1_000_000
            if not oldest_ms <= ts <= newest_ms:
                out.reject(f"data point timestamp {ts} ms is outside the accepted window "
                           f"{oldest_ms}..{newest_ms} ms")
                continue
            latest = max(latest, ts)
            stale = bool(point.flags & _NO_RECORDED_VALUE)
            base_key = (resource_raw, tuple(point.attributes))
            base_id = self._base(base_key, resource)
            labels = self._labels
            if kind in (MetricKind.GAUGE, MetricKind.MONOTONIC_COUNTER,
                        MetricKind.NON_MONOTONIC_COUNTER):
                value = point.as_double if point.HasField("as_double") else float(point.as_int)
                emit(labels(base_key, base_id, name, None), ts, _STALE if stale else value)
            elif kind == MetricKind.HISTOGRAM:
                self._histogram(point, base_key, base_id, name, ts, stale, emit)
            elif kind == "exponential":
                self._exponential(point, base_key, base_id, name, ts, stale, emit)
            else:
                for q in point.quantile_values:
                    emit(labels(base_key, base_id, name, ("quantile", format_float(q.quantile))),
                         ts, _STALE if stale else q.value)
                emit(labels(base_key, base_id, name + "_sum", None), ts, _STALE if stale else point.sum)
                emit(labels(base_key, base_id, name + "_count", None), ts,
                     _STALE if stale else float(point.count))
        return latest

    def _numbers(self, points, name: str, resource_raw: bytes, resource: _ResourceLabels, out: Decoded,
                 now_ns: int, oldest_ms: int, newest_ms: int) -> int:
        """Gauge and cumulative sum points: the bulk of metric traffic, so written as one tight
        loop: one dict lookup resolves a point's whole label set from its raw attributes."""
        batch = out.batch
        add_ref, add_ts, add_value = batch.ref.append, batch.timestamp_ms.append, batch.value.append
        cache = self._number_labels
        local = self._local_refs(batch)
        now_ms = now_ns // 1_000_000
        first = len(batch.timestamp_ms)
        for point in points:
            t = point.time
            ts = t // 1_000_000 if t else now_ms
            if ts < oldest_ms or ts > newest_ms:
                out.reject(f"data point timestamp {ts} ms is outside the accepted window "
                           f"{oldest_ms}..{newest_ms} ms")
                continue
            key = (resource_raw, name, tuple(point.attributes))
            gid = cache.get(key)
            if gid is None:
                base_key = key[:1] + key[2:]
                labels = self._labels(base_key, self._base(base_key, resource), name, None)
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                gid = cache[key] = self._intern(labels)
            ref = local.get(gid)
            if ref is None:
                ref = local[gid] = batch.series_ref(self._interned[gid])
            if point.flags & _NO_RECORDED_VALUE:
                value = _STALE
            else:
                value = point.as_double
                if not value:
                    as_int = point.as_int
                    if as_int:
                        value = float(as_int)
            add_ref(ref)
            add_ts(ts)
            add_value(value)
        stamps = batch.timestamp_ms
        return max(stamps[first:]) if len(stamps) > first else 0

    def _intern(self, labels: Labels) -> int:
        """A never-reused small id for a label set (cheap to hash, unlike the label tuple)."""
        gid = self._gids.get(labels)
        if gid is None:
            if len(self._interned) >= _CACHE_LIMIT:
                self._gids.clear()
                self._interned.clear()
                self._number_labels.clear()
            gid = self._gids[labels] = self._next_gid
            self._interned[gid] = labels
            self._next_gid += 1
        return gid

    def _local_refs(self, batch) -> dict[int, int]:
        """gid -> position in this batch's `series`, kept for the life of one batch."""
        if self._refs_batch is not batch:
            self._refs_batch = batch
            self._refs = {}
        return self._refs

    def _emitter(self, out: Decoded, delta: bool):
        append = out.batch.append
        if not delta:
            return append
        totals = self._delta_totals

        def accumulate(labels: Labels, ts: int, value: float) -> None:
            if not math.isnan(value):
                value = totals[labels] = totals.get(labels, 0.0) + value
            append(labels, ts, value)

        return accumulate

    def _histogram(self, point, base_key, base_id, name, ts, stale, emit) -> None:
        labels = self._labels
        bucket = name + "_bucket"
        counts = point.bucket_counts
        cumulative = 0
        for i, bound in enumerate(point.explicit_bounds):
            cumulative += counts[i] if i < len(counts) else 0
            emit(labels(base_key, base_id, bucket, ("le", format_float(bound))), ts,
                 _STALE if stale else float(cumulative))
        emit(labels(base_key, base_id, bucket, ("le", "+Inf")), ts, _STALE if stale else float(point.count))
        if point.HasField("sum"):
            emit(labels(base_key, base_id, name + "_sum", None), ts, _STALE if stale else point.sum)
        emit(labels(base_key, base_id, name + "_count", None), ts, _STALE if stale else float(point.count))

    def _exponential(self, point, base_key, base_id, name, ts, stale, emit) -> None:
        labels = self._labels
        bucket = name + "_bucket"
        base = 2.0 ** (2.0 ** -point.scale)
        cumulative = 0
        bounds: list[tuple[float, int]] = []
        negative = point.negative
        # negative buckets, most negative first: index i covers [-base^(i+1), -base^i)
        for k in range(len(negative.bucket_counts) - 1, -1, -1):
            bounds.append((-(base ** (negative.offset + k)), negative.bucket_counts[k]))
        bounds.append((point.zero_threshold, point.zero_count))
        positive = point.positive
        for k, count in enumerate(positive.bucket_counts):
            bounds.append((base ** (positive.offset + k + 1), count))
        for upper, count in bounds:
            cumulative += count
            if math.isinf(upper):
                continue
            emit(labels(base_key, base_id, bucket, ("le", format_float(upper))), ts,
                 _STALE if stale else float(cumulative))
        emit(labels(base_key, base_id, bucket, ("le", "+Inf")), ts, _STALE if stale else float(point.count))
        if point.HasField("sum"):
            emit(labels(base_key, base_id, name + "_sum", None), ts, _STALE if stale else point.sum)
        emit(labels(base_key, base_id, name + "_count", None), ts, _STALE if stale else float(point.count))


_PROM_TYPE = {
    MetricKind.GAUGE: MetricType.GAUGE,
    MetricKind.MONOTONIC_COUNTER: MetricType.COUNTER,
    MetricKind.NON_MONOTONIC_COUNTER: MetricType.GAUGE,
    MetricKind.HISTOGRAM: MetricType.HISTOGRAM,
    "exponential": MetricType.HISTOGRAM,
    MetricKind.SUMMARY: MetricType.SUMMARY,
}
