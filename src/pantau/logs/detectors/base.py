"""What every detector shares: reading fields of a log record, and evidence samples."""

from __future__ import annotations

from typing import Any, Protocol

import orjson

from pantau.model import LogRecord
from pantau.store.base import Event


class Detector(Protocol):
    def observe(self, record: LogRecord) -> list[Event]: ...

    def tick(self, now_ns: int) -> list[Event]: ...


def body_text(record: LogRecord) -> str:
    body = record.body
    if isinstance(body, str):
        return body
    if body is None:
        return ""
    try:
        return orjson.dumps(body, default=str).decode()
    except TypeError:
        return str(body)


def contains_any(text: str, words: tuple[str, ...]) -> bool:
    """Whether any of `words` is in `text`: the cheap test before a costly regex (a plain loop
    measured 3x faster than `any()` over a generator)."""
    for word in words:  # noqa: SIM110 (deliberate, see above)
        if word in text:
            return True
    return False


def attribute(record: LogRecord, *keys: str) -> str:
    """The first non-empty value among `keys`, in the record's attributes, then its resource's."""
    for attributes in (record.attributes, record.resource.attributes):
        for key in keys:
            value = attributes.get(key)
            if value not in (None, ""):
                return str(value)
    return ""


def sample(record: LogRecord, body_chars: int = 500) -> dict[str, Any]:
    """A record as evidence: small and JSON-serialisable."""
    attributes = {k: (v if isinstance(v, int | float | bool) else str(v)[:200])
                  for k, v in list(record.attributes.items())[:20]}
    return {"time_ns": record.timestamp_ns, "service": record.service, "severity": record.severity_text,
            "body": body_text(record)[:body_chars], "attributes": attributes,
            **({"trace_id": record.trace_id} if record.trace_id else {})}


class Samples:
    """The first `limit` records of something, as evidence."""

    __slots__ = ("items", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.items: list[dict[str, Any]] = []

    def add(self, record: LogRecord) -> None:
        if len(self.items) < self.limit:
            self.items.append(sample(record))
