"""PII redaction at ingest in a running hub: nothing sensitive is stored, counts in /metrics."""

from __future__ import annotations

import re

import httpx

from tests.conftest import wait_until
from tests.otlp_factory import log_request


def _send(hub, req) -> None:
    resp = httpx.post(f"{hub.otlp_http}/v1/logs", content=req.SerializeToString(),
                      headers={"Content-Type": "application/x-protobuf"})
    assert resp.status_code == 200, resp.text


def test_pii_is_redacted_before_it_is_stored_and_counted_per_rule(hub_factory) -> None:
    hub = hub_factory("redaction:\n  exempt_attributes: [support.email]\n").start()
    body = "doc-{i} signed by budi.santoso@merajutasa.id NIK 3174096512900001"
    _send(hub, log_request(20, service="signer", body=body,
                           attrs={"user.phone": "+62 812-3456-7890", "db.password": "hunter2",
                                  "support.email": "help@merajutasa.id", "request.id": "r{i}"}))
    _send(hub, log_request(30, service="ledger", body="block {i} appended in 12 ms"))
    assert wait_until(lambda: len(hub.get("/api/pantau/logs", q="signed", limit=100).json()["data"]) == 20)
    records = hub.get("/api/pantau/logs", q="signed", limit=100).json()["data"]
    for r in records:
        assert "budi.santoso" not in r["body"] and "3174096512900001" not in r["body"]
        assert "[REDACTED:email]" in r["body"] and "[REDACTED:nik]" in r["body"]
        assert r["attributes"]["user.phone"] == "[REDACTED:phone]"
        assert r["attributes"]["db.password"] == "[REDACTED:secret]"
        assert r["attributes"]["support.email"] == "help@merajutasa.id"  # exempt by config
    assert hub.get("/api/pantau/logs", q="budi").json()["data"] == []  # not in the index either
    ledger = hub.get("/api/pantau/logs", q="service:ledger", limit=100).json()["data"]
    assert len(ledger) == 30 and all("[REDACTED" not in r["body"] for r in ledger)
    metrics = hub.get("/metrics").text
    counts = dict(re.findall(r'pantau_redactions_total\{rule="(\w+)"\} ([\d.]+)', metrics))
    assert float(counts["email"]) == 20 and float(counts["nik"]) == 20
    assert float(counts["phone"]) == 20 and float(counts["secret_key"]) == 20
    assert float(counts["jwt"]) == 0


def test_redaction_can_be_switched_off_and_bad_rule_names_are_config_errors(hub_factory) -> None:
    hub = hub_factory("redaction:\n  enabled: false\n").start()
    _send(hub, log_request(1, body="mail budi@merajutasa.id"))
    assert wait_until(lambda: hub.get("/api/pantau/logs", q="mail").json()["data"])
    assert hub.get("/api/pantau/logs", q="mail").json()["data"][0]["body"] == "mail budi@merajutasa.id"
    bad = hub_factory("redaction:\n  disable_rules: [emails]\n")
    try:
        bad.start(timeout=15)
        raise AssertionError("started with an unknown rule")
    except RuntimeError as exc:
        assert "redaction.disable_rules" in str(exc) and "'emails'" in str(exc)
