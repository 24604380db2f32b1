"""Bad input gets the status the OTLP specification names, with a message; nothing else breaks."""

from __future__ import annotations

import gzip
import math
import os
import sqlite3
import threading
import time

import grpc
import httpx
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from grpc_status import rpc_status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tests.conftest import HubProcess, wait_until
from tests.otlp_factory import gauge_request, log_request, trace_request

pytestmark = pytest.mark.e2e
PB = {"content-type": "application/x-protobuf"}
JSON = {"content-type": "application/json"}
LIMIT = 4 * 2**20
CONFIG = f"limits:\n  max_request_bytes: {LIMIT}\n"


def post(hub: HubProcess, signal: str, body: bytes, headers: dict) -> httpx.Response:
    return httpx.post(f"{hub.otlp_http}/v1/{signal}", content=body, headers=headers, timeout=30)


def status_of(resp: httpx.Response) -> Status:
    if resp.headers["content-type"].startswith("application/json"):
        doc = resp.json()
        return Status(code=doc.get("code", 0), message=doc["message"])
    status = Status()
    status.ParseFromString(resp.content)
    return status


def span_count(hub: HubProcess, trace_id: bytes) -> int:
    resp = hub.get(f"/api/pantau/traces/{trace_id.hex()}")
    return len(resp.json()["spans"]) if resp.status_code == 200 else 0


def test_bad_input_gets_precise_errors_and_loses_nothing(hub_factory) -> None:
    hub = hub_factory(CONFIG).start()
    before = os.urandom(16)
    assert post(hub, "traces", trace_request(20, trace_id=before).SerializeToString(), PB).status_code == 200

    # malformed protobuf -> 400 with a google.rpc.Status in protobuf
    resp = post(hub, "traces", b"\x0a\xff\xff\xff\xff\x0f garbage", PB)
    assert resp.status_code == 400
    assert "malformed protobuf" in status_of(resp).message

    # malformed JSON -> 400 with a JSON Status
    resp = post(hub, "logs", b'{"resourceLogs": [', JSON)
    assert resp.status_code == 400 and resp.headers["content-type"].startswith("application/json")
    assert "malformed JSON" in status_of(resp).message
    resp = post(hub, "traces", b'{"resourceSpans": "not a list"}', JSON)
    assert resp.status_code == 400 and "malformed OTLP/JSON" in status_of(resp).message

    # wrong content type -> 415
    resp = post(hub, "metrics", b"cpu 1", {"content-type": "text/plain"})
    assert resp.status_code == 415 and "unsupported content type" in status_of(resp).message

    # truncated gzip -> 400
    whole = gzip.compress(trace_request(5).SerializeToString())
    resp = post(hub, "traces", whole[: len(whole) // 2], {**PB, "content-encoding": "gzip"})
    assert resp.status_code == 400 and "gzip" in status_of(resp).message
    # a valid gzip body works
    zipped_id = os.urandom(16)
    body = gzip.compress(trace_request(3, trace_id=zipped_id).SerializeToString())
    assert post(hub, "traces", body, {**PB, "content-encoding": "gzip"}).status_code == 200

    # oversize body -> 413, both as sent and after decompression (a gzip bomb)
    resp = post(hub, "logs", b"\x00" * (LIMIT + 1), PB)
    assert resp.status_code == 413 and "limit" in status_of(resp).message
    bomb = gzip.compress(b"\x00" * (LIMIT * 4))
    assert len(bomb) < LIMIT
    resp = post(hub, "logs", bomb, {**PB, "content-encoding": "gzip"})
    assert resp.status_code == 413

    # invalid trace and span ids -> 200 with partial_success naming the rejections
    req = trace_request(4)
    req.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x01" * 8
    req.resource_spans[0].scope_spans[0].spans[2].trace_id = bytes(16)
    req.resource_spans[0].scope_spans[0].spans[3].span_id = b"\x02" * 3
    resp = post(hub, "traces", req.SerializeToString(), PB)
    assert resp.status_code == 200
    out = ExportTraceServiceResponse()
    out.ParseFromString(resp.content)
    assert out.partial_success.rejected_spans == 3
    assert "invalid trace_id" in out.partial_success.error_message
    assert span_count(hub, req.resource_spans[0].scope_spans[0].spans[0].trace_id) == 1
    # the same through OTLP/JSON with a non-hex id
    now = time.time_ns()
    doc = ('{"resourceSpans":[{"resource":{},"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"0102030405060708",'
           f'"name":"x","startTimeUnixNano":"{now}","endTimeUnixNano":"{now}"}}]}}]}}]}}')
    resp = post(hub, "traces", doc.encode(), JSON)
    assert resp.status_code == 200 and resp.json()["partialSuccess"]["rejectedSpans"] in ("1", 1)

    # a log record with a bad trace id is rejected alone
    logs = log_request(3, body="bad-id log {i}")
    logs.resource_logs[0].scope_logs[0].log_records[1].trace_id = b"\x03" * 5
    resp = post(hub, "logs", logs.SerializeToString(), PB)
    out_logs = ExportLogsServiceResponse()
    out_logs.ParseFromString(resp.content)
    assert resp.status_code == 200 and out_logs.partial_success.rejected_log_records == 1

    # NaN and +-Inf values are stored and read back as Prometheus spells them
    now = time.time_ns()
    for name, value in (("nan_gauge", math.nan), ("pinf_gauge", math.inf), ("ninf_gauge", -math.inf)):
        assert post(hub, "metrics", gauge_request(name, [(now, value)]).SerializeToString(), PB).status_code == 200
        got = hub.get("/api/v1/query", query=name).json()["data"]["result"]
        assert got[0]["value"][1] == {"nan_gauge": "NaN", "pinf_gauge": "+Inf", "ninf_gauge": "-Inf"}[name]
    nan_trace = os.urandom(16)
    nan_req = trace_request(1, trace_id=nan_trace, attrs={"ratio": math.nan, "big": math.inf})
    assert post(hub, "traces", nan_req.SerializeToString(), PB).status_code == 200
    assert hub.get(f"/api/traces/{nan_trace.hex()}").status_code == 200
    assert hub.get(f"/api/pantau/traces/{nan_trace.hex()}").json()["spans"][0]["attributes"] == {
        "ratio": "NaN", "big": "+Inf"}

    # a 10 MB attribute: accepted, truncated to the configured limit, and reported
    big_trace = os.urandom(16)
    big = trace_request(1, trace_id=big_trace, attrs={"payload": "x" * 10_000_000, "small": "kept"})
    body = gzip.compress(big.SerializeToString())
    resp = post(hub, "traces", body, {**PB, "content-encoding": "gzip"})
    assert resp.status_code == 413  # 10 MB decompressed is over this hub's 4 MiB request limit
    roomy = hub_factory("limits:\n  max_request_bytes: 16MiB\n").start()
    resp = post(roomy, "traces", big.SerializeToString(), PB)
    assert resp.status_code == 200
    out = ExportTraceServiceResponse()
    out.ParseFromString(resp.content)
    assert out.partial_success.rejected_spans == 0
    assert "truncated" in out.partial_success.error_message
    attrs = roomy.get(f"/api/pantau/traces/{big_trace.hex()}").json()["spans"][0]["attributes"]
    assert attrs["small"] == "kept" and len(attrs["payload"]) == 64 * 1024

    # gRPC: malformed message -> INVALID_ARGUMENT; over the size limit -> RESOURCE_EXHAUSTED
    with grpc.insecure_channel(hub.otlp_grpc) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(b"\x0a\xff\xff\xff\xff\x0f garbage", timeout=10)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed protobuf" in err.value.details()
        with pytest.raises(grpc.RpcError) as err:
            export(b"\x00" * (LIMIT + 10), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED

    # wrong method -> 405
    assert httpx.get(f"{hub.otlp_http}/v1/traces").status_code == 405

    # still serving; data from before and after is intact
    after = os.urandom(16)
    assert post(hub, "traces", trace_request(20, trace_id=after).SerializeToString(), PB).status_code == 200
    assert span_count(hub, before) == 20 and span_count(hub, after) == 20 and span_count(hub, zipped_id) == 3
    assert hub.get("/readyz").status_code == 200
    assert wait_until(lambda: len(hub.get("/api/pantau/logs", q="bad-id").json()["data"]) == 2)


def test_full_write_queue_answers_retry_later(hub_factory) -> None:
    """With storage stalled (another process holds the write lock), the queue fills: OTLP/HTTP
    answers 503 with Retry-After and OTLP/gRPC RESOURCE_EXHAUSTED with RetryInfo; once storage
    moves again, everything accepted is stored."""
    hub = hub_factory("limits:\n  write_queue_items: 1000\n").start()
    first = os.urandom(16)
    assert post(hub, "traces", trace_request(1, trace_id=first).SerializeToString(), PB).status_code == 200
    [partition] = list((hub.data_dir / "spans").glob("*Z.db"))
    blocker = sqlite3.connect(partition, timeout=1)
    blocker.execute("BEGIN IMMEDIATE")  # takes the write lock; pantau's writer now waits
    held = os.urandom(16)
    results: dict[str, int] = {}

    def send_held() -> None:
        body = trace_request(900, trace_id=held).SerializeToString()
        results["held"] = post(hub, "traces", body, PB).status_code

    sender = threading.Thread(target=send_held)
    sender.start()
    time.sleep(0.5)
    resp = post(hub, "traces", trace_request(500).SerializeToString(), PB)
    assert resp.status_code == 503
    assert int(resp.headers["retry-after"]) >= 1
    assert "queue full" in status_of(resp).message
    with grpc.insecure_channel(hub.otlp_grpc) as channel:
        export = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")
        with pytest.raises(grpc.RpcError) as err:
            export(trace_request(500).SerializeToString(), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        status = rpc_status.from_call(err.value)
        info = RetryInfo()
        assert status.details[0].Unpack(info) and info.retry_delay.seconds >= 1
    metrics = hub.get("/metrics").text
    assert 'pantau_ingest_requests_total{outcome="overloaded",protocol="http",signal="traces"} 1.0' in metrics
    blocker.rollback()
    blocker.close()
    sender.join(30)
    assert results["held"] == 200
    assert span_count(hub, held) == 900 and span_count(hub, first) == 1
