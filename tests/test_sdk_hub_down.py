"""With the hub down the app carries on: every operation completes, memory stays flat, the
dropped counter says exactly how many items were lost, and shutdown does not hang."""

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
