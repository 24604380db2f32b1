"""Redaction on a corpus of realistic log strings: count misses and false positives over all of it.

Each sensitive case names the secret that must disappear; each harmless case must come out
byte for byte unchanged. Counting over the whole corpus first (then asserting both are 0)
shows every failure at once instead of the first one.
"""

from __future__ import annotations

import re

import pytest

from pantau.redaction import Redactor, Rule, luhn_ok, nik_ok

# (text, the sensitive part that must not survive, rule expected to fire)
SENSITIVE = [
    ("user budi.santoso@merajutasa.id signed document 42", "budi.santoso@merajutasa.id", "email"),
    ("reply-to: <Siti_Rahma+billing@mail.example.co.id>", "Siti_Rahma+billing@mail.example.co.id", "email"),
    ("contact +62 812-3456-7890 for verification", "812-3456-7890", "phone"),
    ("whatsapp +6281234567890 confirmed", "6281234567890", "phone"),
    ("callback 081234567890 failed", "081234567890", "phone"),
    ("hp: 0812 3456 789", "0812 3456 789", "phone"),
    ("call (555) 123-4567 after 5pm", "123-4567", "phone"),
    ("US support 415-555-0132", "415-555-0132", "phone"),
    ("intl +44 20 7946 0958 office", "7946 0958", "phone"),
    ("charged card 4111 1111 1111 1111 amount 150000", "4111 1111 1111 1111", "card"),
    ("card=5555555555554444 declined", "5555555555554444", "card"),
    ("amex 3782-822463-10005 ok", "3782-822463-10005", "card"),
    ("pan 4012888888881881", "4012888888881881", "card"),
    ("NIK 3174096512900001 verified", "3174096512900001", "nik"),
    ("ktp=3201011508850003", "3201011508850003", "nik"),
    ("nik pemohon: 5171044107920002", "5171044107920002", "nik"),
    ("token eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", "jwt"),
    ("Authorization: Bearer abcDEF123456.ghiJKL789_-", "abcDEF123456.ghiJKL789_-", "bearer"),
    ("retrying with bearer 9f8e7d6c5b4a39281706f5e4", "9f8e7d6c5b4a39281706f5e4", "bearer"),
    ("login password=hunter2! for admin", "hunter2!", "secret"),
    ("db connect user=app passwd: s3cr3tPa55", "s3cr3tPa55", "secret"),
    ("config api_key=AKIAIOSFODNN7EXAMPLE region=ap-southeast-3", "AKIAIOSFODNN7EXAMPLE", "secret"),
    ('{"client_secret": "z9Y8x7W6v5U4"}', "z9Y8x7W6v5U4", "secret"),
    ("GET /callback?code=abc&access_token=ya29.a0AfH6SMB&state=1", "ya29.a0AfH6SMB", "secret"),
    ("set session_id=8c1f2e3d4b5a6978 for user", "8c1f2e3d4b5a6978", "secret"),
    ("X-Api-Key: 5d41402abc4b2a76b9719d911017c592", "5d41402abc4b2a76b9719d911017c592", "secret"),
    ("header Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "secret"),
    ("notify ops@merajutasa.id and +62 21 5150 8888", "ops@merajutasa.id", "email"),
]

HARMLESS = [
    "2024-03-15T10:30:45.123456Z request done",
    "2024-03-15 10:30:45,123 INFO worker started",
    "ts=1710498645123456 microsecond timestamp",
    "epoch ms 1710498645123 and ns 1710498645123456789",
    "order ORD-2024-000123 created",
    "invoice INV/2024/03/00042 paid",
    "order number 20240315000123 shipped",
    "uuid 550e8400-e29b-41d4-a716-446655440000",
    "request_id=7c9e6679-7425-40de-944b-e07fc1f90ae7",
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
    "traceparent 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "version 1.27.0 deployed",
    "pantau 0.1.0 (build 20240315.1423)",
    "python 3.11.9, opentelemetry-sdk 1.45.2",
    "amount Rp 1.500.000,00 transferred",
    "total IDR 12500000 for 3 items",
    "price $1,299.99 incl. tax",
    "balance 1234567.89 USD",
    "client 192.168.10.25 connected to 10.0.0.1:8443",
    "ipv6 2001:db8::8a2e:370:7334 allowed",
    "listening on 127.0.0.1:4318",
    "duration_ms=1234 p99=987.65",
    "processed 1000000 records in 12.5s",
    "sha256 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "commit 6739fcc merged",
    "document DOC-000042 signed with ed25519",
    "chain integrity 99.95% over 1048576 blocks",
    "port 3000 up, pid 48213",
    "date 15/03/2024 and 2024/03/15",
    "scheduled at 08:30 on 2024-08-12",
    "batch 1234 5678 9012 queued",
    "sequence 0000000000000001",
    "coordinates -6.2088, 106.8456",
    "retry 3 of 5 after 250ms",
    "user u-10293 logged in",
    "tokenizer loaded 32000 tokens",
    "keyboard layout us",
    "password reset requested",
    "password policy: min 12 chars",
    "the secret sauce is simplicity",
    "email verification sent",
    "http.status_code=200 http.route=/api/v1/query",
    "GET /api/traces/4bf92f3577b34da6a3ce929d0e0e4736 200",
    "file /var/lib/pantau/spans/2024-03-15.db rotated",
    "matrix 3x3 determinant 0",
    "ISBN 978-3-16-148410-0 catalogued",
    "build 2024.03.15-rc1 tagged",
    "Authorization header missing",
]


def test_corpus_misses_and_false_positives() -> None:
    r = Redactor()
    misses, false_positives = [], []
    for text, secret, _rule in SENSITIVE:
        out = r.redact_text(text)
        if secret in out or "[REDACTED" not in out:
            misses.append((text, out))
    for text in HARMLESS:
        out = r.redact_text(text)
        if out != text:
            false_positives.append((text, out))
    assert len(SENSITIVE) >= 27 and len(HARMLESS) >= 47
    assert misses == [], f"{len(misses)} of {len(SENSITIVE)} missed"
    assert false_positives == [], f"{len(false_positives)} of {len(HARMLESS)} false positives"


def test_each_rule_fires_where_expected() -> None:
    for text, _secret, rule in SENSITIVE:
        r = Redactor()
        r.redact_text(text)
        assert r.counts().get(rule, 0) >= 1, (text, r.counts())


def test_counts_per_rule_accumulate() -> None:
    r = Redactor()
    r.redact_text("a@b.co and c@d.org")
    r.redact_text("card 4111111111111111")
    assert r.counts() == {"email": 2, "card": 1}


def test_validators() -> None:
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert nik_ok("3174096512900001")
    assert not nik_ok("1710498645123456")  # a microsecond timestamp: province 17, day 49-40=9 ... month 86
    assert not nik_ok("3174093212900001")  # day 32
    assert not nik_ok("3174096512900000")  # serial 0000


def test_attributes_secret_keys_exempt_and_force() -> None:
    r = Redactor()
    attrs = {"user.password": "hunter2", "http.request.header.authorization": "Basic dXNlcjpwYXNz",
             "api_key": "k-123", "db.statement": "SELECT 1", "customer.email": "a@b.co",
             "tags": ["x@y.io", "plain"], "count": 3, "total_tokens": 1200, "note": "plain text"}
    out = r.redact_attributes(attrs)
    assert out["user.password"] == out["api_key"] == "[REDACTED:secret]"
    assert out["http.request.header.authorization"] == "[REDACTED:secret]"
    assert out["customer.email"] == "[REDACTED:email]"
    assert out["tags"] == ["[REDACTED:email]", "plain"]
    assert out["count"] == 3 and out["total_tokens"] == 1200 and out["db.statement"] == "SELECT 1"
    assert attrs["user.password"] == "hunter2", "the input is not modified"
    clean = {"a": "plain", "b": 1}
    assert r.redact_attributes(clean) is clean
    r.exempt("customer.email")
    r.force("note")
    out = r.redact_attributes(attrs)
    assert out["customer.email"] == "a@b.co" and out["note"] == "[REDACTED:secret]"


def test_enable_disable_and_custom_rule() -> None:
    r = Redactor()
    r.disable("email")
    assert r.redact_text("a@b.co") == "a@b.co"
    r.enable("email")
    assert r.redact_text("a@b.co") == "[REDACTED:email]"
    with pytest.raises(ValueError, match="unknown redaction rule 'emial'"):
        r.disable("emial")
    r.add_rule(Rule("employee", re.compile(r"\bEMP-\d{6}\b"), "[REDACTED:employee]", precheck=lambda s: "EMP-" in s))
    assert r.redact_text("by EMP-004211") == "by [REDACTED:employee]"
    assert r.counts()["employee"] == 1
