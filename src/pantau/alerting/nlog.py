"""The notification log: what each receiver integration was last told about each group.

The dedup stage compares a group's alerts with this log to decide whether to notify (new
firing alerts, newly resolved ones, or the repeat interval passed), exactly as Alertmanager's
`nflog`. It is written to the store after each successful send, before the next flush can
look, so a restart (even `kill -9`) neither repeats a notification that went out nor forgets
one that did not: the log has no entry, the alerts are still there, the next flush sends.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import orjson

from pantau.store.base import Store

NAMESPACE = "alerting.nlog"


@dataclass
class Entry:
    group_key: str
    receiver: str  # "<receiver>/<integration>/<index>"
    firing: frozenset[str]  # alert fingerprints + start (a re-fired alert is a new one)
    resolved: frozenset[str]
    timestamp: float
    expires_at: float

    def is_firing_subset(self, firing: set[str] | frozenset[str]) -> bool:
        return firing <= self.firing

    def is_resolved_subset(self, resolved: set[str] | frozenset[str]) -> bool:
        return resolved <= self.resolved


class NotificationLog:
    def __init__(self, store: Store, retention: float = 120 * 3600) -> None:
        self.store = store
        self.retention = retention
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}

    @staticmethod
    def _key(group_key: str, receiver: str) -> str:
        return f"{receiver}\x00{group_key}"

    def load(self) -> None:
        for key, raw in self.store.list_state(NAMESPACE).items():
            d = orjson.loads(raw)
            self._entries[key] = Entry(d["g"], d["r"], frozenset(d["f"]), frozenset(d["x"]), d["t"], d["e"])

    def query(self, group_key: str, receiver: str) -> Entry | None:
        return self._entries.get(self._key(group_key, receiver))

    def log(self, group_key: str, receiver: str, firing: set[str], resolved: set[str], now: float,
            retention: float | None = None) -> None:
        key = self._key(group_key, receiver)
        entry = Entry(group_key, receiver, frozenset(firing), frozenset(resolved), now,
                      now + (retention if retention is not None else self.retention))
        raw = orjson.dumps({"g": group_key, "r": receiver, "f": sorted(firing), "x": sorted(resolved),
                            "t": now, "e": entry.expires_at})
        with self._lock:
            self.store.put_state(NAMESPACE, key, raw)
            self._entries[key] = entry

    def gc(self, now: float) -> int:
        with self._lock:
            old = [k for k, e in self._entries.items() if e.expires_at < now]
            for k in old:
                del self._entries[k]
            if old:
                self.store.put_states(NAMESPACE, dict.fromkeys(old))
        return len(old)
