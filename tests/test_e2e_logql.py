"""LogQL on the Loki HTTP API, construct by construct, against a real `pantau serve`.

The expected answers are computed here from the records sent, following Loki's documented
semantics: streams keyed by label set, `direction` and `limit`, windows (t - range, t] for
range aggregations, matrix for range and vector for instant metric queries."""

from __future__ import annotations

import json
import time

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.conftest import HubProcess, wait_until

pytestmark = pytest.mark.e2e
NS = 1_000_000_000
T0 = (time.time_ns() // NS - 3600) // 60 * 60 * NS  # an hour ago, on a minute boundary


def kv(k: str, v: str) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(string_value=v))


def records() -> list[dict]:
    """600 records over 10 minutes: JSON access lines from signer, logfmt from chain."""
    out = []
    for i in range(600):
        t = T0 + i * NS
        if i % 2 == 0:
            status = 500 if i % 10 == 0 else 200
            body = json.dumps({"status": status, "path": f"/sign/{i % 3}", "took": f"{i % 7}ms",
                               "request": {"id": f"req-{i:05d}"}})
            out.append({"t": t, "service": "signer", "sev": "ERROR" if status == 500 else "INFO", "body": body})
        else:
            body = f'level=info msg="block appended" height={i} took={i % 5}ms req=req-{i:05d}'
            out.append({"t": t, "service": "chain", "sev": "INFO", "body": body})
    return out


def send(hub: HubProcess, recs: list[dict]) -> None:
    by_service: dict[str, list[dict]] = {}
    for r in recs:
        by_service.setdefault(r["service"], []).append(r)
    req = ExportLogsServiceRequest()
    for service, items in by_service.items():
        rl = req.resource_logs.add()
        rl.resource.attributes.extend([kv("service.name", service), kv("host.name", f"{service}-host")])
        sl = rl.scope_logs.add()
        for r in items:
            lr = sl.log_records.add(time_unix_nano=r["t"], observed_time_unix_nano=r["t"], severity_text=r["sev"],
                                    severity_number=17 if r["sev"] == "ERROR" else 9)
            lr.body.string_value = r["body"]
    resp = httpx.post(f"{hub.otlp_http}/v1/logs", content=req.SerializeToString(),
                      headers={"content-type": "application/x-protobuf"})
    assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module")
def loki(tmp_path_factory):
    hub = HubProcess(tmp_path_factory.mktemp("logql") / "data").start()
    send(hub, records())
    assert wait_until(lambda: "pantau_log_index_lag_blocks 0.0" in hub.get("/metrics").text, timeout=30)
    yield hub
    hub.stop()


def q(hub: HubProcess, query: str, **params) -> dict:
    resp = hub.get("/loki/api/v1/query_range", query=query, start=str(T0 - NS), end=str(T0 + 700 * NS), **params)
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def lines(data: dict) -> list[str]:
    return [v[1] for s in data["result"] for v in s["values"]]


def test_streams_direction_and_limit(loki) -> None:
    data = q(loki, '{service_name="signer"}', limit="1000")
    assert data["resultType"] == "streams"
    labels = {tuple(sorted(s["stream"].items())) for s in data["result"]}
    assert labels == {(("host_name", "signer-host"), ("service_name", "signer"), ("severity_text", sev))
                      for sev in ("ERROR", "INFO")}
    assert sum(len(s["values"]) for s in data["result"]) == 300
    newest = q(loki, '{service_name=~"signer|chain"}', limit="5")
    stamps = sorted((int(v[0]) for s in newest["result"] for v in s["values"]), reverse=True)
    assert stamps == [T0 + i * NS for i in range(599, 594, -1)]
    for s in newest["result"]:
        assert [int(v[0]) for v in s["values"]] == sorted((int(v[0]) for v in s["values"]), reverse=True)
    oldest = q(loki, '{host_name="chain-host"}', limit="3", direction="forward")
    assert [int(v[0]) for s in oldest["result"] for v in s["values"]] == [T0 + NS, T0 + 3 * NS, T0 + 5 * NS]
    errors = q(loki, '{service_name="signer", severity_text="ERROR"}', limit="1000")
    assert len(lines(errors)) == 60


def test_line_filters(loki) -> None:
    recs = records()
    expect = {
        '{service_name=~".+"} |= "req-0001"': [r for r in recs if "req-0001" in r["body"]],
        '{service_name="chain"} != "took=0ms"': [r for r in recs if r["service"] == "chain" and
                                                  "took=0ms" not in r["body"]],
        '{service_name=~".+"} |~ "height=5[0-9]\\\\b"': [r for r in recs if r["service"] == "chain" and
                                                          any(f"height=5{d} " in r["body"] for d in "0123456789")],
        '{service_name="signer"} !~ "\\"status\\": 200"': [r for r in recs if r["service"] == "signer" and
                                                           '"status": 200' not in r["body"]],
        '{service_name=~".+"} |= "req-00" |= "took=3ms"': [r for r in recs if "req-00" in r["body"] and
                                                         "took=3ms" in r["body"]],
    }
    for query, wanted in expect.items():
        assert sorted(lines(q(loki, query, limit="1000"))) == sorted(r["body"] for r in wanted), query


def test_parsers_label_filters_and_line_format(loki) -> None:
    recs = records()
    signer = [json.loads(r["body"]) for r in recs if r["service"] == "signer"]
    data = q(loki, '{service_name="signer"} | json | status >= 500', limit="1000")
    assert len(lines(data)) == sum(1 for d in signer if d["status"] >= 500)
    assert all(s["stream"]["status"] == "500" and s["stream"]["request_id"].startswith("req-") for s in data["result"])
    data = q(loki, '{service_name="signer"} | json code="status", rid="request.id" | code="200" '
                   '| line_format "{{.rid}} {{.code}}"', limit="1000")
    assert sorted(lines(data)) == sorted(f"{d['request']['id']} 200" for d in signer if d["status"] == 200)
    data = q(loki, '{service_name="chain"} | logfmt | height > 590 and took >= 2ms', limit="1000")
    assert sorted(int(s["stream"]["height"]) for s in data["result"]) == sorted(
        i for i in range(591, 600, 2) if i % 5 >= 2)
    data = q(loki, '{service_name="chain"} | pattern "level=<level> msg=\\"<msg>\\" height=<h> <_>" '
                   '| h = "7"', limit="1000")
    assert [s["stream"]["msg"] for s in data["result"]] == ["block appended"]
    data = q(loki, '{service_name="chain"} | regexp "height=(?P<height>\\\\d+) took=(?P<took>\\\\d)ms" '
                   '| took = "4" | line_format "{{.height}}"', limit="1000")
    assert sorted(int(x) for x in lines(data)) == [i for i in range(1, 600, 2) if i % 5 == 4]
    bad = q(loki, '{service_name="chain"} | json | __error__ = "JSONParserErr"', limit="1000")
    assert len(lines(bad)) == 300


def test_metric_queries(loki) -> None:
    recs = records()
    step, rng = 60, 60
    data = q(loki, 'count_over_time({service_name="signer"}[1m])', step=str(step))
    assert data["resultType"] == "matrix"
    for series in data["result"]:
        sev = series["metric"]["severity_text"]
        for t_s, value in series["values"]:
            t = int(float(t_s) * NS)
            want = sum(1 for r in recs if r["service"] == "signer" and r["sev"] == sev and t - rng * NS < r["t"] <= t)
            assert float(value) == want, (sev, t_s)
    data = q(loki, 'sum by (service_name) (rate({service_name=~".+"}[5m]))', step="300")
    got = {(s["metric"]["service_name"], float(t)): float(v) for s in data["result"] for t, v in s["values"]}
    for (service, t_s), value in got.items():
        t = int(t_s * NS)
        want = sum(1 for r in recs if r["service"] == service and t - 300 * NS < r["t"] <= t) / 300
        assert value == pytest.approx(want), (service, t_s)
    data = q(loki, 'sum(bytes_over_time({service_name="chain"}[10m]))', step="600")
    last = data["result"][0]["values"][-1]
    t = int(float(last[0]) * NS)
    assert float(last[1]) == sum(len(r["body"].encode()) for r in recs if r["service"] == "chain"
                                 and t - 600 * NS < r["t"] <= t)
    data = q(loki, 'topk(1, sum by (service_name) (count_over_time({service_name=~".+"} |= "took=1ms" [10m])))',
             step="600")
    assert {s["metric"]["service_name"] for s in data["result"]} <= {"signer", "chain"}
    data = q(loki, 'sum by (status) (count_over_time({service_name="signer"} | json [10m])) / 2', step="600")
    assert {s["metric"]["status"] for s in data["result"]} == {"200", "500"}
    at = str(T0 + 599 * NS)
    resp = loki.get("/loki/api/v1/query", query='sum(count_over_time({service_name=~".+"}[10m]))', time=at)
    body = resp.json()["data"]
    assert body["resultType"] == "vector" and float(body["result"][0]["value"][1]) == 600
    resp = loki.get("/loki/api/v1/query", query="1 + 2", time=at)
    assert resp.json()["data"]["resultType"] == "scalar" and resp.json()["data"]["result"][1] == "3"
    resp = loki.get("/loki/api/v1/query", query='absent_over_time({service_name="nope"}[1m])', time=at)
    assert resp.json()["data"]["result"][0]["metric"] == {"service_name": "nope"}


def test_labels_series_and_errors(loki) -> None:
    span = {"start": str(T0 - NS), "end": str(T0 + 700 * NS)}
    names = loki.get("/loki/api/v1/labels", **span).json()["data"]
    assert {"service_name", "host_name", "severity_text"} <= set(names)
    assert loki.get("/loki/api/v1/label/service_name/values", **span).json()["data"] == ["chain", "signer"]
    series = loki.get("/loki/api/v1/series", **{"match[]": '{service_name="signer"}'}, **span).json()["data"]
    assert {s["severity_text"] for s in series} == {"ERROR", "INFO"}
    for query, fragment in [('sum_over_time({a="b"} | unwrap x [5m])', "unwrap"),
                            ('{a="b"} | label_format x=y', "label_format"),
                            ('{a=~".*"}', "at least one"), ('count_over_time({a="b"})', "expected '['")]:
        resp = loki.get("/loki/api/v1/query_range", query=query, **span)
        assert resp.status_code == 400 and fragment in resp.text, (query, resp.text)
    resp = loki.get("/loki/api/v1/query", query='{service_name="signer"}')
    assert resp.status_code == 400 and "instant query" in resp.text


def test_live_tail(loki) -> None:
    from websockets.sync.client import connect

    url = loki.api.replace("http://", "ws://") + "/loki/api/v1/tail?query=" + httpx.QueryParams(
        {"q": '{service_name="tailer"} |= "hello"'})["q"].replace(" ", "%20") + f"&start={time.time_ns() - NS}"
    with connect(url, open_timeout=10) as ws:
        sent_at = time.time_ns()
        send(loki, [{"t": sent_at, "service": "tailer", "sev": "INFO", "body": "hello from the tail"},
                    {"t": sent_at, "service": "tailer", "sev": "INFO", "body": "not this one"}])
        message = orjson.loads(ws.recv(timeout=10))
        assert message["streams"][0]["stream"]["service_name"] == "tailer"
        assert [v[1] for v in message["streams"][0]["values"]] == ["hello from the tail"]
