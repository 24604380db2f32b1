"""The notification pipeline's stages, each a small function over a group's alerts, in
Alertmanager's order: inhibit → active/mute time intervals → silence → (pantau) acknowledged
and flapping → dedup against the notification log. Retry and set-notifies live with the
send in `dispatch`, since they wrap the network call."""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass

import orjson

from pantau.alerting.alert import Alert
from pantau.alerting.amconfig import InhibitRule
from pantau.alerting.nlog import Entry
from pantau.alerting.timeintervals import NamedTimeInterval
from pantau.store.base import Matcher, Store


@dataclass
class _Rule:
    sources: list[Matcher]
    targets: list[Matcher]
    equal: list[str]


class Inhibitor:
    """`inhibit_rules`: a firing source alert mutes target alerts with the same `equal` labels.

    The index of firing sources is rebuilt at most once per alert-store change batch
    (`refresh`), so checking a target is a dictionary lookup per rule."""

    def __init__(self, rules: list[InhibitRule]) -> None:
        self.rules = [_Rule(r.sources(), r.targets(), r.equal) for r in rules]
        self._index: list[dict[tuple, set[str]]] = [{} for _ in self.rules]

    def refresh(self, alerts: list[Alert], now: float) -> None:
        index: list[dict[tuple, set[str]]] = [defaultdict(set) for _ in self.rules]
        for a in alerts:
            if a.resolved_at(now):
                continue
            for i, r in enumerate(self.rules):
                if all(m.matches(a.labels.get(m.name, "")) for m in r.sources):
                    index[i][tuple(a.labels.get(e, "") for e in r.equal)].add(a.fingerprint)
        self._index = index

    def inhibited_by(self, alert: Alert) -> list[str]:
        out: list[str] = []
        for i, r in enumerate(self.rules):
            if not all(m.matches(alert.labels.get(m.name, "")) for m in r.targets):
                continue
            fps = self._index[i].get(tuple(alert.labels.get(e, "") for e in r.equal))
            if fps:
                others = fps - {alert.fingerprint}
                if others:
                    out += sorted(others)
        return out


def time_muted(active: list[str], mute: list[str], intervals: dict[str, NamedTimeInterval], now: float) -> bool:
    """A route notifies only inside its active intervals (if any) and outside its mute ones."""
    if active and not any(intervals[n].contains(now) for n in active):
        return True
    return any(intervals[n].contains(now) for n in mute)


def needs_update(entry: Entry | None, firing: set[str], resolved: set[str], send_resolved: bool,
                 repeat: float, now: float) -> bool:
    """Alertmanager's `DedupStage.needsUpdate`, line for line."""
    if entry is None:
        return bool(firing)
    if not entry.is_firing_subset(firing):
        return True
    if not firing:
        return bool(entry.firing)
    if send_resolved and not entry.is_resolved_subset(resolved):
        return True
    return entry.timestamp <= now - repeat


class Acks:
    """Acknowledgements (pantau): an acknowledged alert stops repeating and escalating until
    it resolves or is unacknowledged. Keyed by fingerprint and start, so a new occurrence of
    the same alert is not silently covered by an old acknowledgement."""

    NAMESPACE = "alerting.acks"

    def __init__(self, store: Store) -> None:
        self.store = store
        self._acks: dict[str, dict] = {}

    def load(self) -> None:
        for fp, raw in self.store.list_state(self.NAMESPACE).items():
            self._acks[fp] = orjson.loads(raw)

    def get(self, alert: Alert) -> dict | None:
        a = self._acks.get(alert.fingerprint)
        if a and a.get("startsAt") == alert.starts_at:
            return a
        return None

    def ack(self, alert: Alert, by: str, comment: str, now: float) -> dict:
        rec = {"by": by, "comment": comment, "at": now, "startsAt": alert.starts_at}
        self._acks[alert.fingerprint] = rec
        self.store.put_state(self.NAMESPACE, alert.fingerprint, orjson.dumps(rec))
        return rec

    def unack(self, alert: Alert) -> bool:
        if self._acks.pop(alert.fingerprint, None) is None:
            return False
        self.store.delete_state(self.NAMESPACE, alert.fingerprint)
        return True


class FlapDetector:
    """An alert that changes between firing and resolved `threshold` times within `window`
    is flapping: its changes are held back from notification until it has been stable for a
    whole window, so a noisy check pages once, not every few seconds."""

    def __init__(self, window: float = 300.0, threshold: int = 4) -> None:
        self.window = window
        self.threshold = threshold
        self._lock = threading.Lock()
        self._changes: dict[str, deque[float]] = defaultdict(deque)
        self._last_state: dict[str, bool] = {}

    def observe(self, alert: Alert, now: float) -> None:
        firing = not alert.resolved_at(now)
        with self._lock:
            prev = self._last_state.get(alert.fingerprint)
            self._last_state[alert.fingerprint] = firing
            if prev is not None and prev != firing:
                q = self._changes[alert.fingerprint]
                q.append(now)
                while q and q[0] < now - self.window:
                    q.popleft()

    def flapping(self, fp: str, now: float) -> bool:
        q = self._changes.get(fp)
        if not q:
            return False
        recent = [t for t in q if t >= now - self.window]
        return len(recent) >= self.threshold

    def forget(self, fp: str) -> None:
        with self._lock:
            self._changes.pop(fp, None)
            self._last_state.pop(fp, None)
