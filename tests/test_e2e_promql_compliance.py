"""PromQL compliance: a real Prometheus (Debian's 2.42) and pantau hold the same data and answer
the same queries, instant and range, through their HTTP APIs; results must be the same (labels,
timestamps, values within a relative 1e-6, error types). Prints the pass percentage."""

from __future__ import annotations

import pytest

from tests.prometheus_harness import prom_and_pantau  # noqa: F401  (the fixture)

pytestmark = pytest.mark.e2e

Q = [
    # selectors, matchers, offset, @
    "http_requests_total",
    'http_requests_total{job="api"}',
    'http_requests_total{status!="200"}',
    'http_requests_total{method=~"GET|POST", status=~"2.."}',
    'http_requests_total{instance!~"api-1.*"}',
    '{__name__=~"memory_.*"}',
    '{__name__="queue_depth", job="worker"}',
    "memory_usage_bytes offset 10m",
    "memory_usage_bytes offset -5m",
    "jobs_in_flight",
    "deploy_info",
    "queue_depth",
    "temperature_celsius",
    "http_requests_total @ end()",
    "memory_usage_bytes @ start()",
    # rate family
    "rate(http_requests_total[5m])",
    "rate(http_requests_total[1m])",
    "rate(http_requests_total[30m])",
    "rate(process_cpu_seconds_total[5m])",
    "irate(http_requests_total[5m])",
    "irate(process_cpu_seconds_total[2m])",
    "increase(http_requests_total[10m])",
    "increase(process_cpu_seconds_total[1h])",
    "delta(memory_usage_bytes[10m])",
    "delta(temperature_celsius[15m])",
    "idelta(memory_usage_bytes[5m])",
    "idelta(queue_depth[5m])",
    "deriv(memory_usage_bytes[10m])",
    "deriv(temperature_celsius[30m])",
    "predict_linear(memory_usage_bytes[15m], 3600)",
    "predict_linear(temperature_celsius[10m], 600)",
    "resets(http_requests_total[1h])",
    "resets(process_cpu_seconds_total[3h])",
    "changes(memory_usage_bytes[10m])",
    "changes(deploy_info[1h])",
    "changes(queue_depth[10m])",
    "rate(http_requests_total[5m] offset 10m)",
    "rate(http_requests_total[5m] @ end())",
    # *_over_time
    "sum_over_time(queue_depth[5m])",
    "sum_over_time(temperature_celsius[10m])",
    "avg_over_time(memory_usage_bytes[5m])",
    "avg_over_time(temperature_celsius[1h])",
    "avg_over_time(queue_depth[10m])",
    "min_over_time(memory_usage_bytes[10m])",
    "min_over_time(queue_depth[10m])",
    "min_over_time(temperature_celsius[30m])",
    "max_over_time(memory_usage_bytes[10m])",
    "max_over_time(queue_depth[10m])",
    "count_over_time(memory_usage_bytes[5m])",
    "count_over_time(jobs_in_flight[10m])",
    "quantile_over_time(0.5, memory_usage_bytes[10m])",
    "quantile_over_time(0.9, temperature_celsius[30m])",
    "quantile_over_time(0, queue_depth[10m])",
    "stddev_over_time(memory_usage_bytes[10m])",
    "stddev_over_time(temperature_celsius[30m])",
    "stdvar_over_time(memory_usage_bytes[10m])",
    "last_over_time(memory_usage_bytes[10m])",
    "last_over_time(jobs_in_flight[15m])",
    "present_over_time(jobs_in_flight[10m])",
    "present_over_time(memory_usage_bytes[1m])",
    "absent_over_time(jobs_in_flight[5m])",
    "holt_winters(memory_usage_bytes[10m], 0.5, 0.5)",
    "holt_winters(temperature_celsius[30m], 0.1, 0.9)",
    "holt_winters(memory_usage_bytes[10m], 1.5, 0.5)",
    'absent_over_time(nonexistent{job="x"}[5m])',
    # subqueries
    "max_over_time(rate(http_requests_total[5m])[30m:1m])",
    "avg_over_time(memory_usage_bytes[20m:2m])",
    "min_over_time(deriv(memory_usage_bytes[10m])[30m:5m])",
    "rate(http_requests_total[10m:30s])",
    "sum_over_time(sum(queue_depth)[15m:1m])",
    # aggregations
    "sum(http_requests_total)",
    "sum by (job) (rate(http_requests_total[5m]))",
    "sum by (job, status) (rate(http_requests_total[5m]))",
    "sum without (instance) (rate(http_requests_total[5m]))",
    "sum without (instance, method) (rate(http_requests_total[5m]))",
    "avg by (job) (memory_usage_bytes)",
    "avg(temperature_celsius)",
    "min by (job) (memory_usage_bytes)",
    "max(temperature_celsius)",
    "max by (sensor) (temperature_celsius)",
    "count(http_requests_total)",
    "count by (job) (memory_usage_bytes)",
    "count without (method, status) (http_requests_total)",
    "stddev(memory_usage_bytes)",
    "stddev by (job) (memory_usage_bytes)",
    "stdvar(temperature_celsius)",
    "group(http_requests_total)",
    "group by (job, instance) (http_requests_total)",
    "topk(3, memory_usage_bytes)",
    "topk(1, rate(http_requests_total[5m])) by (job)",
    "bottomk(2, memory_usage_bytes)",
    "bottomk(1, temperature_celsius) by (sensor)",
    "quantile(0.5, memory_usage_bytes)",
    "quantile by (job) (0.9, rate(http_requests_total[5m]))",
    "quantile(0, temperature_celsius)",
    'count_values("value", deploy_info)',
    'count_values by (job) ("count", jobs_in_flight)',
    "sum(queue_depth)",
    "min(queue_depth)",
    "max(queue_depth)",
    "sum by (le) (rate(http_request_duration_seconds_bucket[5m]))",
    # histograms
    "histogram_quantile(0.5, rate(http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket[10m])))",
    "histogram_quantile(0.75, sum by (le, instance) (rate(http_request_duration_seconds_bucket[5m])))",
    "histogram_quantile(0, rate(http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(1, rate(http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(1.5, rate(http_request_duration_seconds_bucket[5m]))",
    "histogram_quantile(0.5, http_request_duration_seconds_bucket)",
    "rate(http_request_duration_seconds_sum[5m]) / rate(http_request_duration_seconds_count[5m])",
    # arithmetic and comparisons with scalars
    "memory_usage_bytes / 1024 / 1024",
    "2 * memory_usage_bytes",
    "memory_usage_bytes - 1e9",
    "temperature_celsius ^ 2",
    "memory_usage_bytes % 1000",
    "1 / temperature_celsius",
    "-temperature_celsius",
    "atan2(temperature_celsius, 10)",
    "memory_usage_bytes > 1.5e9",
    "memory_usage_bytes < bool 1.5e9",
    "1.5e9 < memory_usage_bytes",
    "temperature_celsius >= 0",
    "temperature_celsius != bool 0",
    "queue_depth == queue_depth",
    "queue_depth == bool queue_depth",
    # vector matching
    "rate(http_requests_total[5m]) / ignoring(method, status) group_left sum by (job, instance) "
    "(rate(http_requests_total[5m]))",
    "sum by (job, instance) (rate(http_requests_total[5m])) / on(job, instance) group_right "
    "rate(http_requests_total[5m])",
    'rate(http_requests_total{status="500"}[5m]) / ignoring(status) rate(http_requests_total{status="200"}[5m])',
    "memory_usage_bytes * on(job, instance) group_left(version) deploy_info",
    "memory_usage_bytes + on(instance) group_left sum by (instance) (queue_depth)",
    "sum by (job) (rate(http_requests_total[5m])) > on(job) sum by (job) (rate(process_cpu_seconds_total[5m]))",
    "memory_usage_bytes - memory_usage_bytes offset 10m",
    "memory_usage_bytes / on() group_left() sum(memory_usage_bytes)",
    "http_requests_total + http_requests_total",
    "http_requests_total / on(job) memory_usage_bytes",
    # set operators
    "memory_usage_bytes and on(instance) jobs_in_flight",
    "memory_usage_bytes or temperature_celsius",
    "memory_usage_bytes unless on(job) memory_usage_bytes{job=\"api\"}",
    "jobs_in_flight or memory_usage_bytes",
    'http_requests_total and http_requests_total{status="200"}',
    'http_requests_total unless ignoring(status) http_requests_total{status="500"}',
    # functions
    "abs(temperature_celsius)",
    "ceil(temperature_celsius)",
    "floor(temperature_celsius)",
    "round(temperature_celsius)",
    "round(memory_usage_bytes, 1000)",
    "round(temperature_celsius, 0.5)",
    "clamp(temperature_celsius, -5, 5)",
    "clamp(temperature_celsius, 5, -5)",
    "clamp_min(temperature_celsius, 0)",
    "clamp_max(memory_usage_bytes, 1.2e9)",
    "sqrt(memory_usage_bytes)",
    "exp(temperature_celsius / 10)",
    "ln(memory_usage_bytes)",
    "log2(memory_usage_bytes)",
    "log10(memory_usage_bytes)",
    "sgn(temperature_celsius)",
    "timestamp(memory_usage_bytes)",
    "timestamp(rate(http_requests_total[5m]))",
    "time()",
    "time() - timestamp(jobs_in_flight)",
    "vector(1)",
    "vector(time())",
    "scalar(sum(memory_usage_bytes))",
    "scalar(memory_usage_bytes)",
    "sort(memory_usage_bytes)",
    "sort_desc(temperature_celsius)",
    'label_replace(memory_usage_bytes, "host", "$1", "instance", "(.*)-.*")',
    'label_replace(memory_usage_bytes, "instance", "", "instance", ".*")',
    'label_replace(temperature_celsius, "s", "${1}x", "sensor", "(.*)")',
    'label_join(memory_usage_bytes, "id", "/", "job", "instance")',
    'absent(nonexistent{job="x"})',
    "absent(memory_usage_bytes)",
    "absent(jobs_in_flight)",
    "day_of_week()",
    "day_of_month()",
    "days_in_month()",
    "hour()",
    "minute()",
    "month()",
    "year()",
    "hour(timestamp(memory_usage_bytes))",
    "sin(temperature_celsius)",
    "deg(atan(temperature_celsius))",
    # scalars and literals
    "1 + 2 * 3",
    "2 ^ 3 ^ 2",
    "-5 % 3",
    "(1 > bool 0) + 1",
    "pi()",
    '"a string"',
    # errors must match too
    "http_requests_total + on(job) memory_usage_bytes",
    "sum(rate(http_requests_total[5m])) by (job) + memory_usage_bytes",
]



def test_promql_compliance_with_prometheus(prom_and_pantau) -> None:  # noqa: F811
    both = prom_and_pantau
    start, end = both.dataset.start_ms / 1000, both.dataset.end_ms / 1000
    instants = [start + 3600 + 3.3, end - 600 + 1.1, end + 120.7, start + 37.2]
    ranges = [(start + 300, end + 600, 60), (start + 1200, start + 6000, 37)]
    failures: list[str] = []
    total = 0
    for expr in Q:
        for t in instants:
            total += 1
            diff = both.difference(expr, t, rel_tol=1e-6)
            if diff:
                failures.append(f"{expr} @ {t}: {diff}")
        if expr.rstrip().endswith("]") or expr.startswith('"'):
            continue  # range vectors and strings are not range-query results
        for s, e, step in ranges:
            total += 1
            diff = both.difference(expr, start=s, end=e, step=step, rel_tol=1e-6)
            if diff:
                failures.append(f"{expr} [{s}..{e} step {step}]: {diff}")
    passed = total - len(failures)
    print(f"\nPromQL compliance: {len(Q)} queries, {total} evaluations, {passed}/{total} agree "
          f"({100 * passed / total:.1f}%)")
    for f in failures:
        print("  DIFF", f[:300])
    assert not failures, f"{len(failures)} of {total} evaluations differ from Prometheus"


BAD_QUERIES = [
    ("/api/v1/query", {"query": "sum(rate(x[5m])"}),  # syntax error
    ("/api/v1/query", {"query": "rate(x)"}),  # type error
    ("/api/v1/query", {"query": ""}),
    ("/api/v1/query", {"query": "up", "time": "yesterday"}),
    ("/api/v1/query_range", {"query": "up", "start": "100", "end": "200", "step": "0"}),
    ("/api/v1/query_range", {"query": "up", "start": "200", "end": "100", "step": "15"}),
    ("/api/v1/query_range", {"query": "up", "start": "0", "end": "11001", "step": "1"}),
    ("/api/v1/query_range", {"query": "up", "start": "100", "end": "200"}),
    ("/api/v1/query_range", {"query": "up", "start": "100", "end": "200", "step": "-5s"}),
    ("/api/v1/series", {}),
    ("/api/v1/series", {"match[]": "{job=~\"a(\"}"}),
    ("/api/v1/query", {"query": '{__name__=~".*"}'}),
]


def test_bad_queries_get_prometheus_status_and_error_type(prom_and_pantau) -> None:  # noqa: F811
    import httpx

    for path, params in BAD_QUERIES:
        prom = httpx.get(f"{prom_and_pantau.prometheus_url}{path}", params=params, timeout=30)
        ours = httpx.get(f"{prom_and_pantau.pantau.api}{path}", params=params, timeout=30)
        assert ours.status_code == prom.status_code, (path, params, prom.text, ours.text)
        assert ours.json()["status"] == "error" and ours.json()["errorType"] == prom.json()["errorType"], (
            path, params, prom.text, ours.text)


def test_queries_as_post_forms(prom_and_pantau) -> None:  # noqa: F811
    """Grafana's Prometheus data source POSTs its queries as form bodies."""
    import httpx

    both = prom_and_pantau
    form = {"query": "sum by (job) (rate(http_requests_total[5m]))", "start": both.dataset.start_ms / 1000 + 600,
            "end": both.dataset.end_ms / 1000, "step": 120}
    prom = httpx.post(f"{both.prometheus_url}/api/v1/query_range", data=form, timeout=30).json()
    ours = httpx.post(f"{both.pantau.api}/api/v1/query_range", data=form, timeout=30).json()
    from tests.prometheus_harness import difference

    assert ours["status"] == "success" and difference(prom, ours, 1e-6) is None
