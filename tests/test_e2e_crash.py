"""Crash safety: `kill -9` during sustained ingest loses nothing that was acknowledged."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.conftest import HubProcess, wait_until
from tests.otlp_factory import gauge_request, log_request, trace_request

pytestmark = pytest.mark.e2e
PB = {"content-type": "application/x-protobuf"}
SPANS, LOGS, POINTS = 100, 100, 10


def batch_trace_id(sender: int, k: int) -> bytes:
    return b"crash" + bytes([sender]) + k.to_bytes(10, "big")


def test_kill_9_during_ingest_keeps_every_acknowledged_batch(hub_factory, tmp_path) -> None:
    hub = hub_factory().start()
    acked: dict[str, list[tuple[int, int]]] = {"traces": [], "logs": [], "metrics": []}
    stop = threading.Event()
    lock = threading.Lock()
    base_ns = time.time_ns() - 60_000_000_000

    def sender(sid: int) -> None:
        client = httpx.Client(timeout=10)
        k = 0
        while not stop.is_set():
            tid = batch_trace_id(sid, k)
            bodies = {
                "traces": trace_request(SPANS, trace_id=tid).SerializeToString(),
                "logs": log_request(LOGS, trace_id=tid, body="crash batch {i}").SerializeToString(),
                "metrics": gauge_request("crash_gauge", [(base_ns + j * 1_000_000, float(j)) for j in range(POINTS)],
                                         labels={"sender": str(sid), "batch": str(k)}).SerializeToString(),
            }
            for signal_name, body in bodies.items():
                try:
                    resp = client.post(f"{hub.otlp_http}/v1/{signal_name}", content=body, headers=PB)
                except httpx.HTTPError:
                    return  # the hub is gone
                if resp.status_code == 200:
                    with lock:
                        acked[signal_name].append((sid, k))
            k += 1

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked["traces"]) >= 60, timeout=60)
    assert hub.proc is not None
    hub.proc.send_signal(signal.SIGKILL)  # in the middle of sustained ingest
    hub.proc.wait()
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked["traces"]) >= 60

    again = HubProcess(hub.data_dir).start()
    try:
        for sid, k in acked["traces"]:
            spans = again.get(f"/api/pantau/traces/{batch_trace_id(sid, k).hex()}").json()["spans"]
            assert len(spans) == SPANS, (sid, k)
        for sid, k in acked["logs"]:
            got = again.get("/api/pantau/logs", trace_id=batch_trace_id(sid, k).hex(), limit=1000).json()["data"]
            assert len(got) == LOGS, (sid, k)
        for sid, k in acked["metrics"]:
            q = f'crash_gauge{{sender="{sid}",batch="{k}"}}[10m]'
            data = again.get("/api/v1/query", query=q).json()["data"]["result"]
            assert len(data) == 1 and len(data[0]["values"]) == POINTS, (sid, k)
    finally:
        again.stop()
