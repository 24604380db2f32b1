"""Export of log search results through the API and `pantau export logs`, in every format."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time

import httpx
import orjson
import pyarrow.parquet as pq

from tests.conftest import wait_until
from tests.otlp_factory import log_request

N_SIGNER, N_LEDGER = 3000, 500


def _load(hub) -> int:
    t0 = time.time_ns() - 60 * 10**9
    for req in (log_request(N_SIGNER, service="signer", time_ns=t0, body="signed doc-{i} with \"quotes\", commas"),
                log_request(N_LEDGER, service="ledger", time_ns=t0, body="appended block {i}")):
        resp = httpx.post(f"{hub.otlp_http}/v1/logs", content=req.SerializeToString(),
                          headers={"Content-Type": "application/x-protobuf"})
        assert resp.status_code == 200, resp.text
    assert wait_until(lambda: len(hub.get("/api/pantau/logs", q="service:signer doc-2999").json()["data"]) == 1)
    return t0


def test_export_formats_hold_every_matching_record(hub) -> None:
    _load(hub)
    url = f"{hub.api}/api/pantau/logs/export"
    jsonl = httpx.get(url, params={"q": "service:signer", "format": "jsonl"}, timeout=60)
    assert jsonl.status_code == 200 and jsonl.headers["content-type"] == "application/x-ndjson"
    rows = [orjson.loads(line) for line in jsonl.content.splitlines()]
    assert len(rows) == N_SIGNER
    assert [r["body"] for r in rows[:2]] == ['signed doc-0 with "quotes", commas', 'signed doc-1 with "quotes", commas']
    assert rows[0]["timestamp"].endswith("Z") and rows[0]["attributes"]["request.id"] == "r0"
    assert all(r["service"] == "signer" for r in rows)

    text = httpx.get(url, params={"q": "service:signer", "format": "csv"}, timeout=60).text
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == N_SIGNER and table[5]["body"] == 'signed doc-5 with "quotes", commas'
    assert orjson.loads(table[5]["attributes"])["request.id"] == "r5"

    parquet = httpx.get(url, params={"q": "service:signer OR service:ledger", "format": "parquet"}, timeout=60)
    assert parquet.status_code == 200
    t = pq.read_table(io.BytesIO(parquet.content))
    assert t.num_rows == N_SIGNER + N_LEDGER
    assert str(t.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"

    limited = httpx.get(url, params={"q": "appended", "format": "jsonl", "max_records": 7}, timeout=60)
    assert len(limited.content.splitlines()) == 7


def test_export_rejects_bad_requests_with_a_reason(hub) -> None:
    url = f"{hub.api}/api/pantau/logs/export"
    bad = httpx.get(url, params={"format": "xlsx"})
    assert bad.status_code == 400 and "xlsx" in bad.json()["error"]
    bad = httpx.get(url, params={"q": "(unclosed", "format": "csv"})
    assert bad.status_code == 400 and bad.json()["error"]
    bad = httpx.get(url, params={"start": "yesterday"})
    assert bad.status_code == 400 and "start" in bad.json()["error"]


def test_cli_exports_to_a_file_with_progress(hub, tmp_path) -> None:
    _load(hub)
    out = tmp_path / "signer.parquet"
    result = subprocess.run([sys.executable, "-m", "pantau", "export", "logs", "--hub", hub.api,
                             "-q", "service:signer", "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "parquet" in result.stderr and out.exists() and not (tmp_path / "signer.parquet.partial").exists()
    assert pq.read_table(out).num_rows == N_SIGNER
    # the hub's refusal reaches the user as a message and a non-zero exit, with no file left behind
    result = subprocess.run([sys.executable, "-m", "pantau", "export", "logs", "--hub", hub.api,
                             "-q", "(unclosed", "-o", str(tmp_path / "x.csv")], capture_output=True, text=True)
    assert result.returncode == 2 and "refused" in result.stderr and not (tmp_path / "x.csv").exists()
