"""With the hub down the app carries on: every operation completes, memory stays flat, the
dropped counter says exactly how many items were lost, shutdown does not hang, and export
resumes by itself once the hub is back."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, free_port


def run(protocol: str, endpoint: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "sdk_hub_down_app.py"), protocol, endpoint, str(n)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    print(protocol, n, result)
    return result


def test_100k_operations_with_hub_down_http() -> None:
    n = 100_000
    result = run("http/protobuf", f"http://127.0.0.1:{free_port()}", n)  # nothing listens there
    stats = result["stats"]
    assert stats["spans"]["dropped"] == n and stats["spans"]["exported"] == 0
    assert stats["logs"]["dropped"] == n // 100
    assert stats["spans"]["export_failures"] >= 1
    growth = result["rss_end"] - result["rss_early"]
    assert growth < 8 * 2**20, f"RSS grew {growth / 2**20:.1f} MiB between 20% and 100% of the operations"


@pytest.mark.parametrize("n", [10_000])
def test_hub_down_grpc(n: int) -> None:
    stats = run("grpc", f"http://127.0.0.1:{free_port()}", n)["stats"]
    assert stats["spans"]["dropped"] == n and stats["logs"]["dropped"] == n // 100


@pytest.mark.e2e
def test_export_resumes_when_the_hub_comes_back(hub_factory) -> None:
    import pantau
    from tests.conftest import wait_until

    hub = hub_factory()  # ports chosen, not started yet
    pantau.init("comes-back", endpoint=hub.otlp_http, timeout_s=1.0, metrics_interval_s=3600)
    try:
        with pantau.trace("while-down"):
            pass
        pantau.flush()
        assert pantau.sdk_stats()["spans"]["dropped"] == 1
        hub.start()

        def sent() -> bool:
            with pantau.trace("after-restart"):
                pass
            pantau.flush()
            return pantau.sdk_stats()["spans"]["exported"] > 0

        assert wait_until(sent, timeout=60, interval=0.5), pantau.sdk_stats()
        traces = wait_until(lambda: hub.get("/api/traces", service="comes-back").json()["data"], timeout=30)
        assert {s["operationName"] for t in traces for s in t["spans"]} == {"after-restart"}
    finally:
        pantau.shutdown()
