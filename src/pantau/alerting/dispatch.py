"""The dispatcher: routes alerts into aggregation groups and flushes each group through the
pipeline on its own schedule (group_wait before the first notification, group_interval
between updates, repeat_interval between repeats), as Alertmanager's `dispatch` package.

Everything runs on one asyncio loop and is driven by `tick()`, which reads the injected
clock: the service calls it a few times a second, tests call it after moving a `FakeClock`.
Alerts arrive from any thread through `on_alert` (a queue drained by the tick). Sends run as
tasks, one per group and integration at a time, retried with exponential backoff until they
succeed; only then is the notification log written.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pantau.alerting.alert import Alert
from pantau.alerting.clock import Clock
from pantau.alerting.history import History
from pantau.alerting.nlog import NotificationLog
from pantau.alerting.notifiers.base import Notifier, NotifyContext, NotifyError
from pantau.alerting.routing import Route, group_key
from pantau.alerting.silences import Silences
from pantau.alerting.stages import Acks, FlapDetector, Inhibitor, needs_update, time_muted
from pantau.alerting.templates import Template
from pantau.alerting.timeintervals import NamedTimeInterval

log = logging.getLogger("pantau.alerting.dispatch")


@dataclass
class Integration:
    receiver: str
    notifier: Notifier
    index: int

    @property
    def id(self) -> str:
        return f"{self.receiver}/{self.notifier.kind}/{self.index}"


@dataclass
class Backoff:
    initial: float = 0.5
    maximum: float = 60.0
    factor: float = 2.0

    def delay(self, attempt: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, attempt - 1))


@dataclass
class AggrGroup:
    route: Route
    key: str
    labels: dict[str, str]
    next_flush: float
    alerts: dict[str, Alert] = field(default_factory=dict)
    has_flushed: bool = False
    in_flight: set[str] = field(default_factory=set)
    removed: bool = False


class Dispatcher:
    def __init__(self, route: Route, receivers: dict[str, list[Integration]], *, clock: Clock,
                 nlog: NotificationLog, silences: Silences, inhibitor: Inhibitor,
                 intervals: dict[str, NamedTimeInterval], acks: Acks, flaps: FlapDetector,
                 history: History, templates: Template, external_url: str = "",
                 links: Callable[[str], tuple[str, str]] | None = None,
                 alerts_source: Callable[[], list[Alert]] = list, backoff: Backoff | None = None) -> None:
        self.route = route
        self.receivers = receivers
        self.clock = clock
        self.nlog = nlog
        self.silences = silences
        self.inhibitor = inhibitor
        self.intervals = intervals
        self.acks = acks
        self.flaps = flaps
        self.history = history
        self.templates = templates
        self.external_url = external_url
        self.links = links
        self.alerts_source = alerts_source
        self.backoff = backoff or Backoff()
        self.groups: dict[tuple[str, str], AggrGroup] = {}
        self._heap: list[tuple[float, int, tuple[str, str]]] = []
        self._seq = 0
        self._incoming: deque[Alert] = deque()
        self._tasks: set[asyncio.Task] = set()
        self._inhibit_dirty = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self.notifications_sent = 0
        self.notifications_failed = 0
        # (integration kind, outcome) -> attempts, for /metrics
        self.attempts: dict[tuple[str, str], int] = {}

    # --- input -------------------------------------------------------------------------------

    def on_alert(self, alert: Alert) -> None:
        """Thread-safe: the alert is routed at the next tick."""
        self._incoming.append(alert)

    def _schedule(self, ag: AggrGroup) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (ag.next_flush, self._seq, (ag.route.id(), ag.key)))

    def _insert(self, alert: Alert, now: float) -> None:
        for route in self.route.match(alert.labels):
            labels = route.group_labels(alert.labels)
            gk = group_key(route, labels)
            ident = (route.id(), gk)
            ag = self.groups.get(ident)
            if ag is None:
                ag = AggrGroup(route, gk, labels, now + route.group_wait)
                self.groups[ident] = ag
                self._schedule(ag)
            ag.alerts[alert.fingerprint] = alert
            # an alert older than group_wait is flushed at once (Alertmanager does the same)
            if not ag.has_flushed and alert.starts_at + route.group_wait < now and ag.next_flush > now:
                ag.next_flush = now
                self._schedule(ag)

    # --- the loop ----------------------------------------------------------------------------

    async def tick(self) -> int:
        """Route queued alerts, flush every group whose time came; returns groups flushed."""
        self._loop = asyncio.get_running_loop()
        now = self.clock.now()
        while self._incoming:
            self._insert(self._incoming.popleft(), now)
            self._inhibit_dirty = True
        if self._inhibit_dirty and self.inhibitor.rules:
            self.inhibitor.refresh(self.alerts_source(), now)
        self._inhibit_dirty = False
        flushed = 0
        while self._heap and self._heap[0][0] <= now:
            due, _, ident = heapq.heappop(self._heap)
            ag = self.groups.get(ident)
            if ag is None or ag.removed or ag.next_flush != due:
                continue
            ag.next_flush = now + ag.route.group_interval
            self._schedule(ag)
            ag.has_flushed = True
            self.flush(ag, now)
            flushed += 1
        return flushed

    async def run(self, interval: float = 0.05) -> None:
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("alert dispatch tick failed")
            await asyncio.sleep(interval)

    async def drain(self) -> None:
        """Wait for the sends in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def mark_inhibit_dirty(self) -> None:
        self._inhibit_dirty = True

    # --- the pipeline ------------------------------------------------------------------------

    def status(self, alert: Alert, now: float) -> tuple[list[str], list[str]]:
        """(silenced by, inhibited by) for one alert, as API v2 reports it."""
        return self.silences.mutes(alert.labels, now), self.inhibitor.inhibited_by(alert)

    def filter(self, ag: AggrGroup, now: float) -> list[Alert]:
        route = ag.route
        if time_muted(route.active_time_intervals, route.mute_time_intervals, self.intervals, now):
            return []
        out = []
        for a in sorted(ag.alerts.values(), key=lambda x: (x.labels.get("alertname", ""), x.fingerprint)):
            firing = not a.resolved_at(now)
            if firing and self.inhibitor.rules and self.inhibitor.inhibited_by(a):
                continue
            if firing and self.silences.mutes(a.labels, now):
                continue
            if firing and self.acks.get(a) is not None:
                continue
            if self.flaps.flapping(a.fingerprint, now):
                continue
            out.append(a)
        return out

    def flush(self, ag: AggrGroup, now: float) -> None:
        alerts = self.filter(ag, now)
        firing = {a.fingerprint for a in alerts if not a.resolved_at(now)}
        resolved = {a.fingerprint for a in alerts if a.resolved_at(now)}
        resolved_in_group = {fp: a.updated_at for fp, a in ag.alerts.items() if a.resolved_at(now)}
        integrations = self.receivers.get(ag.route.receiver, [])
        pending = []
        skipped = False
        for integ in integrations:
            if integ.id in ag.in_flight:
                skipped = True  # the previous send is still being retried; dedup sees the result next time
                continue
            entry = self.nlog.query(ag.key, integ.id)
            if not needs_update(entry, firing, resolved, integ.notifier.send_resolved, ag.route.repeat_interval, now):
                continue
            send = alerts if integ.notifier.send_resolved else [a for a in alerts if not a.resolved_at(now)]
            if not send:
                # only resolved alerts and the integration does not want them: log, do not send
                self.nlog.log(ag.key, integ.id, firing, resolved, now)
                continue
            ag.in_flight.add(integ.id)
            task = self._spawn(self._send(ag, integ, send, firing, resolved))
            if task is not None:
                pending.append(task)
        if not pending:
            # resolved alerts leave the group once every integration has been told (or did
            # not need to be); one still retrying an older send keeps them for next time
            self._remove_resolved(ag, resolved_in_group, all_ok=not skipped)
        else:
            async def cleanup() -> None:
                results = await asyncio.gather(*pending, return_exceptions=True)
                self._remove_resolved(ag, resolved_in_group, not skipped and all(r is True for r in results))

            self._spawn(cleanup())

    def _remove_resolved(self, ag: AggrGroup, resolved: dict[str, float], all_ok: bool) -> None:
        if not all_ok:
            return
        for fp, updated in resolved.items():
            a = ag.alerts.get(fp)
            if a is not None and a.updated_at == updated:
                del ag.alerts[fp]
        if not ag.alerts and not ag.in_flight:
            ag.removed = True
            self.groups.pop((ag.route.id(), ag.key), None)

    def _spawn(self, coro) -> asyncio.Task | None:
        """Run a send as a task of the dispatcher's loop (callable from API worker threads)."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            if self._loop is None:
                coro.close()
                return None
            self._loop.call_soon_threadsafe(self._spawn, coro)
            return None
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def context(self, receiver: str, gk: str, labels: dict[str, str], now: float,
                action: str = "notify") -> NotifyContext:
        return NotifyContext(receiver, gk, labels, now, self.external_url, self.templates, self.links, action)

    async def _send(self, ag: AggrGroup, integ: Integration, alerts: list[Alert], firing: set[str],
                    resolved: set[str]) -> bool:
        try:
            ok = await self.deliver(integ, self.context(integ.receiver, ag.key, ag.labels, self.clock.now()),
                                    alerts)
            if ok:
                self.nlog.log(ag.key, integ.id, firing, resolved, self.clock.now())
            return ok
        finally:
            ag.in_flight.discard(integ.id)

    def _count(self, integ: Integration, outcome: str) -> None:
        key = (integ.notifier.kind, outcome)
        self.attempts[key] = self.attempts.get(key, 0) + 1

    async def deliver(self, integ: Integration, ctx: NotifyContext, alerts: list[Alert],
                      max_attempts: int = 0) -> bool:
        """Send with retries (exponential backoff) until it succeeds, cannot succeed (a 4xx), or
        `max_attempts` (0: no limit) is reached. Every attempt is recorded in the history."""
        attempt = 0
        notification = uuid.uuid4().hex
        while True:
            attempt += 1
            started = self.clock.now()
            try:
                result = await integ.notifier.notify(ctx, alerts)
            except NotifyError as exc:
                self.notifications_failed += 1
                self._count(integ, "failed")
                self.history.notification(notification, integ, ctx, alerts, started, attempt, "failed", str(exc))
                log.warning("notify %s (group %s) attempt %d failed: %s", integ.id, ctx.group_key, attempt, exc)
                if not exc.retry or (max_attempts and attempt >= max_attempts):
                    return False
                await self.clock.sleep(self.backoff.delay(attempt))
                continue
            except Exception as exc:  # a notifier bug must not stop the pipeline
                self.notifications_failed += 1
                self._count(integ, "failed")
                log.exception("notifier %s crashed", integ.id)
                self.history.notification(notification, integ, ctx, alerts, started, attempt, "failed", repr(exc))
                return False
            self.notifications_sent += 1
            self._count(integ, "sent")
            self.history.notification(notification, integ, ctx, alerts, started, attempt, "sent", result)
            return True
