"""The tamper-evident audit log: every audit record, chained by SHA-256.

Each entry's hash covers its sequence number, the canonical JSON of the record, and the
previous entry's hash. Changing a record breaks its own hash; removing one leaves a gap in
the sequence and a `prev` that no longer matches; reordering breaks both. The chain's head
(count and last hash), written down elsewhere, also catches rewriting the whole chain.

Audit records are log records with `log.type=audit`, or made by `pantau.audit` (event name
`pantau.audit`, attributes `audit.*`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

GENESIS = bytes(32)


def is_audit(attributes: dict[str, Any], event_name: str = "") -> bool:
    return (attributes.get("log.type") == "audit" or event_name == "pantau.audit"
            or attributes.get("otel.event.name") == "pantau.audit" or "audit.action" in attributes)


def canonical(record: dict[str, Any]) -> bytes:
    """One stable byte form of a record (sorted keys), the thing that is hashed."""
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def link_hash(prev: bytes, seq: int, entry: bytes) -> bytes:
    h = hashlib.sha256()
    h.update(prev)
    h.update(seq.to_bytes(8, "big"))
    h.update(entry)
    return h.digest()


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time_ns: int
    entry: bytes  # canonical JSON of the record
    prev_hash: bytes
    hash: bytes


@dataclass
class Verdict:
    ok: bool
    count: int
    head: str  # hex of the last good hash
    first_broken: int | None = None
    reason: str = ""


def verify(entries: Iterable[AuditEntry], expect_head: str | None = None,
           expect_count: int | None = None) -> Verdict:
    """Walk the chain from its first entry; name the first link that does not hold."""
    prev, expected_seq, count = GENESIS, 1, 0
    for e in entries:
        if e.seq != expected_seq:
            reason = (f"entry {expected_seq} is missing (the next one is {e.seq})" if e.seq > expected_seq
                      else f"entry {e.seq} appears out of order after {expected_seq - 1}")
            return Verdict(False, count, prev.hex(), expected_seq, reason)
        if e.prev_hash != prev:
            return Verdict(False, count, prev.hex(), e.seq,
                           f"entry {e.seq} does not follow entry {e.seq - 1} (records removed or reordered)")
        if link_hash(prev, e.seq, e.entry) != e.hash:
            return Verdict(False, count, prev.hex(), e.seq, f"entry {e.seq} was changed after it was written")
        prev, expected_seq, count = e.hash, expected_seq + 1, count + 1
    if expect_count is not None and count < expect_count:
        return Verdict(False, count, prev.hex(), count + 1,
                       f"the chain ends at entry {count}, {expect_count - count} fewer than expected (truncated)")
    if expect_head is not None and prev.hex() != expect_head.lower():
        return Verdict(False, count, prev.hex(), count,
                       "the chain's head differs from the one recorded: it was rewritten")
    return Verdict(True, count, prev.hex())
