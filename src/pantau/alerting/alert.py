"""An alert as Alertmanager holds it: labels identify it (the fingerprint), annotations
describe it, startsAt/endsAt bound it; an alert whose endsAt has passed is resolved."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1


def fingerprint(labels: dict[str, str]) -> str:
    """Prometheus's `LabelSet.Fingerprint()` (FNV-1a over sorted names and values with 0xff
    separators), as 16 hex digits: the same ids Alertmanager shows and webhook payloads carry."""
    h = _FNV_OFFSET
    for name in sorted(labels):
        for part in (name, labels[name]):
            for b in part.encode():
                h = ((h ^ b) * _FNV_PRIME) & _MASK
            h = ((h ^ 0xFF) * _FNV_PRIME) & _MASK
    return f"{h:016x}"


def rfc3339(t: float | None) -> str:
    if not t:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch; raises ValueError with the reason."""
    if not isinstance(text, str):
        raise ValueError(f"expected an RFC 3339 time string, got {text!r}")
    t = text.strip()
    if t.startswith("0001-01-01"):
        return 0.0
    t = t.replace("Z", "+00:00").replace("z", "+00:00")
    # Go writes up to 9 fractional digits; Python reads up to 6.
    if "." in t:
        head, rest = t.split(".", 1)
        digits = "".join(itertools.takewhile(str.isdigit, rest))
        tz = rest[len(digits):]
        t = f"{head}.{digits[:6].ljust(6, '0')}{tz}"
    dt = datetime.fromisoformat(t)
    if dt.tzinfo is None:
        raise ValueError(f"time {text!r} has no time zone")
    return dt.timestamp()


@dataclass(slots=True)
class Alert:
    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    starts_at: float = 0.0
    ends_at: float = 0.0
    generator_url: str = ""
    updated_at: float = 0.0
    timeout: bool = False  # endsAt was not given: it is now + resolve_timeout, extended on resend
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            self.fingerprint = fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def resolved_at(self, now: float) -> bool:
        return bool(self.ends_at) and self.ends_at <= now

    def status(self, now: float) -> str:
        return "resolved" if self.resolved_at(now) else "firing"

    def merge(self, o: Alert) -> Alert:
        """Alertmanager's `Alert.Merge`: the younger update wins, the earliest start is kept,
        and a later explicit end beats a timeout."""
        a = self
        if o.updated_at < a.updated_at:
            a, o = o, a
        res = Alert(dict(o.labels), dict(o.annotations), o.starts_at, o.ends_at, o.generator_url,
                    o.updated_at, o.timeout, o.fingerprint)
        if a.starts_at < o.starts_at:
            res.starts_at = a.starts_at
        if o.resolved_at(o.updated_at):
            if a.resolved_at(a.updated_at) and a.ends_at > o.ends_at:
                res.ends_at = a.ends_at
        elif a.ends_at > o.ends_at and not a.timeout:
            res.ends_at = a.ends_at
        return res

    def to_json(self) -> dict[str, Any]:
        return {"labels": self.labels, "annotations": self.annotations, "startsAt": self.starts_at,
                "endsAt": self.ends_at, "generatorURL": self.generator_url, "updatedAt": self.updated_at,
                "timeout": self.timeout}

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def loads(cls, raw: bytes) -> Alert:
        d = orjson.loads(raw)
        return cls(d["labels"], d["annotations"], d["startsAt"], d["endsAt"], d["generatorURL"],
                   d["updatedAt"], d.get("timeout", False))

    def webhook_json(self, now: float) -> dict[str, Any]:
        """One entry of `alerts` in Alertmanager's webhook payload."""
        return {"status": self.status(now), "labels": self.labels, "annotations": self.annotations,
                "startsAt": rfc3339(self.starts_at), "endsAt": rfc3339(self.ends_at),
                "generatorURL": self.generator_url, "fingerprint": self.fingerprint}
