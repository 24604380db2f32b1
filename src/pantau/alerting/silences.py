"""Silences: matchers plus a time window during which matching alerts are not notified.

Kept durably in the store (namespace `alerting.silences`) so a restart does not un-mute
anything; expired silences stay visible for `retention` (as Alertmanager's 120 h) and are then
dropped. Expiring a silence (API DELETE) sets its end to now, as Alertmanager does.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import asdict, dataclass, field

import orjson

from pantau.alerting.alert import parse_rfc3339, rfc3339
from pantau.alerting.clock import Clock
from pantau.store.base import Matcher, Store

NAMESPACE = "alerting.silences"


@dataclass
class SilenceMatcher:
    name: str
    value: str
    is_regex: bool = False
    is_equal: bool = True

    def to_matcher(self) -> Matcher:
        op = {(False, True): "=", (False, False): "!=", (True, True): "=~", (True, False): "!~"}
        return Matcher(self.name, op[(self.is_regex, self.is_equal)], self.value)


@dataclass
class Silence:
    id: str
    matchers: list[SilenceMatcher]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float
    _compiled: list[Matcher] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._compiled = [m.to_matcher() for m in self.matchers]

    def state(self, now: float) -> str:
        if now < self.starts_at:
            return "pending"
        if now >= self.ends_at:
            return "expired"
        return "active"

    def mutes(self, labels: dict[str, str], now: float) -> bool:
        return self.state(now) == "active" and all(m.matches(labels.get(m.name, "")) for m in self._compiled)

    def to_api(self, now: float) -> dict:
        return {"id": self.id, "status": {"state": self.state(now)}, "updatedAt": rfc3339(self.updated_at),
                "matchers": [{"name": m.name, "value": m.value, "isRegex": m.is_regex, "isEqual": m.is_equal}
                             for m in self.matchers],
                "startsAt": rfc3339(self.starts_at), "endsAt": rfc3339(self.ends_at),
                "createdBy": self.created_by, "comment": self.comment}

    def dumps(self) -> bytes:
        d = asdict(self)
        d.pop("_compiled")
        return orjson.dumps(d)

    @classmethod
    def loads(cls, raw: bytes) -> Silence:
        d = orjson.loads(raw)
        d["matchers"] = [SilenceMatcher(**m) for m in d["matchers"]]
        return cls(**d)


def parse_postable(body: object, now: float) -> Silence:
    """A silence from the API's postableSilence JSON. Raises ValueError naming the problem."""
    if not isinstance(body, dict):
        raise ValueError("silence must be a JSON object")
    for key in ("matchers", "startsAt", "endsAt", "createdBy", "comment"):
        if key not in body:
            raise ValueError(f"{key} in body is required")
    raw = body["matchers"]
    if not isinstance(raw, list) or not raw:
        raise ValueError("at least one matcher required")
    ms = []
    for item in raw:
        if not isinstance(item, dict) or "name" not in item or "value" not in item or "isRegex" not in item:
            raise ValueError("each matcher needs name, value and isRegex")
        sm = SilenceMatcher(str(item["name"]), str(item["value"]), bool(item["isRegex"]),
                            bool(item.get("isEqual", True)))
        try:
            sm.to_matcher()
        except ValueError as exc:
            raise ValueError(f"invalid matcher: {exc}") from None
        if not sm.name:
            raise ValueError("invalid label name \"\"")
        ms.append(sm)
    if all(m.to_matcher().matches("") for m in ms):
        raise ValueError("silence would match all alerts (at least one matcher must not match the empty string)")
    starts, ends = parse_rfc3339(body["startsAt"]), parse_rfc3339(body["endsAt"])
    if ends < starts:
        raise ValueError("end time must not be before start time")
    if ends < now:
        raise ValueError("end time can't be in the past")
    return Silence(str(body.get("id") or ""), ms, max(starts, now) if starts < now else starts, ends,
                   str(body["createdBy"]), str(body["comment"]), now)


class Silences:
    def __init__(self, store: Store, clock: Clock, retention: float = 120 * 3600) -> None:
        self.store = store
        self.clock = clock
        self.retention = retention
        self._lock = threading.Lock()
        self._by_id: dict[str, Silence] = {}
        self.version = 0  # bumped on every change, so caches of "what mutes what" can notice

    def load(self) -> None:
        for raw in self.store.list_state(NAMESPACE).values():
            s = Silence.loads(raw)
            self._by_id[s.id] = s

    def all(self) -> list[Silence]:
        with self._lock:
            return list(self._by_id.values())

    def get(self, sid: str) -> Silence | None:
        return self._by_id.get(sid)

    def put(self, silence: Silence) -> str:
        """Create, or update an existing silence. As in Alertmanager, changing an active
        silence's matchers expires it and creates a new one."""
        now = self.clock.now()
        with self._lock:
            old = self._by_id.get(silence.id) if silence.id else None
            if silence.id and old is None:
                raise KeyError(silence.id)
            if old is not None and old.state(now) == "active" and old.matchers != silence.matchers:
                old.ends_at, old.updated_at = now, now
                self.store.put_state(NAMESPACE, old.id, old.dumps())
                old = None
            if old is None:
                silence.id = str(uuid.uuid4())
            silence.updated_at = now
            self._by_id[silence.id] = silence
            self.store.put_state(NAMESPACE, silence.id, silence.dumps())
            self.version += 1
            return silence.id

    def expire(self, sid: str) -> None:
        now = self.clock.now()
        with self._lock:
            s = self._by_id.get(sid)
            if s is None:
                raise KeyError(sid)
            if s.state(now) == "expired":
                raise ValueError("silence already expired")
            s.ends_at = min(s.ends_at, now) if s.starts_at <= now else s.starts_at
            s.updated_at = now
            self.store.put_state(NAMESPACE, s.id, s.dumps())
            self.version += 1

    def mutes(self, labels: dict[str, str], now: float | None = None) -> list[str]:
        now = self.clock.now() if now is None else now
        return [s.id for s in self._by_id.values() if s.mutes(labels, now)]

    def gc(self) -> None:
        now = self.clock.now()
        with self._lock:
            for sid in [sid for sid, s in self._by_id.items() if s.ends_at + self.retention < now]:
                del self._by_id[sid]
                self.store.delete_state(NAMESPACE, sid)
