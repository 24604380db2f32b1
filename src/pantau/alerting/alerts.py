"""The alerts the hub holds, from its own rules and from any client of API v2, keyed by
fingerprint; Alertmanager's `provider/mem` made durable.

New and changed alerts are persisted in batches (one store transaction per flush, every
`persist` call) so that thousands of alerts per second cost thousands of rows, not thousands
of commits; subscribers (the dispatcher) hear about each change at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from pantau.alerting.alert import Alert
from pantau.alerting.clock import Clock
from pantau.store.base import Store

NAMESPACE = "alerting.alerts"

Listener = Callable[[Alert], None]


class AlertStore:
    def __init__(self, store: Store, clock: Clock, resolve_timeout: float = 300.0) -> None:
        self.store = store
        self.clock = clock
        self.resolve_timeout = resolve_timeout
        self._lock = threading.Lock()
        self._alerts: dict[str, Alert] = {}
        self._dirty: dict[str, Alert | None] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def load(self) -> list[Alert]:
        for raw in self.store.list_state(NAMESPACE).values():
            a = Alert.loads(raw)
            self._alerts[a.fingerprint] = a
        return list(self._alerts.values())

    def get(self, fp: str) -> Alert | None:
        return self._alerts.get(fp)

    def all(self) -> list[Alert]:
        with self._lock:
            return list(self._alerts.values())

    def put(self, alerts: list[Alert]) -> list[Alert]:
        """Insert or merge, Alertmanager style; returns the alerts as now held."""
        now = self.clock.now()
        out: list[Alert] = []
        with self._lock:
            for a in alerts:
                a.updated_at = now
                if not a.starts_at:
                    a.starts_at = now
                if not a.ends_at:
                    a.timeout = True
                    a.ends_at = now + self.resolve_timeout
                old = self._alerts.get(a.fingerprint)
                merged = a
                # merge only when the activity ranges overlap (else it is a new occurrence)
                if old is not None and ((old.starts_at < a.ends_at < old.ends_at)
                                        or (old.starts_at < a.starts_at < old.ends_at)):
                    merged = old.merge(a)
                self._alerts[a.fingerprint] = merged
                self._dirty[a.fingerprint] = merged
                out.append(merged)
        for merged in out:
            for listener in self._listeners:
                listener(merged)
        return out

    def resolve(self, fp: str) -> Alert | None:
        """End an alert now (pantau's resolve through the API or a signed link)."""
        now = self.clock.now()
        with self._lock:
            a = self._alerts.get(fp)
            if a is None:
                return None
            if not a.resolved_at(now):
                a.ends_at, a.updated_at, a.timeout = now, now, False
                self._dirty[fp] = a
        for listener in self._listeners:
            listener(a)
        return a

    def persist(self) -> int:
        with self._lock:
            dirty, self._dirty = self._dirty, {}
        if dirty:
            self.store.put_states(NAMESPACE, {fp: (a.dumps() if a is not None else None) for fp, a in dirty.items()})
        return len(dirty)

    def gc(self, keep: Callable[[str], bool], older_than: float = 3600.0) -> list[str]:
        """Forget alerts resolved more than `older_than` ago that no group still holds."""
        now = self.clock.now()
        with self._lock:
            gone = [fp for fp, a in self._alerts.items()
                    if a.resolved_at(now) and a.ends_at < now - older_than and not keep(fp)]
            for fp in gone:
                del self._alerts[fp]
                self._dirty[fp] = None
        return gone
