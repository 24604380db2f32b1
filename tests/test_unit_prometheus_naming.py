"""OTLP -> Prometheus naming, as Prometheus's own OTLP receiver does it."""

import math

import pytest

from pantau.otlp.prometheus import MetricKind, format_float, label_name, metric_name, unit_name


@pytest.mark.parametrize(("name", "unit", "kind", "expected"), [
    ("http.server.request.duration", "s", MetricKind.HISTOGRAM, "http_server_request_duration_seconds"),
    ("signing.operations", "{operation}", MetricKind.MONOTONIC_COUNTER, "signing_operations_total"),
    ("requests_total", "1", MetricKind.MONOTONIC_COUNTER, "requests_total"),
    ("chain.integrity", "1", MetricKind.GAUGE, "chain_integrity_ratio"),
    ("system.memory.usage", "By", MetricKind.NON_MONOTONIC_COUNTER, "system_memory_usage_bytes"),
    ("net.io", "By/s", MetricKind.MONOTONIC_COUNTER, "net_io_bytes_per_second_total"),
    ("latency_seconds", "s", MetricKind.HISTOGRAM, "latency_seconds"),
    ("2xx.count", "", MetricKind.GAUGE, "_2xx_count"),
    ("foo__bar", "", MetricKind.GAUGE, "foo_bar"),
    ("queue.size", "{items}/s", MetricKind.GAUGE, "queue_size_per_second"),
])
def test_metric_names(name, unit, kind, expected):
    assert metric_name(name, unit, kind) == expected


def test_label_and_unit_names():
    assert label_name("http.request.method") == "http_request_method"
    assert label_name("1st") == "key_1st"
    assert label_name("__name__") == "__name__"
    assert label_name("a..b") == "a_b"
    assert unit_name("By/s") == "bytes_per_second"
    assert unit_name("{thing}") == ""


@pytest.mark.parametrize(("value", "text"), [
    (1.0, "1"), (0.005, "0.005"), (2.5, "2.5"), (1e6, "1e+06"), (100000.0, "100000"),
    (123456789.0, "1.23456789e+08"), (0.0001, "0.0001"), (1e-05, "1e-05"), (-3.5, "-3.5"),
    (math.inf, "+Inf"), (-math.inf, "-Inf"), (math.nan, "NaN"), (0.0, "0"),
])
def test_go_float_format(value, text):
    assert format_float(value) == text
