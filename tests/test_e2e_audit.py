"""The tamper-evident audit log: `pantau audit verify` catches an edited, a removed and a
reordered record (each done by hand in the database), and a truncated chain."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys

import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.conftest import HubProcess

pytestmark = pytest.mark.e2e


def kv(k: str, v: str) -> KeyValue:
    return KeyValue(key=k, value=AnyValue(string_value=v))


def audit_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pantau", "audit", *args], capture_output=True, text=True, timeout=60)


def test_audit_chain_detects_tampering(hub: HubProcess, tmp_path) -> None:
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.append(kv("service.name", "signer"))
    sl = rl.scope_logs.add()
    import time

    now = time.time_ns()
    for i in range(6):
        lr = sl.log_records.add(time_unix_nano=now + i, severity_number=9)
        lr.body.string_value = f"audit: alice granted role-{i}"
        lr.attributes.extend([kv("log.type", "audit"), kv("actor", "alice")] if i % 2 else
                             [kv("audit.action", "grant"), kv("audit.actor", "alice")])
        plain = sl.log_records.add(time_unix_nano=now + i, severity_number=9)
        plain.body.string_value = f"ordinary line {i}"
    assert httpx.post(f"{hub.otlp_http}/v1/logs", content=req.SerializeToString(),
                      headers={"content-type": "application/x-protobuf"}).status_code == 200
    hub.stop()
    data = hub.data_dir
    ok = audit_cli("verify", "--data-dir", str(data))
    assert ok.returncode == 0 and "intact: 6 records" in ok.stdout, ok.stderr
    count, head = audit_cli("head", "--data-dir", str(data)).stdout.split()
    assert count == "6"
    pristine = tmp_path / "audit.db.orig"
    shutil.copy(data / "audit.db", pristine)

    def tamper(sql: str) -> subprocess.CompletedProcess:
        shutil.copy(pristine, data / "audit.db")
        for suffix in ("-wal", "-shm"):
            (data / f"audit.db{suffix}").unlink(missing_ok=True)
        conn = sqlite3.connect(data / "audit.db")
        try:
            conn.executescript(sql)
        finally:
            conn.close()
        return audit_cli("verify", "--data-dir", str(data), "--expect-head", head, "--expect-count", count)

    edited = tamper("UPDATE chain SET entry = replace(entry, 'role-4', 'role-9') WHERE seq = 5;")
    assert edited.returncode == 1 and "entry 5 was changed" in edited.stderr
    removed = tamper("DELETE FROM chain WHERE seq = 3;")
    assert removed.returncode == 1 and "entry 3 is missing" in removed.stderr
    reordered = tamper("UPDATE chain SET seq = -1 WHERE seq = 2; UPDATE chain SET seq = 2 WHERE seq = 4;"
                       "UPDATE chain SET seq = 4 WHERE seq = -1;")
    assert reordered.returncode == 1 and "BROKEN at entry 2" in reordered.stderr
    truncated = tamper("DELETE FROM chain WHERE seq = 6;")
    assert truncated.returncode == 1 and "truncated" in truncated.stderr
    rewritten = tamper("DELETE FROM chain;")
    assert rewritten.returncode == 1
