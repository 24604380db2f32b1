"""`pantau serve`: start-up errors are clear, shutdown keeps every accepted batch."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading

import httpx
import pytest

from tests.conftest import HubProcess, wait_until
from tests.otlp_factory import trace_request

pytestmark = pytest.mark.e2e
PB = {"content-type": "application/x-protobuf"}


def run_serve(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pantau", "serve", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_port_in_use_is_a_clear_error(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        hub = HubProcess(tmp_path / "data")
        result = run_serve(["--data-dir", str(hub.data_dir), "--port", str(hub.port),
                            "--otlp-http-port", str(port), "--otlp-grpc-port", str(hub.grpc_port)])
    assert result.returncode != 0
    assert f"127.0.0.1:{port}" in result.stderr and "already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_grpc_port_in_use_is_a_clear_error(tmp_path) -> None:
    first = HubProcess(tmp_path / "one").start()
    try:
        second = HubProcess(tmp_path / "two")
        result = run_serve(["--data-dir", str(second.data_dir), "--port", str(second.port),
                            "--otlp-http-port", str(second.http_port), "--otlp-grpc-port", str(first.grpc_port)])
        assert result.returncode != 0 and "already in use" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        first.stop()


def test_unwritable_data_dir_is_a_clear_error(tmp_path) -> None:
    if os.geteuid() == 0:
        target = "/proc/pantau-data"  # root may write anywhere, except a pseudo-filesystem
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        target = str(locked / "data")
    result = run_serve(["--data-dir", target])
    assert result.returncode != 0 and "not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_dir_that_is_a_file_is_a_clear_error(tmp_path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    hub = HubProcess(not_a_dir)
    result = run_serve(["--data-dir", str(not_a_dir), "--port", str(hub.port)])
    assert result.returncode != 0 and "data directory" in result.stderr and "not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_data_dir_used_by_another_pantau(tmp_path) -> None:
    first = HubProcess(tmp_path / "data").start()
    try:
        second = HubProcess(tmp_path / "data")
        result = run_serve(["--data-dir", str(second.data_dir), "--port", str(second.port),
                            "--otlp-http-port", str(second.http_port), "--otlp-grpc-port", str(second.grpc_port)])
        assert result.returncode != 0 and "in use by another pantau" in result.stderr
    finally:
        first.stop()


def test_bad_config_is_a_clear_error(tmp_path) -> None:
    cfg = tmp_path / "pantau.yaml"
    cfg.write_text("storage:\n  retention:\n    logs: thirty days\n  colour: blue\n")
    result = run_serve(["--config", str(cfg)])
    assert result.returncode != 0
    assert "storage.retention.logs" in result.stderr and "invalid duration" in result.stderr
    assert "storage.colour" in result.stderr
    cfg.write_text("server: [unclosed\n")
    result = run_serve(["--config", str(cfg)])
    assert result.returncode != 0 and f"{cfg}:2" in result.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_signal_stores_every_accepted_batch(hub_factory, sig) -> None:
    hub = hub_factory().start()
    acked: list[bytes] = []
    lock = threading.Lock()
    stop = threading.Event()

    def sender() -> None:
        with httpx.Client(timeout=30) as client:
            while not stop.is_set():
                tid = os.urandom(16)
                try:
                    resp = client.post(f"{hub.otlp_http}/v1/traces", headers=PB,
                                       content=trace_request(200, trace_id=tid).SerializeToString())
                except httpx.HTTPError:
                    return
                if resp.status_code == 200:
                    with lock:
                        acked.append(tid)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= 20, timeout=60)
    assert hub.stop(sig) == 0
    stop.set()
    for t in threads:
        t.join(30)
    assert "pantau stopped" in hub.log()
    again = HubProcess(hub.data_dir).start()
    try:
        for tid in acked:
            assert len(again.get(f"/api/pantau/traces/{tid.hex()}").json()["spans"]) == 200
    finally:
        again.stop()
