"""Redaction at ingest gives exactly the SDK's per-record result, found a batch at a time."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from pantau.logs.redact_ingest import IngestRedactor
from pantau.otlp.decode import Limits, OtlpDecoder
from pantau.redaction import Redactor
from tests.otlp_factory import log_request
from tests.test_unit_redaction import HARMLESS, SENSITIVE

CORPUS = [text for text, _, _ in SENSITIVE] + list(HARMLESS)


@pytest.mark.parametrize("prefilter", [True, False], ids=["hyperscan", "re"])
def test_batch_redaction_equals_per_record_redaction_in_any_order(prefilter: bool) -> None:
    reference = Redactor()
    expected = {t: reference.redact_text(t) for t in CORPUS}
    rng = random.Random(7)
    ingest = IngestRedactor()
    assert ingest.prefilter is not None  # hyperscan is a dependency on this platform
    if not prefilter:
        ingest.prefilter = None
    for _ in range(30):
        texts = rng.sample(CORPUS, k=len(CORPUS)) * 2
        bodies = list(texts)
        ingest.redact_batch(bodies, [b""] * len(bodies))
        misses = [(t, b) for t, b in zip(texts, bodies, strict=True) if b != expected[t]]
        assert misses == []


def test_no_secret_survives_and_harmless_text_is_untouched() -> None:
    bodies = [text for text, _, _ in SENSITIVE] + list(HARMLESS)
    ingest = IngestRedactor()
    ingest.redact_batch(bodies, [b""] * len(bodies))
    leaked = [(b, secret) for b, (_, secret, _) in zip(bodies, SENSITIVE, strict=False) if secret in b]
    changed = [h for h, b in zip(HARMLESS, bodies[len(SENSITIVE):], strict=True) if h != b]
    assert leaked == [] and changed == []
    counts = ingest.counts()
    assert counts["email"] >= 2 and counts["card"] >= 4 and counts["nik"] >= 3 and counts["phone"] >= 5


def _payload(attrs: dict[str, object], body: AnyValue | None = None) -> bytes:
    r = LogRecord(time_unix_nano=1, trace_id=bytes(range(64, 80)), span_id=b"@A@b@c@d")
    for k, v in attrs.items():
        value = AnyValue(int_value=v) if isinstance(v, int) else AnyValue(string_value=str(v))
        r.attributes.append(KeyValue(key=k, value=value))
    if body is not None:
        r.body.CopyFrom(body)
    return r.SerializeToString()


@pytest.mark.parametrize("prefilter", [True, False], ids=["hyperscan", "re"])
def test_attributes_nested_bodies_secret_keys_exemptions_and_forced_keys(prefilter: bool) -> None:
    ingest = IngestRedactor.from_config(exempt_attributes=["support.email"], force_attributes=["customer.address"])
    if not prefilter:
        ingest.prefilter = None
    structured = AnyValue()
    kv = structured.kvlist_value.values.add()
    kv.key, kv.value.string_value = "note", "call 081234567890 please"
    payloads = [
        _payload({"user.email": "budi@merajutasa.id", "order": "ORD-2026-000123"}),
        _payload({"db.password": "hunter2", "api_key": 12345}),
        _payload({"support.email": "help@merajutasa.id", "customer.address": "Jl. Sudirman 1"}),
        _payload({"logger": "signer.core", "request.id": "r5"}),
        _payload({}, structured),
    ]
    before = list(payloads)
    changed = ingest.redact_batch(["a", "b", "c", "d", "e"], payloads)
    assert changed == {0, 1, 2, 4}
    assert payloads[3] is before[3]

    def attrs(i: int) -> dict[str, object]:
        r = LogRecord()
        r.ParseFromString(payloads[i])
        return {kv.key: getattr(kv.value, kv.value.WhichOneof("value")) for kv in r.attributes}

    assert attrs(0) == {"user.email": "[REDACTED:email]", "order": "ORD-2026-000123"}
    assert attrs(1) == {"db.password": "[REDACTED:secret]", "api_key": "[REDACTED:secret]"}
    assert attrs(2) == {"support.email": "help@merajutasa.id", "customer.address": "[REDACTED:secret]"}
    r = LogRecord()
    r.ParseFromString(payloads[4])
    assert r.body.kvlist_value.values[0].value.string_value == "call [REDACTED:phone] please"


def test_decoder_redacts_before_storing_and_before_the_audit_chain() -> None:
    req = log_request(3, body="user {i}: siti@example.co.id paid with 4111 1111 1111 1111",
                      attrs={"log.type": "audit", "audit.actor": "siti@example.co.id"})
    decoded = OtlpDecoder(Limits(), redactor=IngestRedactor()).logs(req.SerializeToString())
    batch = decoded.batch
    assert batch.body[0] == "user 0: [REDACTED:email] paid with [REDACTED:card]"
    assert all(b"siti@" not in p for p in batch.payload)
    assert len(batch.audit) == 3 and all(b"siti@" not in entry for _, entry in batch.audit)
    plain = OtlpDecoder(Limits()).logs(req.SerializeToString()).batch
    assert "siti@example.co.id" in plain.body[0]
