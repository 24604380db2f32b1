"""OTLP metrics -> Prometheus samples, as Prometheus's OTLP receiver maps them."""

from __future__ import annotations

import math
import struct
import time

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from pantau.model import STALE_NAN_BITS
from pantau.otlp.decode import OtlpDecoder

NOW = time.time_ns()


def kv(k, v):
    return KeyValue(key=k, value=AnyValue(string_value=v))


def request(service="signer", extra_resource=()):
    req = ExportMetricsServiceRequest()
    rm = req.resource_metrics.add()
    rm.resource.attributes.extend([kv("service.name", service), kv("service.instance.id", "i-1"),
                                   *extra_resource])
    return req, rm.scope_metrics.add()


def samples(req, decoder=None):
    out = (decoder or OtlpDecoder()).metrics(req.SerializeToString())
    b = out.batch
    got = {}
    for i in range(len(b)):
        labels = dict(b.labels_at(i))
        got.setdefault(labels.pop("__name__"), []).append((labels, b.timestamp_ms[i], b.value[i]))
    return got, out


def test_sums_gauges_and_resource_identity():
    req, sm = request(extra_resource=[kv("host.name", "h1")])
    m = sm.metrics.add(name="signing.operations", unit="{operation}")
    m.sum.is_monotonic = True
    m.sum.aggregation_temporality = 2
    dp = m.sum.data_points.add(time_unix_nano=NOW, as_int=7)
    dp.attributes.extend([kv("status", "ok"), kv("http.method", "POST")])
    g = sm.metrics.add(name="chain.integrity", unit="1")
    g.gauge.data_points.add(time_unix_nano=NOW, as_double=0.97)
    u = sm.metrics.add(name="queue.depth", unit="{item}")
    u.sum.is_monotonic = False
    u.sum.data_points.add(time_unix_nano=NOW, as_int=-3)
    got, out = samples(req)
    ts = NOW // 1_000_000
    assert got["signing_operations_total"] == [
        ({"job": "signer", "instance": "i-1", "status": "ok", "http_method": "POST"}, ts, 7.0)]
    assert got["chain_integrity_ratio"] == [({"job": "signer", "instance": "i-1"}, ts, 0.97)]
    assert got["queue_depth"] == [({"job": "signer", "instance": "i-1"}, ts, -3.0)]
    assert got["target_info"] == [({"job": "signer", "instance": "i-1", "host_name": "h1"}, ts, 1.0)]
    assert out.batch.metadata["signing_operations_total"].type == "counter"
    assert out.batch.metadata["queue_depth"].type == "gauge"


def test_repeated_exports_reuse_series_and_read_values_exactly():
    decoder = OtlpDecoder()
    for value in (1.5, 0.0, -0.0, 2.0**60, math.inf):
        req, sm = request()
        m = sm.metrics.add(name="x")
        dp = m.gauge.data_points.add(time_unix_nano=NOW, as_double=value)
        dp.attributes.extend([kv("a", "1")])
        got, _ = samples(req, decoder)
        assert got["x"][0][2] == value and math.copysign(1, got["x"][0][2]) == math.copysign(1, value)
    assert len(decoder.translator._numbers) == 1


def test_no_recorded_value_is_a_staleness_marker():
    decoder = OtlpDecoder()
    for flags in (0, 1):
        req, sm = request()
        m = sm.metrics.add(name="x")
        dp = m.gauge.data_points.add(time_unix_nano=NOW, as_double=5.0, flags=flags)
        dp.attributes.extend([kv("a", "1")])
        got, _ = samples(req, decoder)
        value = got["x"][0][2]
    assert struct.unpack("<Q", struct.pack("<d", value))[0] == STALE_NAN_BITS


def test_points_with_exemplars_or_unusual_field_order_take_the_general_path():
    req, sm = request()
    m = sm.metrics.add(name="x")
    dp = m.gauge.data_points.add(time_unix_nano=NOW, as_int=4)
    dp.attributes.extend([kv("a", "1")])
    ex = dp.exemplars.add(time_unix_nano=NOW, as_double=1.0)
    ex.trace_id = b"\x01" * 16
    got, _ = samples(req)
    assert got["x"] == [({"job": "signer", "instance": "i-1", "a": "1"}, NOW // 1_000_000, 4.0)]
    # attributes first, then value, then time: legal, just not the usual order
    raw = (b"\x3a" + bytes([len(kv("a", "2").SerializeToString())]) + kv("a", "2").SerializeToString()
           + b"\x21" + struct.pack("<d", 9.5) + b"\x19" + struct.pack("<Q", NOW))
    from pantau.otlp import shadow

    shadow_req = shadow.MetricsRequest()
    shadow_req.ParseFromString(request()[0].SerializeToString())
    sm2 = shadow_req.resource_metrics[0].scope_metrics.add()
    metric = sm2.metrics.add(name="y")
    metric.gauge.data_points.append(raw)
    out = OtlpDecoder().metrics(shadow_req.SerializeToString())
    assert [(dict(out.batch.labels_at(i))["a"], out.batch.value[i]) for i in range(len(out.batch))] == [("2", 9.5)]


def test_delta_sums_accumulate():
    decoder = OtlpDecoder()
    totals = []
    for delta in (3, 4, 5):
        req, sm = request()
        m = sm.metrics.add(name="requests")
        m.sum.is_monotonic = True
        m.sum.aggregation_temporality = 1
        m.sum.data_points.add(time_unix_nano=NOW, as_int=delta)
        got, _ = samples(req, decoder)
        totals.append(got["requests_total"][0][2])
    assert totals == [3.0, 7.0, 12.0]


def test_histograms_summaries_and_exponential_histograms():
    req, sm = request()
    h = sm.metrics.add(name="http.server.duration", unit="s")
    h.histogram.aggregation_temporality = 2
    h.histogram.data_points.add(time_unix_nano=NOW, count=6, sum=2.5, explicit_bounds=[0.1, 1],
                                bucket_counts=[1, 3, 2])
    s = sm.metrics.add(name="rpc.latency", unit="ms")
    sp = s.summary.data_points.add(time_unix_nano=NOW, count=10, sum=55.0)
    sp.quantile_values.add(quantile=0.5, value=4.0)
    sp.quantile_values.add(quantile=0.99, value=9.0)
    e = sm.metrics.add(name="payload.size", unit="By")
    e.exponential_histogram.aggregation_temporality = 2
    ep = e.exponential_histogram.data_points.add(time_unix_nano=NOW, count=5, sum=20.0, scale=0, zero_count=1)
    ep.positive.offset = 1
    ep.positive.bucket_counts.extend([2, 2])  # (2,4] and (4,8]
    got, _ = samples(req)
    buckets = {lab["le"]: v for lab, _, v in got["http_server_duration_seconds_bucket"]}
    assert buckets == {"0.1": 1.0, "1": 4.0, "+Inf": 6.0}
    assert got["http_server_duration_seconds_sum"][0][2] == 2.5
    assert got["http_server_duration_seconds_count"][0][2] == 6.0
    assert {lab["quantile"]: v for lab, _, v in got["rpc_latency_milliseconds"]} == {"0.5": 4.0, "0.99": 9.0}
    assert got["rpc_latency_milliseconds_count"][0][2] == 10.0
    exp = {lab["le"]: v for lab, _, v in got["payload_size_bytes_bucket"]}
    assert exp == {"0": 1.0, "4": 3.0, "8": 5.0, "+Inf": 5.0}


def test_label_collisions_join_values():
    req, sm = request()
    m = sm.metrics.add(name="x")
    dp = m.gauge.data_points.add(time_unix_nano=NOW, as_double=1.0)
    dp.attributes.extend([kv("a.b", "1"), kv("a_b", "2")])
    got, _ = samples(req)
    assert got["x"][0][0]["a_b"] == "1;2"


def test_old_points_are_rejected_with_a_reason():
    req, sm = request()
    m = sm.metrics.add(name="x")
    m.gauge.data_points.add(time_unix_nano=NOW - 400 * 86400 * 10**9, as_double=1.0)
    m.gauge.data_points.add(time_unix_nano=NOW, as_double=2.0)
    got, out = samples(req)
    assert out.rejected == 1 and "outside the accepted window" in out.error_message
    assert [v for _, _, v in got["x"]] == [2.0]
