"""PII redaction at ingest: the SDK's rules (`pantau.redaction`), applied to whole batches.

Run per record, the rules cost about as much as everything else ingest does (~10 µs a line
here), so the hub first looks for candidates a batch at a time: the batch's bodies are
joined into one string, and so are the raw encodings of its records (attribute keys and
string values appear in them verbatim), and each rule's regex scans the joined text once, in
C. Only records in which some rule matched (or whose encoding names a secret-looking key) go
through the per-record `Redactor`, exactly as the SDK would redact them, so both halves of
pantau give the same result from one implementation. Matches are rare, so a batch costs a
few scans instead of thousands of calls.
"""

from __future__ import annotations

import bisect
import re
import threading
from collections.abc import Iterable

from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as PbLogRecord

from pantau.logs.prefilter import SECRET_KEYS, Prefilter
from pantau.redaction import Redactor

# a record separator no rule treats as part of a word, a number or a secret value's end
_SEP = "\x00"
# keys named like secrets, as they appear inside the protobuf encoding (no anchors there)
_SECRET_KEY_HINT = re.compile("(?i)" + SECRET_KEYS)


class IngestRedactor:
    """Redacts log bodies and attributes of decoded batches; counts per rule (thread-safe)."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor or Redactor()
        self._lock = threading.Lock()
        self.records_redacted = 0
        self.prefilter = Prefilter.build(self.redactor)

    def counts(self) -> dict[str, int]:
        """Redactions per rule, every active rule listed (0 until it first fires)."""
        with self._lock:
            hits = self.redactor.counts()
        names = [r.name for r in self.redactor._active] + ["secret_key"]
        return {name: hits.get(name, 0) for name in names} | hits

    @classmethod
    def from_config(cls, disable_rules: Iterable[str] = (), exempt_attributes: Iterable[str] = (),
                    force_attributes: Iterable[str] = (), secret_keys: bool = True) -> IngestRedactor:
        redactor = Redactor()
        if not secret_keys:
            redactor.secret_keys = None
        redactor.disable(*disable_rules)
        redactor.exempt(*exempt_attributes)
        redactor.force(*force_attributes)
        return cls(redactor)

    def refresh(self) -> None:
        """Rebuild the prefilter after the rules or key lists changed."""
        self.prefilter = Prefilter.build(self.redactor)

    # --- candidates ---

    def _candidates(self, texts: list[str]) -> set[int]:
        """Indexes of the texts in which some rule matches (a superset of those it changes)."""
        if not texts:
            return set()
        joined = _SEP.join(texts)
        starts = [0]
        for t in texts[:-1]:
            starts.append(starts[-1] + len(t) + 1)
        found: set[int] = set()
        for rule in self.redactor._active:
            if rule.precheck is not None and not rule.precheck(joined):
                continue
            for m in rule.pattern.finditer(joined):
                first = bisect.bisect_right(starts, m.start()) - 1
                last = bisect.bisect_right(starts, max(m.end() - 1, m.start())) - 1
                found.update(range(first, last + 1))
        return found

    def _key_candidates(self, payloads: list[str]) -> set[int]:
        r = self.redactor
        if r.secret_keys is None and not r.force_keys:
            return set()
        hint = _SECRET_KEY_HINT
        forced = list(r.force_keys)
        return {i for i, p in enumerate(payloads)
                if hint.search(p) is not None or any(k in p for k in forced)}

    # --- the batch ---

    def redact_batch(self, bodies: list[str], payloads: list[bytes]) -> set[int]:
        """Redact in place; returns the indexes of records whose payload changed (their body
        text, if structured, must be derived again)."""
        if self.prefilter is not None:
            body_rules = self.prefilter.text_candidates(bodies)
            body_hits: Iterable[int] = body_rules
            payload_hits: Iterable[int] = self.prefilter.record_candidates(payloads)
        else:
            raw = [p.decode("latin-1") for p in payloads]
            body_rules = {}
            body_hits = self._candidates(bodies)
            payload_hits = self._candidates(raw) | self._key_candidates(raw)
        changed_payloads: set[int] = set()
        if not body_hits and not payload_hits:
            return changed_payloads
        with self._lock:
            for i in body_hits:
                new = self.redactor.redact_text(bodies[i], body_rules.get(i))
                if new != bodies[i]:
                    bodies[i] = new
                    self.records_redacted += 1
            for i in payload_hits:
                new_payload = self._redact_payload(payloads[i])
                if new_payload is not None:
                    payloads[i] = new_payload
                    changed_payloads.add(i)
                    if i not in body_hits:
                        self.records_redacted += 1
        return changed_payloads

    def _redact_payload(self, payload: bytes) -> bytes | None:
        record = PbLogRecord()
        record.ParseFromString(payload)
        changed = _redact_key_values(self.redactor, record.attributes)
        if record.HasField("body") and record.body.WhichOneof("value") in ("kvlist_value", "array_value"):
            changed |= _redact_any(self.redactor, "", record.body)
        return record.SerializeToString() if changed else None


def _redact_key_values(redactor: Redactor, kvs: Iterable) -> bool:
    changed = False
    for kv in kvs:
        changed |= _redact_any(redactor, kv.key, kv.value)
    return changed


def _redact_any(redactor: Redactor, key: str, value: AnyValue) -> bool:
    kind = value.WhichOneof("value")
    if kind == "string_value":
        new = redactor.redact_value(key, value.string_value) if key else redactor.redact_text(value.string_value)
        if new != value.string_value:
            value.string_value = new
            return True
        return False
    if kind == "kvlist_value":
        return _redact_key_values(redactor, value.kvlist_value.values)
    if kind == "array_value":
        changed = False
        for item in value.array_value.values:
            changed |= _redact_any(redactor, key, item)
        return changed
    if key and kind is not None and redactor._secret_key(key):
        # a secret-named attribute holding a number or bytes: replaced whole, like a string
        value.string_value = redactor.secret_replacement
        redactor._count("secret_key", 1)
        return True
    return False
