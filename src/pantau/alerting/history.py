"""Alert and notification history (pantau): who was told what, when, through which
channel, with what result; and every alert occurrence with its start, end, acknowledgement.

Kept as store events (kinds `alert` and `notification`), written by a background flush in
batches so the notification path never waits on a commit. Alertmanager keeps neither
(alertmanager#172); here they survive restarts and are queried through the API.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from pantau.alerting.alert import Alert
from pantau.store.base import Event, EventQuery, Store

if TYPE_CHECKING:
    from pantau.alerting.dispatch import Integration
    from pantau.alerting.notifiers.base import NotifyContext

log = logging.getLogger("pantau.alerting.history")


def occurrence_id(alert: Alert) -> str:
    return f"alert-{alert.fingerprint}-{int(alert.starts_at * 1000)}"


class History:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._pending: dict[str, Event] = {}

    def alert(self, alert: Alert, now: float, extra: dict | None = None) -> None:
        """Record (or update) one occurrence of an alert."""
        ended = alert.ends_at if alert.resolved_at(now) else None
        sev = alert.labels.get("severity", "warning")
        ev = Event("alert", int(alert.starts_at * 1e9), occurrence_id(alert),
                   int(ended * 1e9) if ended else None,
                   sev if sev in ("info", "warning", "critical") else "warning",
                   alert.name, dict(alert.labels),
                   {"annotations": alert.annotations, "fingerprint": alert.fingerprint,
                    "generatorURL": alert.generator_url, **(extra or {})})
        with self._lock:
            old = self._pending.get(ev.id)
            if old is not None and extra is None:
                ev.data = {**old.data, **ev.data}
            self._pending[ev.id] = ev

    def annotate(self, alert: Alert, **data) -> None:
        """Add to an occurrence's record (acknowledgement, manual resolve, ...)."""
        eid = occurrence_id(alert)
        with self._lock:
            ev = self._pending.get(eid)
        if ev is None:
            ev = self.store.get_event(eid)
        if ev is None:
            self.alert(alert, alert.updated_at)
            with self._lock:
                ev = self._pending[eid]
        ev.data.update(data)
        with self._lock:
            self._pending[eid] = ev

    def notification(self, nid: str, integ: Integration, ctx: NotifyContext, alerts: list[Alert],
                     started: float, attempt: int, status: str, result: str) -> None:
        ev = Event("notification", int(started * 1e9), f"notify-{nid}-{attempt}", int(started * 1e9),
                   "info" if status == "sent" else "warning",
                   f"{integ.id}: {status}",
                   {"receiver": integ.receiver, "integration": integ.notifier.kind, "status": status,
                    "action": ctx.action},
                   {"groupKey": ctx.group_key, "attempt": attempt, "result": result,
                    "alerts": [{"fingerprint": a.fingerprint, "alertname": a.name,
                                "status": a.status(ctx.now)} for a in alerts[:1000]],
                    "count": len(alerts)})
        with self._lock:
            self._pending[ev.id] = ev

    def flush(self) -> int:
        with self._lock:
            pending, self._pending = self._pending, {}
        for ev in pending.values():
            try:
                if ev.kind == "alert":
                    old = self.store.get_event(ev.id)
                    if old is not None:
                        ev.data = {**old.data, **ev.data}
                self.store.put_event(ev)
            except Exception:
                log.exception("could not store history event %s", ev.id)
        return len(pending)

    def query(self, kind: str, start_ns: int | None = None, end_ns: int | None = None,
              labels: dict[str, str] | None = None, limit: int = 100) -> list[Event]:
        self.flush()
        return self.store.find_events(EventQuery([kind], start_ns, end_ns, labels or {}, limit=limit))
